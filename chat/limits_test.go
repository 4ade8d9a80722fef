package chat

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// TestHostileTemplates renders templates that loop, recurse or allocate
// without bound in a child process and checks each ends in a clear
// error within the time limit.
func TestHostileTemplates(t *testing.T) {
	msgs := []Message{{Role: "user", Content: "Hi"}}
	lim := Limits{Timeout: 2 * time.Second, MaxOutputBytes: 1 << 20}
	cases := []struct{ name, tmpl, want string }{
		{"huge range", "{% for i in range(1000000000) %}{{ i }}{% endfor %}", "range() over the limit"},
		{"nested ranges", "{% for a in range(1000) %}{% for b in range(1000) %}{% for c in range(1000) %}{% endfor %}{% endfor %}{% endfor %}", "range() over the limit"},
		{"busy loop over a string", "{% set s = 'x' * 200000 %}{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}", "took longer than"},
		{"huge allocation", "{{ 'x' * 1000000000000 }}", "out of memory"},
		{"unbounded recursion", "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "stack exceeds"},
		{"output over the limit", "{% for i in range(100) %}{{ 'x' * 100000 }}{% endfor %}", "over the limit of 1048576"},
		{"does not compile", "{% for m in messages %}{{ m.content }", "chat template"},
		{"template too large", strings.Repeat("x", 2<<20), "over the limit of"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			_, err := RenderIsolated(context.Background(), c.tmpl, Options{Limits: lim}, Input{Messages: msgs, AddGenerationPrompt: true})
			t.Log(err)
			if err == nil || !errors.Is(err, ErrTemplate) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want ErrTemplate naming %q", err, c.want)
			}
			if d := time.Since(start); d > lim.Timeout+childStartup {
				t.Errorf("took %v", d)
			}
		})
	}
}

// TestIsolatedMatchesInProcess renders a real template both ways, and
// checks raise_exception comes back as a *RaiseError.
func TestIsolatedMatchesInProcess(t *testing.T) {
	src, err := os.ReadFile("testdata/templates/meta-llama-Llama-3.2-3B-Instruct.jinja")
	if err != nil {
		t.Fatal(err)
	}
	opt := Options{BOS: "<|begin_of_text|>", EOS: "<|eot_id|>", AddBOS: true}
	in := Input{Messages: []Message{{Role: "system", Content: "Be brief."}, {Role: "user", Content: "Hi"}},
		AddGenerationPrompt: true, Now: time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC),
		Tools: []byte(`[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}]`)}
	tp, err := Parse(string(src), opt)
	if err != nil {
		t.Fatal(err)
	}
	want, err := tp.Render(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := RenderIsolated(context.Background(), string(src), opt, in)
	if err != nil || got != want {
		t.Fatalf("isolated %q, %v\nin-process %q", got, err, want)
	}
	if strings.HasPrefix(got, opt.BOS) || !strings.Contains(got, "04 Dec 2026") {
		t.Errorf("BOS not dropped or date not passed: %q", got)
	}

	raise := "{% if messages[0].role != 'user' %}{{ raise_exception('first message must be a user message') }}{% endif %}ok"
	_, err = RenderIsolated(context.Background(), raise, Options{}, Input{Messages: []Message{{Role: "assistant", Content: "x"}}})
	var re *RaiseError
	if !errors.As(err, &re) || re.Message != "first message must be a user message" || errors.Is(err, ErrTemplate) {
		t.Fatalf("error %v, want the template's RaiseError", err)
	}
}

// TestVariables checks the variables llama.cpp passes besides messages.
func TestVariables(t *testing.T) {
	now := time.Date(2026, 3, 7, 15, 4, 5, 0, time.UTC)
	cases := []struct {
		name, tmpl string
		opt        Options
		in         Input
		want       string
	}{
		{"add_generation_prompt undefined when false", "{{ add_generation_prompt is defined }}", Options{}, Input{}, "False"},
		{"add_generation_prompt", "{{ add_generation_prompt }}", Options{}, Input{AddGenerationPrompt: true}, "True"},
		{"tokens", "{{ bos_token }}|{{ eos_token }}", Options{BOS: "<s>", EOS: "</s>"}, Input{}, "<s>|</s>"},
		{"BOS dropped when the tokenizer adds it", "{{ bos_token }}x", Options{BOS: "<s>", AddBOS: true}, Input{}, "x"},
		{"enable_thinking", "{{ enable_thinking }}", Options{}, Input{DisableThinking: true}, "False"},
		{"tools absent", "{{ tools is defined }}", Options{}, Input{Tools: []byte("[]")}, "False"},
		{"tools keep key order", "{{ tools | tojson }}", Options{}, Input{Tools: []byte(`[{"z":1,"a":"<&>","m":[true,null,1.5]}]`)},
			`[{"z": 1, "a": "<&>", "m": [true, null, 1.5]}]`},
		{"tojson indent", "{{ tools[0] | tojson(indent=2) }}", Options{}, Input{Tools: []byte(`[{"b":{"c":[]},"a":[1]}]`)},
			"{\n  \"b\": {\n    \"c\": []\n  },\n  \"a\": [\n    1\n  ]\n}"},
		{"tojson in a string literal is text", `{{ "x | tojson" }}`, Options{}, Input{}, "x | tojson"},
		{"strftime_now", `{{ strftime_now("%Y-%m-%d %H:%M:%S %a %b %d %B %A") }}`, Options{}, Input{Now: now}, "2026-03-07 15:04:05 Sat Mar 07 March Saturday"},
		{"date_string", "{{ date_string }}", Options{}, Input{Now: now}, "07 Mar 2026"},
		{"developer is system", "{% for m in messages %}{{ m.role }}:{{ m.content }};{% endfor %}", Options{},
			Input{Messages: []Message{{Role: "developer", Content: "D"}, {Role: "user", Content: "U"}}}, "system:D;user:U;"},
		{"system folded when the template drops it", "{% for m in messages %}{% if m.role != 'system' %}[{{ m.content }}]{% endif %}{% endfor %}",
			Options{}, Input{Messages: []Message{{Role: "system", Content: "S"}, {Role: "user", Content: "U"}}}, "[S\nU]"},
		{"system kept when the template renders it", "{% for m in messages %}[{{ m.content }}]{% endfor %}",
			Options{}, Input{Messages: []Message{{Role: "system", Content: "S"}, {Role: "user", Content: "U"}}}, "[S][U]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tp, err := Parse(c.tmpl, c.opt)
			if err != nil {
				t.Fatal(err)
			}
			got, err := tp.Render(context.Background(), c.in)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

// FuzzRender feeds arbitrary templates and message text through Parse
// and Render: errors are fine, panics and hangs are not (the engine's
// panics must come back as errors).
func FuzzRender(f *testing.F) {
	f.Add("{% for m in messages %}{{ m.role }}: {{ m.content | trim }}{% endfor %}", "hi")
	f.Add("{{ messages[0].content[1:] | tojson(indent=2) }}{{ raise_exception(m) }}", "x")
	f.Add("{% set ns = namespace(a=1) %}{{ ns.a * -1 }}{{ 'a' * -5 }}", "")
	f.Add("{{ messages[5].content.split(',')[-1].startswith('a') }}", "a,b")
	f.Fuzz(func(t *testing.T, tmpl, content string) {
		tp, err := Parse(tmpl, Options{BOS: "<s>", Limits: Limits{Timeout: time.Second, MaxRange: 1000}})
		if err != nil {
			return
		}
		_, _ = tp.Render(context.Background(), Input{Messages: []Message{{Role: "user", Content: content}}, AddGenerationPrompt: true})
	})
}

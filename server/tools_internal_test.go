package server

import (
	"os"
	"path/filepath"
	"testing"
)

func TestParseToolCalls(t *testing.T) {
	type call struct{ name, args string }
	for _, c := range []struct {
		name, format, text, content string
		calls                       []call
	}{
		{"hermes one", toolsHermes, "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": 1}}\n</tool_call>", "", []call{{"f", `{"a": 1}`}}},
		{"hermes two with text", toolsHermes, "Sure.\n<tool_call>{\"name\":\"f\",\"arguments\":{}}</tool_call>\n<tool_call>{\"name\":\"g\",\"arguments\":{\"x\":\"y\"}}</tool_call>", "Sure.", []call{{"f", `{}`}, {"g", `{"x":"y"}`}}},
		{"hermes unclosed", toolsHermes, "<tool_call>{\"name\":\"f\",\"arguments\":{\"a\":[1,2]}}", "", []call{{"f", `{"a":[1,2]}`}}},
		{"hermes arguments as string", toolsHermes, `<tool_call>{"name":"f","arguments":"{\"a\":1}"}</tool_call>`, "", []call{{"f", `{"a":1}`}}},
		{"hermes not json", toolsHermes, "<tool_call>oops</tool_call>", "<tool_call>oops</tool_call>", nil},
		{"hermes no name", toolsHermes, `<tool_call>{"arguments":{}}</tool_call>`, `<tool_call>{"arguments":{}}</tool_call>`, nil},
		{"hermes plain text", toolsHermes, "Hello there", "Hello there", nil},
		{"llama3 parameters", toolsLlama3, `{"name": "f", "parameters": {"city": "Paris"}}`, "", []call{{"f", `{"city": "Paris"}`}}},
		{"llama3 python_tag", toolsLlama3, `<|python_tag|>{"name": "f", "parameters": {}}`, "", []call{{"f", `{}`}}},
		{"llama3 two", toolsLlama3, `{"name": "f", "parameters": {"s": "a;b"}}; {"name": "g", "parameters": {}}`, "", []call{{"f", `{"s": "a;b"}`}, {"g", `{}`}}},
		{"llama3 text", toolsLlama3, "The weather is nice.", "The weather is nice.", nil},
		{"llama3 broken json", toolsLlama3, `{"name": "f", "parameters": {`, `{"name": "f", "parameters": {`, nil},
		{"llama3 trailing text", toolsLlama3, `{"name": "f", "parameters": {}} and more`, `{"name": "f", "parameters": {}} and more`, nil},
		{"hermes tags dropped", toolsHermes, "\n{\"name\": \"f\", \"arguments\": {}}\n{\"name\": \"g\", \"arguments\": {\"a\": 2}}\n", "", []call{{"f", `{}`}, {"g", `{"a": 2}`}}},
		{"hermes unknown function", toolsHermes, `<tool_call>{"name":"nope","arguments":{}}</tool_call>`, `<tool_call>{"name":"nope","arguments":{}}</tool_call>`, nil},
		{"llama3 unknown function", toolsLlama3, `{"name": "nope", "parameters": {}}`, `{"name": "nope", "parameters": {}}`, nil},
		{"mistral nemo", toolsMistral, `[TOOL_CALLS][{"name": "f", "arguments": {"a": 1}}, {"name": "g", "arguments": {}}]`, "", []call{{"f", `{"a": 1}`}, {"g", `{}`}}},
		{"mistral nemo marker dropped", toolsMistral, `[{"name": "f", "arguments": {"a": 1}}]`, "", []call{{"f", `{"a": 1}`}}},
		{"mistral small", toolsMistral, `Checking.[TOOL_CALLS]f[ARGS]{"a": "x"}[TOOL_CALLS]g[ARGS]{}`, "Checking.", []call{{"f", `{"a": "x"}`}, {"g", `{}`}}},
		{"mistral small markers dropped", toolsMistral, `f{"a": "x"}`, "", []call{{"f", `{"a": "x"}`}}},
		{"mistral text", toolsMistral, `Sure, see {this}`, `Sure, see {this}`, nil},
		{"mistral unknown function", toolsMistral, `[TOOL_CALLS]nope[ARGS]{}`, `[TOOL_CALLS]nope[ARGS]{}`, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			content, calls := parseToolCalls(c.text, c.format, map[string]bool{"f": true, "g": true})
			if content != c.content || len(calls) != len(c.calls) {
				t.Fatalf("content %q, %d calls %+v; want %q, %d", content, len(calls), calls, c.content, len(c.calls))
			}
			for i, w := range c.calls {
				if calls[i].Function.Name != w.name || calls[i].Function.Arguments != w.args || calls[i].Type != "function" || calls[i].ID == "" {
					t.Errorf("call %d: %+v, want %+v", i, calls[i], w)
				}
			}
		})
	}
}

func TestToolFormat(t *testing.T) {
	for file, want := range map[string]string{
		"Qwen-Qwen2.5-7B-Instruct.jinja":                    toolsHermes,
		"NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja": toolsHermes,
		"Qwen-Qwen3-0.6B.jinja":                             toolsHermes,
		"meta-llama-Llama-3.1-8B-Instruct.jinja":            toolsLlama3,
		"meta-llama-Llama-3.2-3B-Instruct.jinja":            toolsLlama3,
		"google-gemma-2-2b-it.jinja":                        "",
	} {
		b, err := os.ReadFile(filepath.Join("..", "chat", "testdata", "templates", file))
		if err != nil {
			t.Fatal(err)
		}
		if got := toolFormat(string(b)); got != want {
			t.Errorf("%s: %q, want %q", file, got, want)
		}
	}
}

func FuzzParseToolCalls(f *testing.F) {
	f.Add("<tool_call>{\"name\":\"f\",\"arguments\":{}}</tool_call>", true)
	f.Add(`{"name": "f", "parameters": {"s": "a;b"}}; {"name": "g"}`, false)
	f.Add(`<|python_tag|>{"name": "f", "parameters": {"a": "\"}"}}`, false)
	f.Fuzz(func(t *testing.T, text string, hermes bool) {
		format := []string{toolsLlama3, toolsHermes, toolsMistral}[len(text)%3]
		if hermes {
			format = toolsHermes
		}
		content, calls := parseToolCalls(text, format, nil)
		if len(content) > len(text) {
			t.Fatalf("content %q longer than the text %q", content, text)
		}
		for _, c := range calls {
			if c.Function.Name == "" {
				t.Fatalf("a call without a name from %q", text)
			}
		}
	})
}

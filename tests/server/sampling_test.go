package server_test

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/internal/backend/reference"
	"github.com/realmrt/realm/internal/engine"
	"github.com/realmrt/realm/internal/refdata"
	"github.com/realmrt/realm/server"
)

// textLogprobs is a /v1/completions answer with logprobs.
type textLogprobs struct {
	Choices []struct {
		Text         string
		FinishReason string `json:"finish_reason"`
		Logprobs     *struct {
			Tokens        []string
			TokenLogprobs []float64            `json:"token_logprobs"`
			TopLogprobs   []map[string]float64 `json:"top_logprobs"`
		}
	}
	Usage struct {
		CompletionTokens int `json:"completion_tokens"`
	}
}

// chatLogprob is one entry of a chat answer's logprobs.content.
type chatLogprob struct {
	Token       string
	Logprob     float64
	Bytes       []int
	TopLogprobs []struct {
		Token   string
		Logprob float64
	} `json:"top_logprobs"`
}

// TestLogprobs asks /v1/completions for logprobs of llama.cpp's greedy
// continuation and checks each against the log-softmax of the logits
// the reference backend gives for the same prefix, computed here; and
// chat logprobs, plain and streamed, for their shape and consistency.
func TestLogprobs(t *testing.T) {
	ref, err := refdata.LoadOutput("stories260K.once-upon")
	if err != nil {
		t.Fatal(err)
	}
	ts, _ := startServer(t, server.Options{})
	const n = 12
	resp, b := post(t, ts.URL+"/v1/completions", `{"model":"stories260k","prompt":"Once upon a time","max_tokens":12,"temperature":0,"logprobs":3}`)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	c := decode[textLogprobs](t, b).Choices[0]
	lp := c.Logprobs
	if lp == nil || len(lp.Tokens) != n || len(lp.TokenLogprobs) != n || len(lp.TopLogprobs) != n || strings.Join(lp.Tokens, "") != c.Text {
		t.Fatalf("logprobs %+v for text %q", lp, c.Text)
	}

	// The same prefixes, decoded in process.
	path, err := refdata.Path("models", "stories260K.gguf")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	be := engine.NewBackend(reference.New(), engine.Options{Name: "reference"})
	mi, err := be.LoadModel(ctx, backends.LoadRequest{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer be.UnloadModel(ctx, mi.ID)
	sid, err := be.OpenSession(ctx, mi.ID, 128)
	if err != nil {
		t.Fatal(err)
	}
	feed := ref.PromptIDs
	for i := range n {
		d, err := be.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: feed, Want: backends.WantLogits})
		if err != nil {
			t.Fatal(err)
		}
		var sum float64
		for _, x := range d.Logits {
			sum += math.Exp(float64(x))
		}
		want := float64(d.Logits[ref.GenIDs[i]]) - math.Log(sum)
		if math.Abs(lp.TokenLogprobs[i]-want) > 1e-4 {
			t.Errorf("token %d %q: logprob %g, log-softmax of the logits %g", i, lp.Tokens[i], lp.TokenLogprobs[i], want)
		}
		if len(lp.TopLogprobs[i]) == 0 || len(lp.TopLogprobs[i]) > 3 || math.Abs(lp.TopLogprobs[i][lp.Tokens[i]]-want) > 1e-4 {
			t.Errorf("token %d: top %v", i, lp.TopLogprobs[i])
		}
		feed = []int32{ref.GenIDs[i]}
	}

	// Chat: not streamed, then streamed (each entry on the chunk that
	// carries its token's text, as OpenAI streams them); the same greedy
	// tokens either way.
	body := `{"model":"stories260k","messages":[{"role":"user","content":"Hi"}],"max_tokens":10,"temperature":0,"logprobs":true,"top_logprobs":2`
	_, b = post(t, ts.URL+"/v1/chat/completions", body+`}`)
	plain := decode[struct {
		Choices []struct {
			Message  struct{ Content string }
			Logprobs struct{ Content []chatLogprob }
		}
	}](t, b).Choices[0]
	var joined strings.Builder
	for i, e := range plain.Logprobs.Content {
		joined.WriteString(e.Token)
		if len(e.TopLogprobs) != 2 || e.TopLogprobs[0].Token != e.Token || e.TopLogprobs[0].Logprob != e.Logprob ||
			e.TopLogprobs[1].Logprob > e.Logprob || e.Logprob > 0 || len(e.Bytes) != len(e.Token) {
			t.Errorf("chat entry %d: %+v", i, e)
		}
	}
	if len(plain.Logprobs.Content) != 10 || joined.String() != plain.Message.Content {
		t.Errorf("chat logprobs %d entries, tokens %q, text %q", len(plain.Logprobs.Content), joined.String(), plain.Message.Content)
	}
	_, b = post(t, ts.URL+"/v1/chat/completions", body+`,"stream":true}`)
	var streamed []chatLogprob
	for _, ev := range sseEvents(t, b) {
		if ev == "[DONE]" {
			continue
		}
		ch := decode[struct {
			Choices []struct {
				Delta    struct{ Content string }
				Logprobs *struct{ Content []chatLogprob }
			}
		}](t, []byte(ev))
		for _, x := range ch.Choices {
			if x.Delta.Content != "" && x.Logprobs == nil {
				t.Errorf("a chunk of text without its logprobs: %s", ev)
			}
			if x.Logprobs != nil {
				var spelled strings.Builder
				for _, e := range x.Logprobs.Content {
					spelled.WriteString(e.Token)
				}
				if spelled.String() != x.Delta.Content {
					t.Errorf("chunk %q carries the logprobs of %q", x.Delta.Content, spelled.String())
				}
				streamed = append(streamed, x.Logprobs.Content...)
			}
		}
	}
	if len(streamed) != len(plain.Logprobs.Content) {
		t.Fatalf("streamed %d logprobs, plain %d", len(streamed), len(plain.Logprobs.Content))
	}
	for i := range streamed {
		if streamed[i].Token != plain.Logprobs.Content[i].Token || streamed[i].Logprob != plain.Logprobs.Content[i].Logprob {
			t.Errorf("entry %d: streamed %+v, plain %+v", i, streamed[i], plain.Logprobs.Content[i])
		}
	}
}

// TestSamplingFields covers seed, penalties, finish_reason and usage,
// and the fields this server does not implement: each a 400 naming it.
func TestSamplingFields(t *testing.T) {
	ts, _ := startServer(t, server.Options{})
	comp := func(extra string) (string, string, int) {
		t.Helper()
		resp, b := post(t, ts.URL+"/v1/completions", `{"model":"stories260k","prompt":"Once upon a time","max_tokens":40`+extra+`}`)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", extra, resp.StatusCode, b)
		}
		c := decode[completion](t, b)
		return *c.Choices[0].Text, c.Choices[0].FinishReason, c.Usage.CompletionTokens
	}
	// A seed fixes the draw; another seed draws otherwise.
	a, _, _ := comp(`,"temperature":1,"seed":42`)
	if b, _, _ := comp(`,"temperature":1,"seed":42`); a != b {
		t.Errorf("seed 42 twice: %q, %q", a, b)
	}
	differ := false
	for s := range 4 {
		if x, _, _ := comp(`,"temperature":1,"seed":` + string(rune('0'+s))); x != a {
			differ = true
		}
	}
	if !differ {
		t.Errorf("every seed drew %q", a)
	}
	// Penalties change the greedy text (checked token by token against
	// the logits in internal/gen).
	plain, fr, n := comp(`,"temperature":0`)
	if fr != "length" || n != 40 {
		t.Errorf("finish %q, %d tokens", fr, n)
	}
	if pen, _, _ := comp(`,"temperature":0,"frequency_penalty":1.5,"presence_penalty":0.5`); pen == plain {
		t.Errorf("penalties changed nothing: %q", pen)
	}
	// A stop string: finish_reason stop, the text before it.
	if s, fr, n := comp(`,"temperature":0,"stop":["Lily"]`); fr != "stop" || s != ", there was a little girl named " || n < 8 || n >= 40 {
		t.Errorf("stop: %q %q %d", s, fr, n)
	}

	for _, c := range []struct{ name, url, extra, param string }{
		{"tools", "/v1/chat/completions", `"tools":[{"type":"function","function":{"name":"f"}}]`, "tools"},
		{"response_format type", "/v1/chat/completions", `"response_format":{"type":"xml"}`, "response_format.type"},
		{"response_format no schema", "/v1/chat/completions", `"response_format":{"type":"json_schema","json_schema":{"name":"x"}}`, "response_format.json_schema.schema"},
		{"schema keyword", "/v1/completions", `"response_format":{"type":"json_schema","json_schema":{"schema":{"type":"integer","minimum":1}}}`, "response_format.json_schema.schema"},
		{"grammar", "/v1/completions", `"grammar":"root ::= undefined-rule"`, "grammar"},
		{"grammar and response_format", "/v1/chat/completions", `"grammar":"root ::= \"a\"","response_format":{"type":"json_object"}`, "grammar"},
		{"logit_bias", "/v1/chat/completions", `"logit_bias":{"50":5}`, "logit_bias"},
		{"echo", "/v1/completions", `"echo":true`, "echo"},
		{"suffix", "/v1/completions", `"suffix":"The end"`, "suffix"},
		{"unknown", "/v1/completions", `"mirostat":2`, "mirostat"},
		{"top_logprobs without logprobs", "/v1/chat/completions", `"top_logprobs":2`, "top_logprobs"},
		{"top_logprobs too many", "/v1/chat/completions", `"logprobs":true,"top_logprobs":21`, "top_logprobs"},
		{"completion logprobs too many", "/v1/completions", `"logprobs":6`, "logprobs"},
		{"chat logprobs not a boolean", "/v1/chat/completions", `"logprobs":3`, "logprobs"},
		{"presence_penalty", "/v1/completions", `"presence_penalty":2.5`, "presence_penalty"},
		{"frequency_penalty", "/v1/completions", `"frequency_penalty":-3`, "frequency_penalty"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var body string
			if c.url == "/v1/completions" {
				body = `{"model":"stories260k","prompt":"x",` + c.extra + `}`
			} else {
				body = `{"model":"stories260k","messages":[{"role":"user","content":"x"}],` + c.extra + `}`
			}
			resp, b := post(t, ts.URL+c.url, body)
			e := decode[struct{ Error *apiErr }](t, b).Error
			if resp.StatusCode != 400 || e == nil || e.Param == nil || *e.Param != c.param || !strings.Contains(e.Message, c.param) {
				t.Errorf("%d %s", resp.StatusCode, b)
			}
		})
	}
	// Fields sent with their "off" value ask for nothing.
	resp, b := post(t, ts.URL+"/v1/chat/completions", `{"model":"stories260k","messages":[{"role":"user","content":"x"}],"max_tokens":2,`+
		`"response_format":{"type":"text"},"tools":[],"tool_choice":"none","logit_bias":null,"user":"u-1","logprobs":false}`)
	if resp.StatusCode != 200 {
		t.Errorf("off values: %d %s", resp.StatusCode, b)
	}
}

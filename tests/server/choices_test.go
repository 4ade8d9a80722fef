package server_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/realmrt/realm/internal/refdata"
	"github.com/realmrt/realm/server"
)

// choiceChunk is one streamed chunk with its logprobs, both shapes.
type choiceChunk struct {
	Choices []struct {
		Index int `json:"index"`
		Delta struct {
			Content *string `json:"content"`
		} `json:"delta"`
		Text         *string `json:"text"`
		FinishReason *string `json:"finish_reason"`
		Logprobs     *struct {
			Content       []chatLogprob        `json:"content"`
			Tokens        []string             `json:"tokens"`
			TokenLogprobs []float64            `json:"token_logprobs"`
			TopLogprobs   []map[string]float64 `json:"top_logprobs"`
			TextOffset    []int                `json:"text_offset"`
		} `json:"logprobs"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
		TotalTokens      int `json:"total_tokens"`
	} `json:"usage"`
}

// choiceAnswer is a non-streamed answer with n choices and logprobs.
type choiceAnswer struct {
	Choices []struct {
		Index   int `json:"index"`
		Message *struct {
			Content string `json:"content"`
		} `json:"message"`
		Text         *string `json:"text"`
		FinishReason string  `json:"finish_reason"`
		Logprobs     *struct {
			Content []chatLogprob `json:"content"`
			Tokens  []string      `json:"tokens"`
		} `json:"logprobs"`
	} `json:"choices"`
	Usage struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
		TotalTokens      int `json:"total_tokens"`
	} `json:"usage"`
}

// TestChoices asks for n > 1 choices, streamed and not: n distinct
// sampled answers with their indexes, the same ones again for the same
// seed, the prompt counted once in the usage, and a streamed request
// giving per choice the text and logprobs of the non-streamed one.
func TestChoices(t *testing.T) {
	ts, _ := startServer(t, server.Options{})
	for _, ep := range []struct {
		name, path, body string
	}{
		{"chat", "/v1/chat/completions", `"messages":[{"role":"user","content":"Tell me a story."}]`},
		{"completions", "/v1/completions", `"prompt":"Once upon a time"`},
	} {
		t.Run(ep.name, func(t *testing.T) {
			chat := ep.name == "chat"
			lp := `"logprobs":true,"top_logprobs":2`
			if !chat {
				lp = `"logprobs":2`
			}
			body := fmt.Sprintf(`{"model":"stories260k",%s,"n":3,"max_tokens":12,"temperature":1,"seed":42,%s}`, ep.body, lp)
			ask := func() choiceAnswer {
				resp, b := post(t, ts.URL+ep.path, body)
				if resp.StatusCode != 200 {
					t.Fatalf("%d %s", resp.StatusCode, b)
				}
				return decode[choiceAnswer](t, b)
			}
			a, again := ask(), ask()
			if len(a.Choices) != 3 {
				t.Fatalf("%d choices, want 3", len(a.Choices))
			}
			texts := make([]string, 3)
			completion := 0
			for i, c := range a.Choices {
				if c.Index != i {
					t.Errorf("choice %d has index %d", i, c.Index)
				}
				if chat {
					texts[i] = c.Message.Content
				} else {
					texts[i] = *c.Text
				}
				if c.Logprobs == nil || len(c.Logprobs.Content)+len(c.Logprobs.Tokens) == 0 {
					t.Errorf("choice %d: no logprobs", i)
				}
				completion += max(len(c.Logprobs.Content), len(c.Logprobs.Tokens))
			}
			if texts[0] == texts[1] || texts[1] == texts[2] || texts[0] == texts[2] {
				t.Errorf("sampled choices should differ: %q", texts)
			}
			for i, c := range again.Choices {
				if got := choiceText(c.Message, c.Text); got != texts[i] {
					t.Errorf("seed 42 again: choice %d %q, first time %q", i, got, texts[i])
				}
			}
			if a.Usage.CompletionTokens != completion || a.Usage.PromptTokens < 4 || a.Usage.TotalTokens != a.Usage.PromptTokens+completion {
				t.Errorf("usage %+v, want the prompt once and %d completion tokens", a.Usage, completion)
			}
			one := decode[choiceAnswer](t, mustPost(t, ts.URL+ep.path, strings.Replace(body, `"n":3`, `"n":1`, 1)))
			if one.Usage.PromptTokens != a.Usage.PromptTokens || choiceText(one.Choices[0].Message, one.Choices[0].Text) != texts[0] {
				t.Errorf("n=1: %+v, want choice 0 of n=3 and the same prompt tokens", one)
			}

			// Streamed: the same choices, each token's logprobs on the
			// chunk that carries its text.
			resp, b := post(t, ts.URL+ep.path, strings.Replace(body, `"seed":42`, `"seed":42,"stream":true,"stream_options":{"include_usage":true}`, 1))
			if resp.StatusCode != 200 {
				t.Fatalf("stream: %d %s", resp.StatusCode, b)
			}
			events := sseEvents(t, b)
			if events[len(events)-1] != "[DONE]" {
				t.Fatalf("stream does not end with [DONE]: %q", events)
			}
			got := make([]strings.Builder, 3)
			tokens := make([]strings.Builder, 3)
			finished := make([]bool, 3)
			var u *choiceChunk
			for _, ev := range events[:len(events)-1] {
				ch := decode[choiceChunk](t, []byte(ev))
				if ch.Usage != nil {
					u = &ch
					continue
				}
				for _, c := range ch.Choices {
					if c.Index < 0 || c.Index > 2 || finished[c.Index] {
						t.Fatalf("chunk for choice %d after its end: %s", c.Index, ev)
					}
					text := c.Delta.Content
					if !chat {
						text = c.Text
					}
					if c.FinishReason != nil {
						finished[c.Index] = true
						continue
					}
					if text == nil || *text == "" {
						continue // chat's role chunk
					}
					got[c.Index].WriteString(*text)
					if c.Logprobs == nil {
						t.Fatalf("a text chunk without logprobs: %s", ev)
					}
					var spelled strings.Builder
					if chat {
						for _, e := range c.Logprobs.Content {
							spelled.WriteString(e.Token)
							if len(e.TopLogprobs) != 2 || e.Logprob > 0 {
								t.Errorf("logprob entry %+v", e)
							}
						}
					} else {
						for j, tk := range c.Logprobs.Tokens {
							spelled.WriteString(tk)
							if c.Logprobs.TextOffset[j] != len(tokens[c.Index].String())+len(spelled.String())-len(tk) {
								t.Errorf("text_offset %v at %q", c.Logprobs.TextOffset, tokens[c.Index].String())
							}
						}
						if len(c.Logprobs.TokenLogprobs) != len(c.Logprobs.Tokens) || len(c.Logprobs.TopLogprobs) != len(c.Logprobs.Tokens) {
							t.Errorf("legacy logprobs %+v", c.Logprobs)
						}
					}
					if spelled.String() != *text {
						t.Errorf("chunk %q carries the logprobs of %q", *text, spelled.String())
					}
					tokens[c.Index].WriteString(spelled.String())
				}
			}
			for i := range 3 {
				if !finished[i] || got[i].String() != texts[i] {
					t.Errorf("streamed choice %d %q (finished %v), not streamed %q", i, got[i].String(), finished[i], texts[i])
				}
			}
			if u == nil || u.Usage.CompletionTokens != a.Usage.CompletionTokens || u.Usage.PromptTokens != a.Usage.PromptTokens {
				t.Errorf("streamed usage %+v, not streamed %+v", u, a.Usage)
			}
		})
	}
}

// choiceText is a choice's text, chat or completion.
func choiceText(m *struct {
	Content string `json:"content"`
}, text *string) string {
	if m != nil {
		return m.Content
	}
	if text != nil {
		return *text
	}
	return ""
}

// mustPost posts and fails the test unless the answer is 200.
func mustPost(t *testing.T, url, body string) []byte {
	t.Helper()
	resp, b := post(t, url, body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	return b
}

// TestChoicesPolicy: n is bounded by the app's max_n and OpenAI's 128,
// and n > 1 with tools is refused, each with a 400 naming n.
func TestChoicesPolicy(t *testing.T) {
	ts := startModelsServer(t, map[string]string{"stories-qwen": qwenTemplate(t)},
		fmt.Sprintf("app \"chat\" {\n  wasm = %q\n  models = [\"*\"]\n  max_n = 2\n}\n", testEnv.chat))
	for _, tc := range []struct {
		body, want string
	}{
		{`{"model":"stories-qwen","prompt":"Once","n":3,"max_tokens":2}`, "at most 2"},
		{`{"model":"stories-qwen","prompt":"Once","n":0,"max_tokens":2}`, "between 1 and 128"},
		{`{"model":"stories-qwen","prompt":"Once","n":129,"max_tokens":2}`, "between 1 and 128"},
		{`{"model":"stories-qwen","messages":[{"role":"user","content":"Hi"}],"n":2,"tools":` + weatherTool + `}`, "not supported with tools"},
	} {
		path := "/v1/completions"
		if strings.Contains(tc.body, "messages") {
			path = "/v1/chat/completions"
		}
		resp, b := post(t, ts.URL+path, tc.body)
		e := decode[struct{ Error apiErr }](t, b).Error
		if resp.StatusCode != 400 || e.Param == nil || *e.Param != "n" || !strings.Contains(e.Message, tc.want) {
			t.Errorf("%s: %d %s, want a 400 on n saying %q", tc.body, resp.StatusCode, b, tc.want)
		}
	}
	b := mustPost(t, ts.URL+"/v1/completions", `{"model":"stories-qwen","prompt":"Once","n":2,"max_tokens":2}`)
	if a := decode[choiceAnswer](t, b); len(a.Choices) != 2 {
		t.Errorf("n=2 within max_n: %s", b)
	}
}

// TestBadToolRequests: tools that do not fit the context, an unknown
// tool type and fields the server does not implement inside messages and
// tools are OpenAI-shaped 400s naming the field.
func TestBadToolRequests(t *testing.T) {
	ts := startModelsServer(t, map[string]string{"stories-qwen": qwenTemplate(t)}, "")
	var many []string
	for i := range 40 {
		many = append(many, fmt.Sprintf(`{"type":"function","function":{"name":"tool_%d","description":"%s","parameters":{"type":"object","properties":{"x":{"type":"string","description":"an argument"}}}}}`,
			i, strings.Repeat("Looks up something useful for the user. ", 4)))
	}
	msgs := `"messages":[{"role":"user","content":"What is the weather in Paris?"}]`
	for _, tc := range []struct {
		name, body, param, code string
	}{
		{"tools beyond the context", `{"model":"stories-qwen",` + msgs + `,"tools":[` + strings.Join(many, ",") + `]}`, "tools", "context_length_exceeded"},
		{"unknown tool type", `{"model":"stories-qwen",` + msgs + `,"tools":[{"type":"code_interpreter"}]}`, "tools[0].type", ""},
		{"strict function", `{"model":"stories-qwen",` + msgs + `,"tools":[{"type":"function","function":{"name":"f","strict":true}}]}`, "tools[0].function.strict", "unsupported_parameter"},
		{"unknown tool field", `{"model":"stories-qwen",` + msgs + `,"tools":[{"type":"function","function":{"name":"f"},"cache":true}]}`, "tools[0].cache", "unsupported_parameter"},
		{"message audio", `{"model":"stories-qwen","messages":[{"role":"assistant","content":"x","audio":{"id":"a"}},{"role":"user","content":"Hi"}]}`, "messages[0].audio", "unsupported_parameter"},
		{"stream_options field", `{"model":"stories-qwen",` + msgs + `,"stream":true,"stream_options":{"include_usage":true,"continuous":true}}`, "stream_options.continuous", "unsupported_parameter"},
	} {
		resp, b := post(t, ts.URL+"/v1/chat/completions", tc.body)
		e := decode[struct{ Error apiErr }](t, b).Error
		if resp.StatusCode != 400 || e.Type != "invalid_request_error" || e.Param == nil || *e.Param != tc.param {
			t.Errorf("%s: %d %s, want a 400 on %s", tc.name, resp.StatusCode, b, tc.param)
			continue
		}
		if tc.code != "" && (e.Code == nil || *e.Code != tc.code) {
			t.Errorf("%s: code %v, want %s", tc.name, e.Code, tc.code)
		}
	}
	// Off values ask for nothing and pass.
	mustPost(t, ts.URL+"/v1/chat/completions", `{"model":"stories-qwen","messages":[{"role":"user","content":"Hi","audio":null}],"max_tokens":2,"tools":[{"type":"function","function":{"name":"f","strict":false}}]}`)
	// The same tools fit a context they do not overflow: a few of them.
	mustPost(t, ts.URL+"/v1/chat/completions", `{"model":"stories-qwen",`+msgs+`,"max_tokens":2,"tools":[`+strings.Join(many[:1], ",")+`]}`)
}

// qwenTemplate is Qwen 2.5's chat template (Hermes-style tool calls).
func qwenTemplate(t *testing.T) string {
	t.Helper()
	root, err := refdata.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "chat", "testdata", "templates", "Qwen-Qwen2.5-7B-Instruct.jinja"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

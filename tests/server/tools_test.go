package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/realmrt/realm/internal/refdata"
)

// toolCallAnswer is a chat answer with tool calls.
type toolCallAnswer struct {
	Choices []struct {
		Message struct {
			Content   *string
			ToolCalls []struct {
				ID       string
				Type     string
				Function struct{ Name, Arguments string }
			} `json:"tool_calls"`
		}
		FinishReason string `json:"finish_reason"`
	}
	Usage struct {
		PromptTokens int `json:"prompt_tokens"`
	} `json:"usage"`
}

const weatherTool = `[{"type":"function","function":{"name":"get_weather","description":"Current weather of a city","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}]`

// TestTools renders tools with real chat templates (Qwen 2.5's Hermes
// style <tool_call> and Llama 3.1's JSON) and parses tool calls back.
// The model's own answer comes through the chat app (stories has random
// weights for these templates: it writes no tool call, and the answer
// is text); the echo app answers what the test chooses, so that the
// server's parsing of a tool call, the round trip with the tool's
// result, and what the template rendered can be checked.
func TestTools(t *testing.T) {
	root, err := refdata.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	tmpl := func(name string) string {
		b, err := os.ReadFile(filepath.Join(root, "chat", "testdata", "templates", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	ts := startModelsServer(t, map[string]string{
		"stories-qwen":    tmpl("Qwen-Qwen2.5-7B-Instruct.jinja"),
		"stories-llama3":  tmpl("meta-llama-Llama-3.1-8B-Instruct.jinja"),
		"stories-mistral": mistralV02,
		"stories-nemo":    tmpl("mistralai-Mistral-Nemo-Instruct-2407.jinja"),
		// The Ollama API has no app route: this name routes to echo.
		"stories-qwen-echo": tmpl("Qwen-Qwen2.5-7B-Instruct.jinja"),
	}, fmt.Sprintf("app \"echo\" {\n  wasm = %[1]q\n  models = [\"*\"]\n}\napp \"echo-ollama\" {\n  wasm = %[1]q\n  models = [\"stories-qwen-echo\"]\n}\n",
		filepath.Join(testEnv.dir, "bin", "echo.wasm")))
	chatURL, echoURL := ts.URL+"/v1/chat/completions", ts.URL+"/v1/apps/echo/chat/completions"
	ask := func(url, model, user, extra string) (int, []byte) {
		t.Helper()
		u, _ := json.Marshal(user)
		resp, b := post(t, url, `{"model":"`+model+`","messages":[{"role":"user","content":`+string(u)+`}],"max_tokens":8,"temperature":0`+extra+`}`)
		return resp.StatusCode, b
	}

	for _, c := range []struct {
		model, call string
	}{
		{"stories-qwen", "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>"},
		{"stories-llama3", `{"name": "get_weather", "parameters": {"city": "Paris"}}`},
		{"stories-nemo", `[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}}]`},
	} {
		t.Run(c.model, func(t *testing.T) {
			// The real model: tools are rendered into the prompt (more
			// prompt tokens), and its text answer comes back as text.
			st, b := ask(chatURL, c.model, "What is the weather in Paris?", "")
			plain := decode[toolCallAnswer](t, b)
			st2, b2 := ask(chatURL, c.model, "What is the weather in Paris?", `,"tools":`+weatherTool)
			with := decode[toolCallAnswer](t, b2)
			if st != 200 || st2 != 200 || with.Usage.PromptTokens <= plain.Usage.PromptTokens+10 || with.Choices[0].FinishReason != "length" {
				t.Fatalf("with tools %d %s\nwithout %d %s", st2, b2, st, b)
			}
			// What the template rendered.
			_, b = ask(echoURL, c.model, "PROMPT", `,"tools":`+weatherTool)
			prompt := *decode[toolCallAnswer](t, b).Choices[0].Message.Content
			if !strings.Contains(prompt, `"name": "get_weather"`) || !strings.Contains(prompt, "Current weather of a city") {
				t.Errorf("rendered prompt does not hold the tool:\n%s", prompt)
			}
			// A tool call in the answer is parsed, plain and streamed.
			st, b = ask(echoURL, c.model, c.call, `,"tools":`+weatherTool)
			a := decode[toolCallAnswer](t, b).Choices[0]
			if st != 200 || a.FinishReason != "tool_calls" || len(a.Message.ToolCalls) != 1 {
				t.Fatalf("%d %s", st, b)
			}
			tc := a.Message.ToolCalls[0]
			if tc.Type != "function" || tc.Function.Name != "get_weather" || tc.Function.Arguments != `{"city": "Paris"}` || tc.ID == "" {
				t.Errorf("tool call %+v", tc)
			}
			_, b = ask(echoURL, c.model, c.call, `,"tools":`+weatherTool+`,"stream":true`)
			var name, args, finish string
			for _, ev := range sseEvents(t, b) {
				if ev == "[DONE]" {
					continue
				}
				var ch struct {
					Choices []struct {
						Delta struct {
							ToolCalls []struct {
								Function struct{ Name, Arguments string }
							} `json:"tool_calls"`
						}
						FinishReason *string `json:"finish_reason"`
					}
				}
				if err := json.Unmarshal([]byte(ev), &ch); err != nil {
					t.Fatal(err)
				}
				for _, x := range ch.Choices {
					for _, d := range x.Delta.ToolCalls {
						name += d.Function.Name
						args += d.Function.Arguments
					}
					if x.FinishReason != nil {
						finish = *x.FinishReason
					}
				}
			}
			if name != "get_weather" || args != `{"city": "Paris"}` || finish != "tool_calls" {
				t.Errorf("streamed tool call %q %q %q", name, args, finish)
			}
			// The round trip: the call and the tool's result go back
			// into the template.
			// (The echo app answers with the prompt: the user's turn
			// is "PROMPT"; templates such as Mistral's want no second
			// user turn right after a tool result.)
			msgs := `[{"role":"user","content":"PROMPT"},` +
				`{"role":"assistant","content":null,"tool_calls":[{"id":"` + tc.ID + `","type":"function","function":{"name":"get_weather","arguments":` + mustJSON(tc.Function.Arguments) + `}}]},` +
				`{"role":"tool","tool_call_id":"` + tc.ID + `","content":"sunny, 21 C"}]`
			resp, b := post(t, echoURL, `{"model":"`+c.model+`","messages":`+msgs+`,"tools":`+weatherTool+`}`)
			if resp.StatusCode != 200 {
				t.Fatalf("round trip: %d %s", resp.StatusCode, b)
			}
			prompt = *decode[toolCallAnswer](t, b).Choices[0].Message.Content
			if !strings.Contains(prompt, "sunny, 21 C") || !strings.Contains(prompt, `"city": "Paris"`) {
				t.Errorf("round trip prompt:\n%s", prompt)
			}
		})
	}

	// The round trip with the official openai client.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	nodeDir := nodeInstall(t, ctx, "openai")
	call := "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>"
	cmd := exec.CommandContext(ctx, "node", "tools.mjs", ts.URL+"/v1/apps/echo", "stories-qwen", call)
	cmd.Dir = nodeDir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node tools: %v\n%s\n%s", err, out, stderr.Bytes())
	}
	var nr struct {
		Finish string
		Calls  []struct {
			ID       string
			Function struct{ Name, Arguments string }
		}
		Prompt string
	}
	if err := json.Unmarshal(out, &nr); err != nil {
		t.Fatalf("node tools output %q: %v", out, err)
	}
	if nr.Finish != "tool_calls" || len(nr.Calls) != 1 || nr.Calls[0].Function.Name != "get_weather" ||
		!strings.Contains(nr.Prompt, "<tool_response>\nsunny in Paris\n</tool_response>") || !strings.Contains(nr.Prompt, `{"name": "get_weather", "arguments": {"city": "Paris"}}`) {
		t.Errorf("node tools round trip: %s", out)
	}

	// Ollama's /api/chat: tools in, tool_calls out with the arguments
	// as an object, plain and streamed, and the round trip.
	ocall, _ := json.Marshal(call)
	for _, stream := range []string{"false", "true"} {
		resp, b := post(t, ts.URL+"/api/chat", `{"model":"stories-qwen-echo","stream":`+stream+`,"tools":`+weatherTool+
			`,"messages":[{"role":"user","content":`+string(ocall)+`}]}`)
		var calls []json.RawMessage
		for _, l := range ndjson(t, b) {
			if m, ok := l["message"].(map[string]any); ok && m["tool_calls"] != nil {
				cb, _ := json.Marshal(m["tool_calls"])
				calls = append(calls, cb)
			}
		}
		if resp.StatusCode != 200 || len(calls) != 1 || string(calls[0]) != `[{"function":{"arguments":{"city":"Paris"},"name":"get_weather"}}]` {
			t.Errorf("ollama stream=%s: %d %s", stream, resp.StatusCode, b)
		}
	}
	resp, b := post(t, ts.URL+"/api/chat", `{"model":"stories-qwen-echo","stream":false,"tools":`+weatherTool+`,"messages":[`+
		`{"role":"user","content":"Weather in Paris?"},`+
		`{"role":"assistant","content":"","tool_calls":[{"function":{"name":"get_weather","arguments":{"city":"Paris"}}}]},`+
		`{"role":"tool","tool_name":"get_weather","content":"rainy, 9 C"},{"role":"user","content":"PROMPT"}]}`)
	if m := decode[struct{ Message struct{ Content string } }](t, b); resp.StatusCode != 200 ||
		!strings.Contains(m.Message.Content, "<tool_response>\nrainy, 9 C\n</tool_response>") || !strings.Contains(m.Message.Content, `"arguments": {"city": "Paris"}`) {
		t.Errorf("ollama round trip: %d %s", resp.StatusCode, b)
	}

	// Without tools, a tool-call-looking answer stays text.
	_, b = ask(echoURL, "stories-qwen", `<tool_call>{"name":"x","arguments":{}}</tool_call>`, "")
	if a := decode[toolCallAnswer](t, b).Choices[0]; a.FinishReason != "stop" || len(a.Message.ToolCalls) != 0 {
		t.Errorf("no tools: %s", b)
	}
	for _, c := range []struct{ name, model, extra, param string }{
		{"template without tools", "stories-mistral", `,"tools":` + weatherTool, "tools"},
		{"required without a format", "stories-mistral", `,"tools":` + weatherTool + `,"tool_choice":"required"`, "tools"},
		{"named, not declared", "stories-qwen", `,"tools":` + weatherTool + `,"tool_choice":{"type":"function","function":{"name":"get_time"}}`, "tool_choice"},
		{"bad tool_choice", "stories-qwen", `,"tools":` + weatherTool + `,"tool_choice":"always"`, "tool_choice"},
		{"unsupported parameters keyword", "stories-qwen", `,"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"d":{"type":"string","format":"date"}}}}}],"tool_choice":"required"`, "tools[0].function.parameters"},
		{"forced tool with response_format", "stories-qwen", `,"tools":` + weatherTool + `,"tool_choice":"required","response_format":{"type":"json_object"}`, "tool_choice"},
		{"not a function", "stories-qwen", `,"tools":[{"type":"retrieval"}]`, "tools[0].type"},
		{"no name", "stories-qwen", `,"tools":[{"type":"function","function":{}}]`, "tools[0].function.name"},
		{"not an array", "stories-qwen", `,"tools":{"type":"function"}`, "tools"},
		{"too many", "stories-qwen", `,"tools":[` + strings.Repeat(`{"type":"function","function":{"name":"f"}},`, 128) + `{"type":"function","function":{"name":"f"}}]`, "tools"},
	} {
		t.Run(c.name, func(t *testing.T) {
			st, b := ask(chatURL, c.model, "Hi", c.extra)
			e := decode[struct{ Error *apiErr }](t, b).Error
			if st != 400 || e == nil || e.Param == nil || *e.Param != c.param {
				t.Errorf("%d %s", st, b)
			}
		})
	}
}

func mustJSON(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

package server_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/realmrt/realm/internal/refdata"
	"github.com/realmrt/realm/server"
)

// nodeResult is what node/client.mjs prints.
type nodeResult struct {
	Chat struct {
		Text   string
		Chunks int
		Roles  []string
		Finish string
		Usage  *struct {
			PromptTokens     int `json:"prompt_tokens"`
			CompletionTokens int `json:"completion_tokens"`
			TotalTokens      int `json:"total_tokens"`
		}
	}
	Logprobs struct {
		Text    string
		Content []chatLogprob
	}
	Refused *struct {
		Status int
		Param  string
	}
	Completion struct {
		Text   string
		Finish string
		Object string
		Usage  struct {
			PromptTokens     int `json:"prompt_tokens"`
			CompletionTokens int `json:"completion_tokens"`
		}
	}
}

// Both clients send the same requests (see node/client.mjs).
const (
	clientChat       = `{"model":"stories260k","messages":[{"role":"user","content":"Tell me a story."}],"max_tokens":24,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}`
	clientCompletion = `{"model":"stories260k","prompt":"Once upon a time","max_tokens":40,"temperature":0}`
)

// TestOpenAINodeClient drives the server with the official openai npm
// package (installed into tests/server/node on first use) and with curl:
// a streamed chat completion and a non-streamed completion each, against
// the bundled stories model, greedy.
func TestOpenAINodeClient(t *testing.T) {
	ref, err := refdata.LoadOutput("stories260K.once-upon")
	if err != nil {
		t.Fatal(err)
	}
	ts, _ := startServer(t, server.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	nodeDir, err := filepath.Abs("node")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(nodeDir, "node_modules", "openai", "package.json")); err != nil {
		cmd := exec.CommandContext(ctx, "npm", "install", "--no-audit", "--no-fund", "--loglevel=error")
		cmd.Dir = nodeDir
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm install (node and npm are needed, and the registry on first run): %v\n%s", err, b)
		}
	}
	cmd := exec.CommandContext(ctx, "node", "client.mjs", ts.URL+"/v1", "stories260k")
	cmd.Dir = nodeDir
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("node client: %v\n%s\n%s", err, out, stderr)
	}
	var res nodeResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("node output %q: %v", out, err)
	}
	t.Logf("node: %s", out)

	// The streamed chat.
	c := res.Chat
	if len(c.Roles) != 1 || c.Roles[0] != "assistant" || c.Finish != "length" || c.Text == "" || c.Chunks < 4 {
		t.Errorf("node chat stream: %+v", c)
	}
	if c.Usage == nil || c.Usage.CompletionTokens != 24 || c.Usage.TotalTokens != c.Usage.PromptTokens+24 || c.Usage.PromptTokens < 5 {
		t.Errorf("node chat usage: %+v", c.Usage)
	}
	// The chat with logprobs: one entry per token, the tokens spelling
	// the text, the greedy token the most likely.
	var joined strings.Builder
	for _, e := range res.Logprobs.Content {
		joined.WriteString(e.Token)
		if len(e.TopLogprobs) != 2 || e.TopLogprobs[0].Token != e.Token || e.Logprob > 0 {
			t.Errorf("node logprobs entry %+v", e)
		}
	}
	if len(res.Logprobs.Content) != 8 || joined.String() != res.Logprobs.Text {
		t.Errorf("node logprobs: %+v", res.Logprobs)
	}
	if r := res.Refused; r == nil || r.Status != 400 || r.Param != "response_format.json_schema.schema" {
		t.Errorf("node response_format with an unsupported schema keyword: %+v", r)
	}
	// The completion: greedy, so the reference continuation.
	want := ", there was a little girl named Lily"
	if !strings.HasPrefix(ref.GenText, want) {
		t.Fatalf("reference text %q", ref.GenText)
	}
	p := res.Completion
	if !strings.HasPrefix(p.Text, want) || !strings.HasPrefix(ref.GenText, p.Text) || p.Object != "text_completion" || p.Finish != "length" {
		t.Errorf("node completion: %+v, want a prefix of %q", p, ref.GenText)
	}
	if p.Usage.PromptTokens != len(ref.PromptIDs) || p.Usage.CompletionTokens != 40 {
		t.Errorf("node completion usage: %+v", p.Usage)
	}

	// The same two with curl.
	curl := func(body string, stream bool) []byte {
		args := []string{"-sS", "--fail-with-body", "--max-time", "60", "-H", "Content-Type: application/json", "-d", body}
		url := ts.URL + "/v1/completions"
		if stream {
			args = append(args, "-N")
			url = ts.URL + "/v1/chat/completions"
		}
		b, err := exec.CommandContext(ctx, "curl", append(args, url)...).CombinedOutput()
		if err != nil {
			t.Fatalf("curl: %v\n%s", err, b)
		}
		return b
	}
	events := sseEvents(t, curl(clientChat, true))
	if len(events) < 4 || events[len(events)-1] != "[DONE]" {
		t.Fatalf("curl stream: %q", events)
	}
	var text strings.Builder
	for _, ev := range events[:len(events)-1] {
		ch := decode[streamChunk](t, []byte(ev))
		for _, x := range ch.Choices {
			if x.Delta.Content != nil {
				text.WriteString(*x.Delta.Content)
			}
		}
	}
	if text.String() != c.Text {
		t.Errorf("curl chat %q, node chat %q", text.String(), c.Text)
	}
	comp := decode[completion](t, curl(clientCompletion, false))
	if comp.Choices[0].Text == nil || *comp.Choices[0].Text != p.Text || comp.Usage.CompletionTokens != 40 {
		t.Errorf("curl completion %+v, node %q", comp, p.Text)
	}
}

package server_test

import (
	"context"
	"encoding/json"
	"os/exec"
	"testing"
	"time"

	"github.com/realmrt/realm/server"
)

// choicesNodeResult is what node/choices.mjs prints.
type choicesNodeResult struct {
	Chat struct {
		Texts    []string
		Indexes  []int
		Logprobs [][]string
		Usage    struct {
			PromptTokens     int `json:"prompt_tokens"`
			CompletionTokens int `json:"completion_tokens"`
		}
	}
	ChatStream struct {
		Texts   []string
		Tokens  [][]string
		Chunks  int
		Spelled int
		Finish  []*string
		Usage   *struct {
			PromptTokens     int `json:"prompt_tokens"`
			CompletionTokens int `json:"completion_tokens"`
		}
	}
	CompletionStream struct {
		Texts   []string
		Chunks  int
		Spelled int
	}
	Completion struct {
		Texts []string
	}
	TooMany, BadTool *struct {
		Status int
		Param  string
	}
}

// TestChoicesNodeClient drives n > 1 and streamed logprobs with the
// official openai npm client (node/choices.mjs): the client parses the
// chunks of both choices and their per-chunk logprobs, the streamed
// choices equal the non-streamed ones of the same seed, and the client
// sees the 400s of n beyond the policy and of an unknown tool type.
func TestChoicesNodeClient(t *testing.T) {
	ts, _ := startServer(t, server.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	nodeDir := nodeInstall(t, ctx, "openai")
	cmd := exec.CommandContext(ctx, "node", "choices.mjs", ts.URL+"/v1", "stories260k")
	cmd.Dir = nodeDir
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("node choices.mjs: %v\n%s\n%s", err, out, stderr)
	}
	var r choicesNodeResult
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("node output %q: %v", out, err)
	}
	t.Logf("node: %s", out)
	c := r.Chat
	if len(c.Texts) != 2 || c.Texts[0] == c.Texts[1] || c.Indexes[0] != 0 || c.Indexes[1] != 1 {
		t.Errorf("chat n=2: %+v", c)
	}
	if c.Usage.CompletionTokens != len(c.Logprobs[0])+len(c.Logprobs[1]) {
		t.Errorf("chat usage %+v for %d+%d tokens", c.Usage, len(c.Logprobs[0]), len(c.Logprobs[1]))
	}
	s := r.ChatStream
	for i := range 2 {
		if s.Texts[i] != c.Texts[i] || len(s.Tokens[i]) != len(c.Logprobs[i]) || s.Finish[i] == nil {
			t.Errorf("streamed choice %d: %q %q (finish %v), not streamed %q %q", i, s.Texts[i], s.Tokens[i], s.Finish[i], c.Texts[i], c.Logprobs[i])
		}
	}
	if s.Chunks < 4 || s.Spelled != s.Chunks {
		t.Errorf("chat stream: %d of %d chunks carry the logprobs of their text", s.Spelled, s.Chunks)
	}
	if s.Usage == nil || s.Usage.CompletionTokens != c.Usage.CompletionTokens || s.Usage.PromptTokens != c.Usage.PromptTokens {
		t.Errorf("chat stream usage %+v, not streamed %+v", s.Usage, c.Usage)
	}
	cs := r.CompletionStream
	if len(cs.Texts) != 2 || cs.Texts[0] != r.Completion.Texts[0] || cs.Texts[1] != r.Completion.Texts[1] || cs.Chunks < 4 || cs.Spelled != cs.Chunks {
		t.Errorf("completion stream %+v, not streamed %q", cs, r.Completion.Texts)
	}
	if r.TooMany == nil || r.TooMany.Status != 400 || r.TooMany.Param != "n" {
		t.Errorf("n=500: %+v", r.TooMany)
	}
	if r.BadTool == nil || r.BadTool.Status != 400 || r.BadTool.Param != "tools[0].type" {
		t.Errorf("unknown tool type: %+v", r.BadTool)
	}
}

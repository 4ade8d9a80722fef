package main

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/realmrt/realm/internal/refdata"
)

// runCLI runs realMain in-process and returns its exit code and output.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	env := &cliEnv{Stdout: &stdout, Stderr: &stderr, Stdin: strings.NewReader(""), Getenv: func(string) string { return "" }}
	code := realMain(context.Background(), env, args)
	return code, stdout.String(), stderr.String()
}

func TestGenerateJSON(t *testing.T) {
	ref, err := refdata.LoadOutput("stories260K.once-upon")
	if err != nil {
		t.Fatal(err)
	}
	path, err := refdata.Path("models", "stories260K.gguf")
	if err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCLI(t, "generate", "-m", path, "-p", ref.Prompt, "-n", "64", "--temp", "0", "--ctx", "512", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var out struct {
		PromptIDs  []int32 `json:"prompt_ids"`
		IDs        []int32 `json:"ids"`
		Text       string  `json:"text"`
		StopReason string  `json:"stop_reason"`
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("output %q: %v", stdout, err)
	}
	if !slices.Equal(out.PromptIDs, ref.PromptIDs) || !slices.Equal(out.IDs, ref.GenIDs) {
		t.Errorf("prompt_ids %v ids %v\nwant %v %v", out.PromptIDs, out.IDs, ref.PromptIDs, ref.GenIDs)
	}
	if out.StopReason != "length" || !strings.HasPrefix(out.Text, ", there was a little girl named Lily.") {
		t.Errorf("stop_reason %q text %q", out.StopReason, out.Text)
	}
}

func TestGenerateStreams(t *testing.T) {
	path, err := refdata.Path("models", "stories260K.gguf")
	if err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCLI(t, "generate", "-m", path, "-p", "Once upon a time", "-n", "12", "--temp", "0")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if stdout != ", there was a little girl named Lily. She\n" {
		t.Errorf("stdout %q", stdout)
	}
	// Sampling with a seed is reproducible.
	args := []string{"generate", "-m", path, "-p", "Once upon a time", "-n", "20", "--temp", "1", "--seed", "7"}
	_, a, _ := runCLI(t, args...)
	_, b, _ := runCLI(t, args...)
	if a != b || a == "" {
		t.Errorf("same seed, different text: %q vs %q", a, b)
	}
}

func TestGenerateErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no model", []string{"generate", "-p", "x"}, 2, "usage"},
		{"bad flag", []string{"generate", "--bogus"}, 2, "bogus"},
		{"missing file", []string{"generate", "-m", "/nonexistent/model.gguf", "-p", "x"}, 1, "no such file"},
		{"extra args", []string{"generate", "-m", "x", "y"}, 1, "unexpected"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.msg) {
				t.Errorf("exit %d stderr %q; want %d containing %q", code, stderr, tc.code, tc.msg)
			}
		})
	}
}

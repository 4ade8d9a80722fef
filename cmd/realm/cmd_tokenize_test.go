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

func runTokenizeCLI(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := &cliEnv{Stdout: &out, Stderr: &errb, Stdin: strings.NewReader(stdin), Getenv: func(string) string { return "" }}
	code := realMain(context.Background(), env, args)
	return code, out.String(), errb.String()
}

func TestTokenizeCommand(t *testing.T) {
	model, err := refdata.Path("models", "stories260K.gguf")
	if err != nil {
		t.Fatal(err)
	}
	qwen, err := refdata.Path("vocab", "ggml-vocab-qwen2.gguf")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		stdin string
		args  []string
		code  int
		out   string
		err   string
	}{
		{"pieces", "", []string{"tokenize", "-m", model, "Once upon a time"}, 0,
			"     1 -> '<s>'\n   403 -> ' Once'\n   407 -> ' upon'\n   261 -> ' a'\n   378 -> ' time'\n", ""},
		{"json", "", []string{"tokenize", "-m", model, "--json", "Once", "upon", "a", "time"}, 0,
			`{"ids":[1,403,407,261,378]}` + "\n", ""},
		{"no-bos", "", []string{"tokenize", "--no-bos", "--json", "-m", model, "Once upon a time"}, 0,
			`{"ids":[403,407,261,378]}` + "\n", ""},
		{"stdin", "Once upon a time", []string{"tokenize", "--json", "--model", model}, 0,
			`{"ids":[1,403,407,261,378]}` + "\n", ""},
		{"special", "", []string{"tokenize", "--json", "-m", model, "<s>Once"}, 0,
			`{"ids":[1,1,403]}` + "\n", ""},
		{"no-special", "", []string{"tokenize", "--json", "--no-bos", "--no-special", "-m", model, "</s>"}, 0,
			"", ""},
		{"vocab-only qwen2", "", []string{"tokenize", "--json", "-m", qwen, "<|im_start|>user"}, 0,
			`{"ids":[151644,872]}` + "\n", ""},
		{"empty", "", []string{"tokenize", "--json", "--no-bos", "-m", model, ""}, 0, `{"ids":[]}` + "\n", ""},
		{"no model", "", []string{"tokenize", "hello"}, 2, "", "-m MODEL is required"},
		{"bad flag", "", []string{"tokenize", "--bogus", "-m", model, "x"}, 2, "", "flag provided but not defined"},
		{"missing file", "", []string{"tokenize", "-m", model + ".nope", "x"}, 1, "", "no such file"},
		{"not gguf", "", []string{"tokenize", "-m", qwen + ".inp", "x"}, 1, "", "ggml-vocab-qwen2.gguf.inp"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, out, errs := runTokenizeCLI(t, c.stdin, c.args...)
			if code != c.code {
				t.Fatalf("exit %d, want %d; stderr %q", code, c.code, errs)
			}
			if c.name == "no-special" {
				// "</s>" stays text: several pieces, no EOS (id 2)
				var got struct{ IDs []int32 }
				if err := json.Unmarshal([]byte(out), &got); err != nil {
					t.Fatalf("%q: %v", out, err)
				}
				if len(got.IDs) < 2 || slices.Contains(got.IDs, 2) {
					t.Errorf("ids %v", got.IDs)
				}
				return
			}
			if out != c.out {
				t.Errorf("stdout %q, want %q", out, c.out)
			}
			if !strings.Contains(errs, c.err) {
				t.Errorf("stderr %q, want it to contain %q", errs, c.err)
			}
		})
	}
}

package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/realmrt/realm/internal/refdata"
)

// TestEmbedCLI embeds llama.cpp's texts with realm embed (tokenized by
// Realm's WordPiece tokenizer) and compares with llama.cpp's vectors:
// the same token counts, cosine ≥ 0.9999, unit length.
func TestEmbedCLI(t *testing.T) {
	root, err := refdata.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(root, "testdata", "arch", "bert.llamacpp.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Inputs []struct {
			Text      string    `json:"text"`
			IDs       []int32   `json:"ids"`
			Embedding []float32 `json:"embedding"`
		} `json:"inputs"`
	}
	if err := json.Unmarshal(raw, &ref); err != nil {
		t.Fatal(err)
	}
	args := []string{"embed", "-m", filepath.Join(root, "testdata", "arch", "bert.gguf")}
	for _, in := range ref.Inputs {
		args = append(args, in.Text)
	}
	code, stdout, stderr := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var out embedOutput
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("%v: %s", err, stdout)
	}
	if out.NEmbd != 64 || len(out.Data) != len(ref.Inputs) {
		t.Fatalf("n_embd %d, %d items", out.NEmbd, len(out.Data))
	}
	for i, in := range ref.Inputs {
		d := out.Data[i]
		if d.Text != in.Text || d.Tokens != len(in.IDs) {
			t.Errorf("%d: text %q tokens %d, want %q %d", i, d.Text, d.Tokens, in.Text, len(in.IDs))
		}
		var dot, nn, ww float64
		for j, w := range in.Embedding {
			v := float64(d.Embedding[j])
			dot, nn, ww = dot+v*float64(w), nn+v*v, ww+float64(w)*float64(w)
		}
		if cs := dot / math.Sqrt(nn*ww); math.Abs(nn-1) > 1e-5 || cs < 0.9999 {
			t.Errorf("%q: |v|² %g, cosine %g", in.Text, nn, cs)
		}
	}
}

func TestEmbedCLIErrors(t *testing.T) {
	root, err := refdata.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bert := filepath.Join(root, "testdata", "arch", "bert.gguf")
	llama := filepath.Join(root, "testdata", "arch", "llama.gguf")
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"embed", "-m", bert}, 2, "usage"},
		{[]string{"embed", "hello"}, 2, "usage"},
		{[]string{"embed", "-m", llama, "hello"}, 1, "not an embedding model"},
		{[]string{"embed", "-m", bert, strings.Repeat("word ", 600)}, 1, "context"},
	} {
		code, _, stderr := runCLI(t, c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", c.args[:min(len(c.args), 3)], code, stderr, c.code, c.want)
		}
	}
}

package tests

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/realmrt/realm/gguf"
	"github.com/realmrt/realm/internal/refdata"
	"github.com/realmrt/realm/tokenizer"
)

// llamacppEmbed is what run.mjs embed prints.
type llamacppEmbed struct {
	Inputs []struct {
		Text      string    `json:"text"`
		IDs       []int32   `json:"ids"`
		Embedding []float32 `json:"embedding"`
	} `json:"inputs"`
}

// TestLlamaCppEmbedData reruns llama.cpp on the synthetic bert models of
// testdata/arch and checks that the stored token ids and pooled
// embeddings are what it computes (so the embedding cases compare with
// llama.cpp itself and the data can be regenerated), and that Realm's
// WordPiece tokenizer gives llama.cpp's ids for every text.
func TestLlamaCppEmbedData(t *testing.T) {
	root, err := refdata.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := llamacppSetup(t)
	for _, name := range []string{"bert", "bert-q8_0"} {
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(root, "testdata", "arch", name+".llamacpp.json"))
			if err != nil {
				t.Fatal(err)
			}
			var want llamacppEmbed
			if err := json.Unmarshal(raw, &want); err != nil {
				t.Fatal(err)
			}
			model := filepath.Join(root, "testdata", "arch", name+".gguf")
			args := []string{"run.mjs", "embed", "-m", model, "-t", "1"}
			for _, in := range want.Inputs {
				args = append(args, in.Text)
			}
			out, err := llamacppRun(dir, os.Environ(), time.Minute, "node", args...)
			if err != nil {
				t.Fatal(err)
			}
			var got llamacppEmbed
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("run.mjs output: %v\n%s", err, out)
			}
			if len(got.Inputs) != len(want.Inputs) {
				t.Fatalf("%d inputs, stored %d", len(got.Inputs), len(want.Inputs))
			}
			f, err := gguf.Open(model)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			tok, err := tokenizer.FromGGUF(f.File)
			if err != nil {
				t.Fatal(err)
			}
			for i, in := range want.Inputs {
				if !slices.Equal(got.Inputs[i].IDs, in.IDs) {
					t.Errorf("%q: llama.cpp ids %v, stored %v", in.Text, got.Inputs[i].IDs, in.IDs)
				}
				if e := refdata.NMSE(got.Inputs[i].Embedding, in.Embedding); e > 1e-6 {
					t.Errorf("%q: NMSE %.3g against the stored run", in.Text, e)
				}
				ids, err := tok.Encode(in.Text, tok.AddBOSDefault(), true)
				if err != nil || !slices.Equal(ids, in.IDs) {
					t.Errorf("%q: Realm tokenizes %v (%v), llama.cpp %v", in.Text, ids, err, in.IDs)
				}
			}
		})
	}
}

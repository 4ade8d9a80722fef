package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/internal/backend/reference"
	"github.com/realmrt/realm/internal/engine"
	"github.com/realmrt/realm/internal/refdata"
)

// embedCase is testdata/arch/NAME.llamacpp.json of an embedding model:
// llama.cpp's pooled (not normalized) embedding of each input.
type embedCase struct {
	Inputs []struct {
		Text      string    `json:"text"`
		IDs       []int32   `json:"ids"`
		Embedding []float32 `json:"embedding"`
	} `json:"inputs"`
}

func loadEmbedCase(t *testing.T, name string) (string, *embedCase) {
	t.Helper()
	root, err := refdata.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "testdata", "arch")
	b, err := os.ReadFile(filepath.Join(dir, name+".llamacpp.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c embedCase
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, name+".gguf"), &c
}

// cosine is a·b/(|a||b|).
func cosine(a, b []float32) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += float64(a[i]) * float64(b[i])
		aa += float64(a[i]) * float64(a[i])
		bb += float64(b[i]) * float64(b[i])
	}
	return ab / math.Sqrt(aa*bb)
}

// TestBertMatchesLlamaCpp embeds llama.cpp's inputs one by one and all
// in one batch on the reference kernels and compares the pooled vectors
// (NMSE ≤ 1e-5, cosine ≥ 0.9999), normalized ones having unit length.
func TestBertMatchesLlamaCpp(t *testing.T) {
	for _, name := range []string{"bert", "bert-q8_0"} {
		t.Run(name, func(t *testing.T) {
			path, c := loadEmbedCase(t, name)
			limit := 1e-5
			if name != "bert" {
				limit = 1e-3
			}
			b := engine.NewBackend(reference.New(), engine.Options{Name: "reference"})
			ctx := context.Background()
			mi, err := b.LoadModel(ctx, backends.LoadRequest{Path: path})
			if err != nil {
				t.Fatal(err)
			}
			if mi.Pooling != "mean" {
				t.Errorf("pooling %q, want mean", mi.Pooling)
			}
			var all [][]int32
			for _, in := range c.Inputs {
				all = append(all, in.IDs)
			}
			batch, err := b.Embed(ctx, backends.EmbedRequest{Model: mi.ID, Inputs: all})
			if err != nil {
				t.Fatal(err)
			}
			for i, in := range c.Inputs {
				one, err := b.Embed(ctx, backends.EmbedRequest{Model: mi.ID, Inputs: [][]int32{in.IDs}})
				if err != nil {
					t.Fatal(err)
				}
				for _, got := range [][]float32{one.Embeddings[0], batch.Embeddings[i]} {
					e, cs := nmse(got, in.Embedding), cosine(got, in.Embedding)
					t.Logf("%q: NMSE %.3g cosine %.8f", in.Text, e, cs)
					if e > limit || cs < 0.9999 {
						t.Errorf("%q: NMSE %.3g (limit %.g), cosine %.8f (want ≥ 0.9999)", in.Text, e, limit, cs)
					}
				}
				n, err := b.Embed(ctx, backends.EmbedRequest{Model: mi.ID, Inputs: [][]int32{in.IDs}, Normalize: true})
				if err != nil {
					t.Fatal(err)
				}
				var ss float64
				for _, v := range n.Embeddings[0] {
					ss += float64(v) * float64(v)
				}
				if math.Abs(ss-1) > 1e-5 || cosine(n.Embeddings[0], in.Embedding) < 0.9999 {
					t.Errorf("%q normalized: |v|² = %g, cosine %.8f", in.Text, ss, cosine(n.Embeddings[0], in.Embedding))
				}
			}
		})
	}
}

// TestEmbedBadInput: empty, too long, out-of-range and decoder-model
// requests fail with the right sentinel; sessions of an embedding model
// are refused.
func TestEmbedBadInput(t *testing.T) {
	path, _ := loadEmbedCase(t, "bert")
	b := engine.NewBackend(reference.New(), engine.Options{Name: "reference"})
	ctx := context.Background()
	mi, err := b.LoadModel(ctx, backends.LoadRequest{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	long := make([]int32, mi.NCtxTrain+1)
	for _, tc := range []struct {
		name   string
		inputs [][]int32
		want   error
	}{
		{"no inputs", nil, backends.ErrInvalidArgument},
		{"empty input", [][]int32{{101, 102}, {}}, backends.ErrInvalidArgument},
		{"token out of range", [][]int32{{101, int32(mi.NVocab)}}, backends.ErrInvalidArgument},
		{"negative token", [][]int32{{-1}}, backends.ErrInvalidArgument},
		{"too long", [][]int32{long}, backends.ErrContextFull},
	} {
		if _, err := b.Embed(ctx, backends.EmbedRequest{Model: mi.ID, Inputs: tc.inputs}); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := b.OpenSession(ctx, mi.ID, 64); !errors.Is(err, backends.ErrUnsupported) {
		t.Errorf("session of an embedding model: %v", err)
	}
	lpath, _ := loadArchCase(t, "llama")
	li, err := b.LoadModel(ctx, backends.LoadRequest{Path: lpath})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Embed(ctx, backends.EmbedRequest{Model: li.ID, Inputs: [][]int32{{1, 2}}}); !errors.Is(err, backends.ErrUnsupported) {
		t.Errorf("decoder model: %v", err)
	}
	if _, err := b.Embed(ctx, backends.EmbedRequest{Model: 999, Inputs: [][]int32{{1}}}); !errors.Is(err, backends.ErrNotFound) {
		t.Errorf("unknown model: %v", err)
	}
}

package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/gguf"
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

// TestBertBadInput edits every bert key and tensor of the synthetic
// model (removed, zero, huge, wrong type, pooling and causal values
// Realm does not run) and checks that loading fails cleanly naming the
// cause or succeeds, never panics, and that what loads still embeds.
func TestBertBadInput(t *testing.T) {
	path, c := loadEmbedCase(t, "bert")
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ids := [][]int32{c.Inputs[0].IDs}
	load := func(edit func(*gguf.File)) (err error) {
		cp := *f.File
		cp.Metadata = slices.Clone(f.Metadata)
		cp.Tensors = slices.Clone(f.Tensors)
		edit(&cp)
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic: %v", r)
				t.Error(err)
			}
		}()
		m, err := engine.NewModel(&cp, f.TensorData, reference.New(), nil)
		if err != nil {
			if !errors.Is(err, backends.ErrInvalidModel) && !errors.Is(err, backends.ErrUnsupported) {
				t.Errorf("unclassified error: %v", err)
			}
			return err
		}
		if _, err := m.Embeddings(context.Background(), ids, true); err != nil && !errors.Is(err, backends.ErrInvalidArgument) && !errors.Is(err, backends.ErrContextFull) {
			t.Errorf("loaded but embed failed: %v", err)
		}
		return nil
	}
	for i, kv := range f.Metadata {
		if !strings.HasPrefix(kv.Key, "bert.") {
			continue
		}
		for _, v := range []gguf.Value{gguf.NewUint32(0), gguf.NewUint64(1 << 40), gguf.NewString("x"), gguf.NewFloat32(-1), gguf.NewBool(true), gguf.NewUint32(4)} {
			load(func(c *gguf.File) { c.Metadata[i].Value = v })
		}
		load(func(c *gguf.File) { c.Metadata = slices.Delete(c.Metadata, i, i+1) })
	}
	for i, ti := range f.Tensors {
		err := load(func(c *gguf.File) { c.Tensors = slices.Delete(c.Tensors, i, i+1) })
		if err == nil && !strings.HasSuffix(ti.Name, ".bias") && ti.Name != "token_types.weight" {
			t.Errorf("without %s: loaded", ti.Name)
		}
	}
	for key, want := range map[string]string{"bert.pooling_type": "pooling_type", "bert.attention.causal": "causal"} {
		i := slices.IndexFunc(f.Metadata, func(kv gguf.KV) bool { return kv.Key == key })
		v := gguf.NewUint32(4) // rank pooling
		if key == "bert.attention.causal" {
			v = gguf.NewBool(true)
		}
		if err := load(func(c *gguf.File) { c.Metadata[i].Value = v }); !errors.Is(err, backends.ErrUnsupported) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s = %v: %v", key, v, err)
		}
	}
	// CLS pooling loads and returns the first row.
	i := slices.IndexFunc(f.Metadata, func(kv gguf.KV) bool { return kv.Key == "bert.pooling_type" })
	if err := load(func(c *gguf.File) { c.Metadata[i].Value = gguf.NewUint32(2) }); err != nil {
		t.Errorf("cls pooling: %v", err)
	}
}

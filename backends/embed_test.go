package backends_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/backends/backendtest"
)

// TestEmbedRoundTrip carries a batched Embed across gRPC: the pooling
// in ModelInfo, the vectors in order (split back from the flat wire
// form), normalization, and the errors of a model that does not embed
// and of bad input.
func TestEmbedRoundTrip(t *testing.T) {
	ctx := context.Background()
	c := connect(t, backendtest.New(40))
	p := filepath.Join(t.TempDir(), "embed.gguf")
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	mi, err := c.LoadModel(ctx, backends.LoadRequest{Path: p})
	if err != nil {
		t.Fatal(err)
	}
	if mi.Pooling != "mean" || mi.NEmbd != backendtest.EmbedDim {
		t.Fatalf("info %+v", mi)
	}
	inputs := [][]int32{{1, 2, 3}, {7}, {39, 0}}
	for _, norm := range []bool{false, true} {
		res, err := c.Embed(ctx, backends.EmbedRequest{Model: mi.ID, Inputs: inputs, Normalize: norm})
		if err != nil {
			t.Fatal(err)
		}
		if res.NEmbd != backendtest.EmbedDim || len(res.Embeddings) != len(inputs) {
			t.Fatalf("result %+v", res)
		}
		for i, in := range inputs {
			if want := backendtest.Embedding(in, norm); !slices.Equal(res.Embeddings[i], want) {
				t.Errorf("input %d (normalize %v): %v, want %v", i, norm, res.Embeddings[i], want)
			}
		}
	}
	for _, bad := range [][][]int32{nil, {{}}, {{1}, {40}}} {
		if _, err := c.Embed(ctx, backends.EmbedRequest{Model: mi.ID, Inputs: bad}); !errors.Is(err, backends.ErrInvalidArgument) {
			t.Errorf("inputs %v: %v", bad, err)
		}
	}
	other, err := c.LoadModel(ctx, backends.LoadRequest{Path: modelFile(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Embed(ctx, backends.EmbedRequest{Model: other.ID, Inputs: inputs}); !errors.Is(err, backends.ErrUnsupported) {
		t.Errorf("decoder model: %v", err)
	}
	if _, err := c.Embed(ctx, backends.EmbedRequest{Model: 999, Inputs: inputs}); !errors.Is(err, backends.ErrNotFound) {
		t.Errorf("unknown model: %v", err)
	}
}

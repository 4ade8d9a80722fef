package engine_test

import (
	"context"
	"errors"
	"testing"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/internal/backend/reference"
	"github.com/realmrt/realm/internal/engine"
	"github.com/realmrt/realm/internal/refdata"
)

// preparer wraps kernels with a WeightPreparer that copies each weight
// to the Go heap and points its Data there, counting calls.
type preparer struct {
	engine.Kernels
	fail     error
	prepared int
	released int
	weights  int
}

func (p *preparer) PrepareWeights(ws []*engine.Weight) (func(), uint64, error) {
	if p.fail != nil {
		return nil, 0, p.fail
	}
	p.prepared++
	p.weights = len(ws)
	seen := make(map[*engine.Weight]bool, len(ws))
	var n uint64
	for _, w := range ws {
		if seen[w] {
			return nil, 0, errors.New("weight passed twice")
		}
		seen[w] = true
		w.Data = append([]byte(nil), w.Data...)
		n += uint64(len(w.Data))
	}
	return func() { p.released++ }, n, nil
}

// TestWeightPreparer checks that LoadModel hands every matrix weight to
// a WeightPreparer once, reports its bytes in ExtraBytes, decodes the
// same greedy ids from the prepared weights, releases them at unload
// only, and fails the load when preparing fails.
func TestWeightPreparer(t *testing.T) {
	ctx := context.Background()
	path, err := refdata.Path("models", "stories260K.gguf")
	if err != nil {
		t.Fatal(err)
	}
	out, err := refdata.LoadOutput("stories260K.once-upon")
	if err != nil {
		t.Fatal(err)
	}
	plain := engine.NewBackend(reference.New(), engine.Options{})
	mi0, err := plain.LoadModel(ctx, backends.LoadRequest{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.UnloadModel(ctx, mi0.ID)

	p := &preparer{Kernels: reference.New()}
	b := engine.NewBackend(p, engine.Options{})
	mi, err := b.LoadModel(ctx, backends.LoadRequest{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	// token_embd, 7 matrices per layer, output unless tied.
	want := 1 + 7*mi.NLayer
	if _, ok := mi.TensorShapes["output.weight"]; ok {
		want++
	}
	if p.prepared != 1 || p.weights != want {
		t.Fatalf("PrepareWeights called %d times with %d weights, want once with %d", p.prepared, p.weights, want)
	}
	if mi.ExtraBytes <= mi0.ExtraBytes {
		t.Fatalf("ExtraBytes %d with a preparer, %d without", mi.ExtraBytes, mi0.ExtraBytes)
	}
	sid, err := b.OpenSession(ctx, mi.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	res, err := b.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: out.PromptIDs, Want: backends.WantSample})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range out.GenIDs[:8] {
		if res.Token != want {
			t.Fatalf("token %d = %d, want %d", i, res.Token, want)
		}
		if res, err = b.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: []int32{res.Token}, Want: backends.WantSample}); err != nil {
			t.Fatal(err)
		}
	}
	if p.released != 0 {
		t.Fatalf("released %d times before unload", p.released)
	}
	if err := b.UnloadModel(ctx, mi.ID); err != nil {
		t.Fatal(err)
	}
	if p.released != 1 {
		t.Fatalf("released %d times after unload, want 1", p.released)
	}

	p.fail = errors.New("no memory")
	if _, err := b.LoadModel(ctx, backends.LoadRequest{Path: path}); !errors.Is(err, p.fail) {
		t.Fatalf("LoadModel with a failing preparer: %v", err)
	}
}

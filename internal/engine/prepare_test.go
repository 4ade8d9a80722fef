package engine_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/internal/backend/reference"
	"github.com/realmrt/realm/internal/engine"
	"github.com/realmrt/realm/internal/refdata"
)

// preparer wraps kernels with a WeightPreparer that copies each weight
// to the Go heap and, once gate is closed, swaps the copies in from a
// goroutine of its own (like cpu-avx2's background copy), counting
// calls. Its MatMul counts the calls in flight, so that apply can check
// that no pass runs while the weights change.
type preparer struct {
	engine.Kernels
	fail     error
	gate     chan struct{} // nil: swap before PrepareWeights returns
	prepared int
	released atomic.Int32
	weights  int
	swapped  chan struct{}
	copies   map[*engine.Weight][]byte
	inFlight atomic.Int32
	clash    atomic.Int32 // applies that saw a MatMul in flight
	// firstPass is the engine's signal of the model's first pass.
	firstPass <-chan struct{}
}

func (p *preparer) MatMul(out []float32, w *engine.Weight, x []float32, batch int) {
	p.inFlight.Add(1)
	defer p.inFlight.Add(-1)
	p.Kernels.MatMul(out, w, x, batch)
}

func (p *preparer) PrepareWeights(ws []*engine.Weight, pl engine.Placement) (func(), uint64, error) {
	swap := pl.Swap
	p.firstPass = pl.FirstPass
	if p.fail != nil {
		return nil, 0, p.fail
	}
	p.prepared++
	p.weights = len(ws)
	p.swapped = make(chan struct{})
	p.copies = make(map[*engine.Weight][]byte, len(ws))
	var n uint64
	for _, w := range ws {
		if _, ok := p.copies[w]; ok {
			return nil, 0, errors.New("weight passed twice")
		}
		p.copies[w] = append([]byte(nil), w.Data...)
		n += uint64(len(w.Data))
	}
	apply := func() {
		if p.inFlight.Load() != 0 {
			p.clash.Add(1)
		}
		for w, c := range p.copies {
			w.Data = c
		}
	}
	if p.gate == nil {
		swap(apply)
		close(p.swapped)
	} else {
		go func() {
			<-p.gate
			swap(apply)
			close(p.swapped)
		}()
	}
	return func() { p.released.Add(1) }, n, nil
}

// TestWeightPreparer checks that LoadModel hands every matrix weight to
// a WeightPreparer once, reports its bytes in ExtraBytes, decodes the
// same greedy ids before, while and after the prepared weights are
// swapped in (in the background: Info.Preparing lists the model until
// then, and no pass runs while they change), releases them at unload
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

	for _, background := range []bool{false, true} {
		p := &preparer{Kernels: reference.New()}
		if background {
			p.gate = make(chan struct{})
		}
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
		preparing := func() []backends.ModelID {
			info, err := b.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return info.Preparing
		}
		if got := preparing(); background != slices.Contains(got, mi.ID) || len(got) > 1 {
			t.Fatalf("background %v: Info.Preparing = %v after the load (model %d)", background, got, mi.ID)
		}
		select {
		case <-p.firstPass:
			t.Fatal("FirstPass closed before any pass")
		default:
		}
		sid, err := b.OpenSession(ctx, mi.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		// Generation starts from the file's weights (background) and goes
		// on while the copies are swapped in.
		res, err := b.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: out.PromptIDs, Want: backends.WantSample})
		if err != nil {
			t.Fatal(err)
		}
		for i, want := range out.GenIDs[:16] {
			if i == 4 && background {
				close(p.gate)
			}
			if res.Token != want {
				t.Fatalf("background %v: token %d = %d, want %d", background, i, res.Token, want)
			}
			if res, err = b.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: []int32{res.Token}, Want: backends.WantSample}); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case <-p.firstPass:
		default:
			t.Fatal("FirstPass still open after decoding")
		}
		<-p.swapped
		if got := preparing(); len(got) != 0 {
			t.Fatalf("background %v: Info.Preparing = %v after the swap", background, got)
		}
		for w, c := range p.copies {
			if unsafe.SliceData(w.Data) != unsafe.SliceData(c) {
				t.Fatalf("background %v: weight %s does not point at its copy", background, w.Name)
			}
		}
		if n := p.clash.Load(); n != 0 {
			t.Fatalf("background %v: the weights changed %d times under a pass", background, n)
		}
		if n := p.released.Load(); n != 0 {
			t.Fatalf("released %d times before unload", n)
		}
		if err := b.UnloadModel(ctx, mi.ID); err != nil {
			t.Fatal(err)
		}
		if n := p.released.Load(); n != 1 {
			t.Fatalf("released %d times after unload, want 1", n)
		}

		p.fail = errors.New("no memory")
		if _, err := b.LoadModel(ctx, backends.LoadRequest{Path: path}); !errors.Is(err, p.fail) {
			t.Fatalf("LoadModel with a failing preparer: %v", err)
		}
	}
}

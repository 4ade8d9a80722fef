package engine_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/gguf"
	cpuavx2 "github.com/realmrt/realm/internal/backend/cpu-avx2"
	"github.com/realmrt/realm/internal/backend/reference"
	"github.com/realmrt/realm/internal/engine"
	"github.com/realmrt/realm/internal/refdata"
)

// schedKernels are the kernel sets the scheduler tests run on: the
// reference kernels and, where the CPU has them, the AVX2 kernels
// (whose batch kernels take other paths than their matvec ones).
func schedKernels(t *testing.T) map[string]engine.Kernels {
	ks := map[string]engine.Kernels{"reference": reference.New()}
	if k, err := cpuavx2.New(2); err == nil {
		ks["cpu-avx2"] = k
	} else {
		t.Logf("cpu-avx2 not tested: %v", err)
	}
	return ks
}

// soloRun is one session's reference: its prompt, then the ids it
// generated greedily, and the logits of every step.
type soloRun struct {
	prompt []int32
	ids    []int32
	logits [][]float32
}

// solo decodes prompt alone on an unbatched Session (the path without
// the scheduler) and then steps greedy tokens.
func solo(t *testing.T, m *engine.Model, prompt []int32, steps int) soloRun {
	t.Helper()
	s, err := m.NewSession(96)
	if err != nil {
		t.Fatal(err)
	}
	r := soloRun{prompt: prompt}
	in := prompt
	for range steps {
		l, err := s.Decode(context.Background(), in, false)
		if err != nil {
			t.Fatal(err)
		}
		id, _ := top2(l)
		r.ids = append(r.ids, id)
		r.logits = append(r.logits, l)
		in = []int32{id}
	}
	return r
}

// prompts returns n prompts of different lengths (1 to 40 tokens).
func prompts(n, vocab int, seed uint64) [][]int32 {
	rng := rand.New(rand.NewPCG(seed, 7))
	out := make([][]int32, n)
	for i := range out {
		l := 1 + rng.IntN(40)
		if i == 0 {
			l = 40 // at least one prompt is chunked with a budget of 8
		}
		for range l {
			out[i] = append(out[i], int32(1+rng.IntN(vocab-1)))
		}
	}
	return out
}

// runSessions runs one session per prompt concurrently on b, teacher-
// forced with the solo ids, and checks every step's logits against the
// solo run: the same greedy id and an NMSE within limit.
func runSessions(t *testing.T, b backends.Backend, mi *backends.ModelInfo, want []soloRun, limit float64) {
	t.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, len(want))
	for i, w := range want {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = func() error {
				sid, err := b.OpenSession(ctx, mi.ID, 96)
				if err != nil {
					return err
				}
				defer b.CloseSession(ctx, sid)
				in := w.prompt
				for step := range w.ids {
					res, err := b.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: in, Want: backends.WantLogits})
					if err != nil {
						return fmt.Errorf("step %d: %w", step, err)
					}
					if id, _ := top2(res.Logits); id != w.ids[step] {
						return fmt.Errorf("step %d: greedy id %d, alone %d", step, id, w.ids[step])
					}
					if e := nmse(res.Logits, w.logits[step]); e > limit {
						return fmt.Errorf("step %d: logits NMSE %.3g vs alone exceeds %.3g", step, e, limit)
					}
					if want := len(w.prompt) + step; res.NPast != want {
						return fmt.Errorf("step %d: NPast %d, want %d", step, res.NPast, want)
					}
					in = []int32{w.ids[step]}
				}
				return nil
			}()
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("session %d (prompt of %d tokens): %v", i, len(want[i].prompt), err)
		}
	}
}

// TestSchedulerMatchesSolo runs sessions with different prompts
// concurrently through the backend, whose scheduler merges them (a step
// budget of 8 tokens chunks the long prompts between the decode steps
// of the others), and checks each against the same session decoded
// alone without the scheduler: identical greedy ids and logits within
// the conformance bound of the file type.
func TestSchedulerMatchesSolo(t *testing.T) {
	root, err := refdata.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	for kname, k := range schedKernels(t) {
		for _, model := range []string{"llama", "llama-q4_0", "gemma2", "qwen3moe", "phi3"} {
			t.Run(kname+"/"+model, func(t *testing.T) {
				path := filepath.Join(root, "testdata", "arch", model+".gguf")
				f, err := gguf.Open(path)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				m, err := engine.NewModel(f.File, f.TensorData, k, nil)
				if err != nil {
					t.Fatal(err)
				}
				var want []soloRun
				for _, p := range prompts(6, m.HP.NVocab, 1) {
					want = append(want, solo(t, m, p, 8))
				}
				b := engine.NewBackend(k, engine.Options{Name: kname, StepTokens: 8})
				mi, err := b.LoadModel(context.Background(), backends.LoadRequest{Path: path})
				if err != nil {
					t.Fatal(err)
				}
				defer b.UnloadModel(context.Background(), mi.ID)
				limit := 1e-5 // f32 rounding (the conformance bound of F32 files)
				if model == "llama-q4_0" {
					limit = 1e-3 // activation quantization (that of quantized files)
				}
				runSessions(t, b, mi, want, limit)
				steps, rows, merged := engine.SchedStats(b)
				t.Logf("%d steps, %.1f tokens per step, %d merging several sessions", steps, float64(rows)/float64(steps), merged)
				if merged == 0 {
					t.Error("no step merged several sessions")
				}
			})
		}
	}
}

// gateKernels wraps kernels so that a test can hold a forward pass in
// its first MatMul (gate) or make a MatMul panic.
type gateKernels struct {
	engine.Kernels
	armed   atomic.Bool
	entered chan struct{}
	release chan struct{}
	panics  atomic.Bool
}

func (g *gateKernels) MatMul(out []float32, w *engine.Weight, x []float32, batch int) {
	if g.panics.Load() {
		panic("test: kernel failure")
	}
	if g.armed.CompareAndSwap(true, false) {
		g.entered <- struct{}{}
		<-g.release
	}
	g.Kernels.MatMul(out, w, x, batch)
}

// TestSchedulerFailures checks that a request that is cancelled while
// its step runs, one with a bad token, and a step whose kernel panics
// leave every session as it was, and that the others' results are
// unchanged.
func TestSchedulerFailures(t *testing.T) {
	k := &gateKernels{Kernels: reference.New(), entered: make(chan struct{}), release: make(chan struct{})}
	m := storiesModel(t, reference.New())
	b := engine.NewBackend(k, engine.Options{Name: "gate", GatherWait: -1})
	ctx := context.Background()
	mi, err := b.LoadModel(ctx, backends.LoadRequest{Path: storiesPath(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.UnloadModel(ctx, mi.ID)
	pa, pb := []int32{1, 400, 35, 80}, []int32{1, 30, 200, 7, 9, 11}
	wantA, wantB := solo(t, m, pa, 3), solo(t, m, pb, 3)
	open := func() backends.SessionID {
		sid, err := b.OpenSession(ctx, mi.ID, 96)
		if err != nil {
			t.Fatal(err)
		}
		return sid
	}
	sa, sb := open(), open()

	// A is held in its step; B queues behind it and joins the next
	// step; A's caller goes away meanwhile.
	k.armed.Store(true)
	actx, cancel := context.WithCancel(ctx)
	aerr := make(chan error, 1)
	go func() {
		_, err := b.Decode(actx, backends.DecodeRequest{Session: sa, Tokens: pa, Want: backends.WantLogits})
		aerr <- err
	}()
	<-k.entered
	bres := make(chan *backends.DecodeResult, 1)
	go func() {
		r, err := b.Decode(ctx, backends.DecodeRequest{Session: sb, Tokens: pb, Want: backends.WantLogits})
		if err != nil {
			t.Error(err)
		}
		bres <- r
	}()
	cancel()
	time.Sleep(20 * time.Millisecond) // let B queue
	k.release <- struct{}{}
	if err := <-aerr; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled decode: %v, want context.Canceled", err)
	}
	if r := <-bres; r == nil || nmse(r.Logits, wantB.logits[0]) != 0 {
		t.Fatal("the other session's logits changed")
	}
	// A is unchanged: decoding its prompt again gives the solo logits.
	r, err := b.Decode(ctx, backends.DecodeRequest{Session: sa, Tokens: pa, Want: backends.WantLogits})
	if err != nil || r.NPast != len(pa) || nmse(r.Logits, wantA.logits[0]) != 0 {
		t.Fatalf("after a cancelled decode: %v, NPast %v", err, r)
	}

	// A bad token fails its own request only.
	if _, err := b.Decode(ctx, backends.DecodeRequest{Session: sa, Tokens: []int32{1 << 20}, Want: backends.WantLogits}); !errors.Is(err, backends.ErrInvalidArgument) {
		t.Fatalf("bad token: %v", err)
	}

	// A kernel panic fails the step's requests, changes neither session,
	// and the next steps run normally.
	k.panics.Store(true)
	var wg sync.WaitGroup
	for _, sid := range []backends.SessionID{sa, sb} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := b.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: []int32{5}, Want: backends.WantLogits}); err == nil {
				t.Error("decode succeeded over a panicking kernel")
			}
		}()
	}
	wg.Wait()
	k.panics.Store(false)
	for _, c := range []struct {
		sid  backends.SessionID
		want soloRun
	}{{sa, wantA}, {sb, wantB}} {
		r, err := b.Decode(ctx, backends.DecodeRequest{Session: c.sid, Tokens: []int32{c.want.ids[0]}, Want: backends.WantLogits})
		if err != nil {
			t.Fatal(err)
		}
		if r.NPast != len(c.want.prompt)+1 || nmse(r.Logits, c.want.logits[1]) != 0 {
			t.Errorf("after a failed step: NPast %d, logits differ from alone", r.NPast)
		}
	}
}

// TestSchedulerDropsTallBuffers checks that the executor of a prompt
// chunk taller than the kept batch heights is kept for the next chunks
// and dropped once no tall step ran for a second, while single-token
// steps go on.
func TestSchedulerDropsTallBuffers(t *testing.T) {
	ctx := context.Background()
	path, err := refdata.Path("models", "stories260K.gguf")
	if err != nil {
		t.Fatal(err)
	}
	b := engine.NewBackend(reference.New(), engine.Options{})
	mi, err := b.LoadModel(ctx, backends.LoadRequest{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer b.UnloadModel(ctx, mi.ID)
	sid, err := b.OpenSession(ctx, mi.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	prompt := make([]int32, 40)
	for i := range prompt {
		prompt[i] = int32(10 + i)
	}
	if _, err := b.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: prompt, Want: backends.WantNone}); err != nil {
		t.Fatal(err)
	}
	if n := engine.TallExecutors(b); n != 1 {
		t.Fatalf("after a 40-token prompt: %d tall executors kept, want 1", n)
	}
	deadline := time.Now().Add(10 * time.Second)
	for engine.TallExecutors(b) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the tall executor is still kept 10 s after the last tall step")
		}
		if _, err := b.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: []int32{5}, Want: backends.WantNone}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

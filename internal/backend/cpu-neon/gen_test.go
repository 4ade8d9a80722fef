package cpuneon

import (
	"context"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"testing"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/gguf"
	"github.com/realmrt/realm/internal/engine"
	"github.com/realmrt/realm/internal/refdata"
)

// TestDotProductPath is the instruction-level evidence of which integer
// dot-product code runs: the per-path counters are incremented next to
// the calls of the SDOT and the SMULL assembly routines. With
// REALM_NEON_EXPECT_DOTPROD=1 (or 0) set, as scripts/neon-test.sh does for
// QEMU's default CPU (or -cpu cortex-a72), the test also fails when the
// feature detection disagrees with the emulated CPU.
func TestDotProductPath(t *testing.T) {
	k := newTestKernels(t, 2, HasDotProd())
	rng := rand.New(rand.NewPCG(31, 32))
	for _, ty := range []gguf.Type{gguf.TypeF32, gguf.TypeF16, gguf.TypeQ8_0, gguf.TypeQ4_0, gguf.TypeQ4_K, gguf.TypeQ6_K} {
		w := quantWeight(t, rng, ty, 5, 256)
		k.MatMul(make([]float32, 10), w, randVec(rng, 512, 1), 2)
	}
	st := k.Stats()
	t.Logf("GOARCH=%s ASIMDDP=%v path counters: %v", runtime.GOARCH, HasDotProd(), st)
	if e := os.Getenv("REALM_NEON_EXPECT_DOTPROD"); e != "" {
		if want := e == "1"; HasDotProd() != want {
			t.Fatalf("ASIMDDP detected %v, but this CPU should report %v", HasDotProd(), want)
		}
	}
	const intRows = 4 * 5 * 2 // four integer types, 5 rows, batch 2
	switch {
	case runtime.GOARCH != "arm64":
		if st.Get(PathGo) != 6*5*2 {
			t.Errorf("portable path counted %d rows, want %d", st.Get(PathGo), 6*5*2)
		}
	case HasDotProd():
		if st.Get(PathSDOT) != intRows || st.Get(PathSMULL) != 0 {
			t.Errorf("with ASIMDDP: sdot %d (want %d), smull %d (want 0)", st.Get(PathSDOT), intRows, st.Get(PathSMULL))
		}
	default:
		if st.Get(PathSMULL) != intRows || st.Get(PathSDOT) != 0 {
			t.Errorf("without ASIMDDP: smull %d (want %d), sdot %d (want 0)", st.Get(PathSMULL), intRows, st.Get(PathSDOT))
		}
	}
	if runtime.GOARCH == "arm64" && (st.Get(PathF32) != 10 || st.Get(PathF16) != 10) {
		t.Errorf("f32 path %d, f16 path %d, want 10 each", st.Get(PathF32), st.Get(PathF16))
	}
}

// generate runs a greedy generation of len(out.GenIDs) tokens on model
// through the shared forward pass over k and returns the ids.
func generate(t *testing.T, k engine.Kernels, model string, out *refdata.Output) []int32 {
	t.Helper()
	path, err := refdata.Path("models", model)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	b := engine.NewBackend(k, engine.Options{Name: "cpu-neon"})
	mi, err := b.LoadModel(ctx, backends.LoadRequest{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer b.UnloadModel(ctx, mi.ID)
	sid, err := b.OpenSession(ctx, mi.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer b.CloseSession(ctx, sid)
	toks := out.PromptIDs
	var got []int32
	for range out.GenIDs {
		res, err := b.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: toks, Want: backends.WantSample})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, res.Token)
		toks = []int32{res.Token}
	}
	return got
}

// TestGreedyGeneration generates 64 tokens greedily from stories260K
// (F32 weights: the FMLA matmul path, batched for the prompt) and
// requires llama.cpp's ids exactly.
func TestGreedyGeneration(t *testing.T) {
	out, err := refdata.LoadOutput("stories260K.once-upon")
	if err != nil {
		t.Fatal(err)
	}
	k, err := New(2)
	if err != nil {
		t.Fatal(err)
	}
	defer k.(engine.Closer).Close()
	got := generate(t, k, "stories260K.gguf", out)
	if !slices.Equal(got, out.GenIDs) {
		t.Errorf("generated %v\nwant      %v", got, out.GenIDs)
	}
	st := k.(*Kernels).Stats()
	t.Logf("path counters: %v", st)
	if runtime.GOARCH == "arm64" && st.Get(PathF32) == 0 {
		t.Error("the F32 NEON path did not run")
	}
}

// TestQuantizedGeneration runs the Q8_0 and Q4_0 models, whose matmuls
// take the integer path with llama.cpp's activation quantization, and
// reports how many greedy ids agree with llama.cpp's (the first steps
// must).
func TestQuantizedGeneration(t *testing.T) {
	for _, tc := range []struct {
		model, output string
		prefix        int
	}{
		{"stories260K-Q8_0.gguf", "stories260K-Q8_0.once-upon", 16},
		{"stories260K-Q4_0.gguf", "stories260K-Q4_0.once-upon", 16},
	} {
		out, err := refdata.LoadOutput(tc.output)
		if err != nil {
			t.Fatal(err)
		}
		k := newTestKernels(t, 2, HasDotProd())
		got := generate(t, k, tc.model, out)
		agree := 0
		for agree < len(got) && got[agree] == out.GenIDs[agree] {
			agree++
		}
		t.Logf("%s: %d/%d greedy ids agree with llama.cpp; path counters: %v", tc.model, agree, len(got), k.Stats())
		if agree < tc.prefix {
			t.Errorf("%s: only the first %d ids agree\ngot  %v\nwant %v", tc.model, agree, got, out.GenIDs)
		}
		if runtime.GOARCH == "arm64" && k.Stats().Get(intPath(k.dot)) == 0 {
			t.Errorf("%s: the integer path did not run", tc.model)
		}
	}
}

// TestSDOTProbe executes the SDOT routine directly, whatever the CPU
// reports. It runs only with REALM_NEON_FORCE_SDOT=1: on a CPU without
// ASIMDDP the process must die with SIGILL. scripts/neon-test.sh checks
// that under -cpu cortex-a72, showing that the emulator really withholds
// the instruction, so the passing plain-NEON run cannot have executed it.
func TestSDOTProbe(t *testing.T) {
	if os.Getenv("REALM_NEON_FORCE_SDOT") != "1" {
		t.Skip("set REALM_NEON_FORCE_SDOT=1 to run (scripts/neon-test.sh does)")
	}
	w, x := make([]int8, 32), make([]int8, 32)
	for i := range w {
		w[i], x[i] = int8(i-16), int8(3*i-50)
	}
	got, want := make([]int32, 2), make([]int32, 2)
	dotI8x16(w, x, got, true)
	dotI8x16Go(w, x, want)
	if !slices.Equal(got, want) {
		t.Fatalf("SDOT gave %v, want %v", got, want)
	}
	t.Logf("SDOT executed: %v", got)
}

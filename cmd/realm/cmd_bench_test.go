package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/internal/backend/reference"
	"github.com/realmrt/realm/internal/engine"
	"github.com/realmrt/realm/internal/refdata"
)

func TestBenchFlagErrors(t *testing.T) {
	model := filepath.Join(t.TempDir(), "m.gguf")
	if err := os.WriteFile(model, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "-m MODEL is required"},
		{[]string{"-m", model, "-r", "0"}, "-r ≥ 1"},
		{[]string{"-m", model, "-p", "0", "-n", "0"}, "nothing to run"},
		{[]string{"-m", filepath.Join(t.TempDir(), "missing.gguf")}, "no such file"},
	} {
		var out bytes.Buffer
		env := &cliEnv{Stdout: &out, Stderr: &out, Getenv: func(string) string { return "" }}
		err := runBench(context.Background(), env, c.args)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("bench %v: error %v, want it to mention %q", c.args, err, c.want)
		}
	}
}

func TestMeanStddev(t *testing.T) {
	m, sd := meanStddev([]float64{2, 4, 4, 4, 5, 5, 7, 9})
	if m != 5 || math.Abs(sd-2.138) > 1e-3 {
		t.Errorf("mean, sd = %v, %v; want 5, 2.138", m, sd)
	}
	if m, sd := meanStddev([]float64{3}); m != 3 || sd != 0 {
		t.Errorf("one sample: %v, %v", m, sd)
	}
}

func TestModelType(t *testing.T) {
	mi := &backends.ModelInfo{Arch: "llama", NVocab: 32000, NEmbd: 2048, NLayer: 22, NHead: 32, NHeadKV: 4, NFF: 5632,
		TensorTypes: map[string]int{"F32": 45, "Q4_0": 155, "Q6_K": 1}}
	if got := modelType(mi); got != "llama 1.1B Q4_0" {
		t.Errorf("modelType = %q, want llama 1.1B Q4_0", got)
	}
	small := &backends.ModelInfo{Arch: "llama", NVocab: 512, NEmbd: 64, NLayer: 5, NHead: 8, NHeadKV: 4, NFF: 172,
		TensorTypes: map[string]int{"F32": 11, "Q8_0": 30}}
	if got := modelType(small); got != "llama 292K Q8_0" {
		t.Errorf("modelType = %q, want llama 292K Q8_0", got)
	}
}

func TestProcessRSS(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc")
	}
	if rss := processRSS(os.Getpid()); rss <= 0 {
		t.Errorf("processRSS(self) = %d", rss)
	}
	if cpu := processCPU(os.Getpid()); cpu < 0 {
		t.Errorf("processCPU(self) = %v", cpu)
	}
	if rss := processRSS(0); rss != 0 {
		t.Errorf("processRSS(0) = %d", rss)
	}
}

// TestBenchViaWasm runs the bench guest (built here) against the
// in-process reference engine on stories260K, served from a file whose
// name is not a valid model name (a space, capitals).
func TestBenchViaWasm(t *testing.T) {
	root, err := refdata.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	wasm := filepath.Join(dir, "bench.wasm")
	cmd := exec.Command("go", "build", "-o", wasm, "./examples/bench")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./examples/bench: %v\n%s", err, out)
	}
	src, err := refdata.Path("models", "stories260K.gguf")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	model := filepath.Join(dir, "My Model ${x}.gguf")
	if err := os.WriteFile(model, data, 0o644); err != nil {
		t.Fatal(err)
	}
	be := engine.NewBackend(reference.New(), engine.Options{Name: "reference"})
	var stderr bytes.Buffer
	env := &cliEnv{Stdout: io.Discard, Stderr: &stderr, Getenv: func(string) string { return "" }}
	tests, err := benchViaWasm(context.Background(), be, "reference", model, wasm, 8, 4, 3, 2, hclog.NewNullLogger(), env)
	if err != nil {
		t.Fatalf("benchViaWasm: %v\nstderr: %s", err, stderr.String())
	}
	if len(tests) != 2 || tests[0].np != 8 || tests[1].ng != 4 {
		t.Fatalf("tests = %+v, want pp8 then tg4", tests)
	}
	for _, tc := range tests {
		if len(tc.ns) != 2 || tc.ns[0] <= 0 || tc.ns[1] <= 0 {
			t.Errorf("test %+v: want 2 positive timings", tc)
		}
	}
	if _, err := benchViaWasm(context.Background(), be, "reference", model, filepath.Join(dir, "missing.wasm"), 8, 4, 0, 2, hclog.NewNullLogger(), env); err == nil || !strings.Contains(err.Error(), "examples/bench") {
		t.Errorf("missing guest: error %v, want a hint to build it", err)
	}

	// The direct tests and the guest's share one load, and neither is
	// served from the other's prompts in the prefix cache: 70-token
	// prompts hold two full KV blocks that a repeated prompt would reuse.
	ctx := context.Background()
	be2 := engine.NewBackend(reference.New(), engine.Options{Name: "reference"})
	wb, err := openWasmBench(ctx, be2, "reference", model, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer wb.close()
	bn := &benchRunner{b: be2, model: wb.m.Info.ID, nVocab: wb.m.Info.NVocab, nCtxTrain: wb.m.Info.NCtxTrain}
	if _, err := benchTests(ctx, bn, benchResult{}, 70, 2, 0, 2, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := wb.run(ctx, wasm, 70, 2, 0, 2, hclog.NewNullLogger(), env); err != nil {
		t.Fatalf("guest: %v\nstderr: %s", err, stderr.String())
	}
	info, err := be2.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(info.KVPools) != 1 {
		t.Fatalf("%d models loaded, want the one shared load", len(info.KVPools))
	}
	if p := info.KVPools[0]; p.Hits != 0 || p.Misses == 0 {
		t.Errorf("KV pool after the direct and guest pp runs: %d blocks reused, %d computed; want none reused", p.Hits, p.Misses)
	}
}

func TestHCLString(t *testing.T) {
	for in, want := range map[string]string{
		"/tmp/a b":     `"/tmp/a b"`,
		`c:\x"y`:       `"c:\\x\"y"`,
		"${HOME}/%{x}": `"$${HOME}/%%{x}"`,
	} {
		if got := hclString(in); got != want {
			t.Errorf("hclString(%q) = %s, want %s", in, got, want)
		}
	}
}

// recordingBackend records the sizes of the sessions opened and the
// session length after each decode.
type recordingBackend struct {
	backends.Backend
	mu     sync.Mutex
	nCtx   []int
	nPast  []int
	trunc  []int
	decode [][]int32
}

func (r *recordingBackend) OpenSession(ctx context.Context, id backends.ModelID, nCtx int) (backends.SessionID, error) {
	r.mu.Lock()
	r.nCtx = append(r.nCtx, nCtx)
	r.mu.Unlock()
	return r.Backend.OpenSession(ctx, id, nCtx)
}

func (r *recordingBackend) Decode(ctx context.Context, req backends.DecodeRequest) (*backends.DecodeResult, error) {
	res, err := r.Backend.Decode(ctx, req)
	if err == nil {
		r.mu.Lock()
		r.nPast = append(r.nPast, res.NPast)
		r.decode = append(r.decode, slices.Clone(req.Tokens))
		r.mu.Unlock()
	}
	return res, err
}

func (r *recordingBackend) Truncate(ctx context.Context, id backends.SessionID, n int) error {
	r.mu.Lock()
	r.trunc = append(r.trunc, n)
	r.mu.Unlock()
	return r.Backend.Truncate(ctx, id, n)
}

// TestBenchDepthAndContextLimit runs benchTests on the in-process
// reference engine with stories260K: pp at exactly the training context
// (which failed when the session was sized pp + tg + 1), and pp/tg at a
// depth, where every timed decode must start after depth tokens.
func TestBenchDepthAndContextLimit(t *testing.T) {
	src, err := refdata.Path("models", "stories260K.gguf")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rec := &recordingBackend{Backend: engine.NewBackend(reference.New(), engine.Options{Name: "reference"})}
	mi, err := rec.LoadModel(ctx, backends.LoadRequest{Path: src})
	if err != nil {
		t.Fatal(err)
	}
	if mi.NCtxTrain <= 0 || mi.NCtxTrain > 4096 {
		t.Fatalf("n_ctx_train = %d, want a small positive training context", mi.NCtxTrain)
	}
	bn := &benchRunner{b: rec, model: mi.ID, nVocab: mi.NVocab, nCtxTrain: mi.NCtxTrain}

	// pp at the limit, with a tg test beside it.
	res, err := benchTests(ctx, bn, benchResult{}, mi.NCtxTrain, 4, 0, 1, 0)
	if err != nil {
		t.Fatalf("pp%d on a model trained on %d: %v", mi.NCtxTrain, mi.NCtxTrain, err)
	}
	if len(res) != 2 || res[0].NPrompt != mi.NCtxTrain || res[1].NGen != 4 || res[0].NDepth != 0 {
		t.Fatalf("results = %+v", res)
	}
	if want := []int{mi.NCtxTrain, 4}; !slices.Equal(rec.nCtx, want) {
		t.Errorf("session sizes %v, want %v", rec.nCtx, want)
	}

	// Depth: the pp decode ends at depth + np, each tg decode after it.
	const depth, np, ng, reps = 40, 8, 3, 2
	rec.nCtx, rec.nPast, rec.trunc = nil, nil, nil
	res, err = benchTests(ctx, bn, benchResult{}, np, ng, depth, reps, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0].NDepth != depth || res[1].NDepth != depth || len(res[0].SamplesNs) != reps {
		t.Fatalf("results = %+v", res)
	}
	if want := []int{depth + np, depth + ng}; !slices.Equal(rec.nCtx, want) {
		t.Errorf("session sizes %v, want %v", rec.nCtx, want)
	}
	var want []int
	want = append(want, depth) // fill
	for range 1 + reps {       // warm-up + reps
		want = append(want, depth+np)
	}
	want = append(want, depth)
	for range 1 + reps {
		for i := 1; i <= ng; i++ {
			want = append(want, depth+i)
		}
	}
	if !slices.Equal(rec.nPast, want) {
		t.Errorf("session lengths after each decode %v, want %v", rec.nPast, want)
	}
	for _, n := range rec.trunc {
		if n != depth {
			t.Errorf("truncated to %d, want %d", n, depth)
		}
	}
	// Every pp run decodes a prompt of its own: a repeated one would be
	// served by the KV pool's prefix cache instead of computed.
	var prompts [][]int32
	for _, d := range rec.decode {
		if len(d) == np {
			for _, p := range prompts {
				if slices.Equal(p, d) {
					t.Fatalf("two pp runs decoded the same prompt %v", d)
				}
			}
			prompts = append(prompts, d)
		}
	}
	if len(prompts) != 1+reps {
		t.Errorf("%d pp prompts decoded, want %d", len(prompts), 1+reps)
	}

	// Beyond the training context: a clear error before any session.
	rec.nCtx = nil
	if _, err := benchTests(ctx, bn, benchResult{}, 8, 0, mi.NCtxTrain, 1, 0); err == nil || !strings.Contains(err.Error(), "exceeds the model's training context") {
		t.Errorf("depth at the limit + pp8: error %v", err)
	}
	if len(rec.nCtx) != 0 {
		t.Errorf("sessions opened before the error: %v", rec.nCtx)
	}

	// The JSON names llama-bench uses.
	b, err := json.Marshal(res[1])
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{`"n_depth":40`, `"n_gen":3`, `"n_prompt":0`} {
		if !strings.Contains(string(b), f) {
			t.Errorf("JSON %s lacks %s", b, f)
		}
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/core"
	"github.com/realmrt/realm/internal/loaderhost"
	"github.com/realmrt/realm/loader"
	"github.com/realmrt/realm/model"
)

// benchResult is one test of `realm bench`, with llama-bench's JSON
// field names so that the two tools' outputs can be compared by one
// script.
type benchResult struct {
	ModelFilename string `json:"model_filename"`
	ModelType     string `json:"model_type"`
	ModelSize     int64  `json:"model_size"`
	NPrompt       int    `json:"n_prompt"`
	NGen          int    `json:"n_gen"`
	// NDepth is the number of tokens already in the KV cache when the
	// test's timed part starts (llama-bench's -d).
	NDepth    int       `json:"n_depth"`
	NThreads  int       `json:"n_threads"`
	Backends  string    `json:"backends"`
	AvgNs     int64     `json:"avg_ns"`
	StddevNs  int64     `json:"stddev_ns"`
	AvgTs     float64   `json:"avg_ts"`
	StddevTs  float64   `json:"stddev_ts"`
	SamplesNs []int64   `json:"samples_ns"`
	SamplesTs []float64 `json:"samples_ts"`
	// TTFTMs is the time from the start of `realm bench` to the first
	// generated token (plugin start, model load and one decode).
	TTFTMs float64 `json:"ttft_ms"`
	// TTFTCPUMs is the plugin's CPU time (all threads, user and
	// system) up to that first token: the load's cost that other
	// processes on a shared machine do not inflate (0 where /proc is
	// unavailable).
	TTFTCPUMs float64 `json:"ttft_cpu_ms,omitempty"`
	// PluginRSS is the plugin process's resident set after the test,
	// in bytes (0 where it cannot be read).
	PluginRSS int64 `json:"plugin_rss_bytes,omitempty"`
	// KVBytes is the memory the model's KV pool held at the same time
	// (blocks in use and blocks kept for prefix reuse; 0 for backends
	// without a pool): the resident set is the model, this and the
	// process's own.
	KVBytes uint64 `json:"kv_bytes,omitempty"`
	// CPUTs is tokens per second of plugin CPU time (all threads) over
	// the repetitions: a speed that other processes on a shared machine
	// distort less than wall time (0 where /proc is unavailable).
	CPUTs float64 `json:"cpu_ts,omitempty"`
	// ViaWasm marks a test run from the WebAssembly guest through the
	// Realm ABI (--via-wasm) rather than directly on the plugin.
	ViaWasm bool `json:"via_wasm,omitempty"`
	// Sampler marks the constrained-sampling tests (--json-schema):
	// "host" (tokens drawn on the host from the logits) or
	// "host+json-schema" (the same with the schema's mask).
	Sampler string `json:"sampler,omitempty"`
	// MaskNs is the host time per token spent masking (copying the
	// logits, applying the mask, advancing the parse) in the
	// host+json-schema test.
	MaskNs int64 `json:"mask_ns,omitempty"`
}

// runBench implements `realm bench`: prompt processing (pp) and text
// generation (tg) speed through the plugin path, like llama-bench.
func runBench(ctx context.Context, env *cliEnv, args []string) error {
	start := time.Now()
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	var (
		model   = fs.String("m", "", "GGUF model file (required)")
		nPrompt = fs.Int("p", 128, "prompt tokens of the pp test (0: skip)")
		nGen    = fs.Int("n", 32, "generated tokens of the tg test (0: skip)")
		depth   = fs.Int("d", 0, "tokens already in the KV cache before each test's timed part (llama-bench's depth)")
		threads = fs.Int("t", 0, "compute threads of the plugin (0: the configuration's setting)")
		reps    = fs.Int("r", 5, "repetitions of each test (after one warm-up run)")
		asJSON  = fs.Bool("json", false, "print a JSON array, one object per test (llama-bench field names)")
		viaWasm = fs.Bool("via-wasm", false, "also run the same tests from a WebAssembly guest through the Realm ABI")
		wasmArg = fs.String("wasm", "", "the bench guest for --via-wasm (default: examples/bench.wasm beside the realm binary)")
		schema  = fs.String("json-schema", "", "also run tg with host sampling, plain and masked by this JSON schema `FILE` (constrained-sampling cost)")
	)
	rf := addRuntimeFlags(fs, withBackend)
	fs.Usage = func() {
		fmt.Fprintln(env.Stderr, "usage: realm bench -m MODEL [-p 128] [-n 32] [-d 0] [-t N] [-r 5] [--backend NAME] [--config FILE] [--json] [--via-wasm [--wasm FILE]] [--json-schema FILE]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	switch {
	case *model == "":
		fs.Usage()
		return errors.New("bench: -m MODEL is required")
	case *nPrompt < 0 || *nGen < 0 || *depth < 0 || *reps < 1 || *threads < 0:
		return errors.New("bench: -p, -n, -d, -t must be ≥ 0 and -r ≥ 1")
	case *nPrompt == 0 && *nGen == 0:
		return errors.New("bench: nothing to run (-p 0 and -n 0)")
	}
	abs, err := filepath.Abs(*model)
	if err != nil {
		return err
	}
	st, err := os.Stat(abs)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}

	log := hclog.New(&hclog.LoggerOptions{Name: "realm", Output: env.Stderr, Level: hclog.Warn})
	b, sup, closeFn, err := openBenchBackend(ctx, env, rf.config, rf.backend, *threads, log)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	defer closeFn()
	name := sup.Active()
	info, err := b.Info(ctx)
	if err != nil {
		return fmt.Errorf("bench: backend info: %w", err)
	}
	// With --via-wasm the model is loaded once, through the host's model
	// cache as a guest's load is, and the direct tests and the guest's
	// share it: two loads would compare two copies of the weights, whose
	// speed differs by where the memory lands (huge pages or not).
	var mi *backends.ModelInfo
	var wb *wasmBench
	if *viaWasm {
		if wb, err = openWasmBench(ctx, b, name, abs, log); err != nil {
			return fmt.Errorf("bench: loading %s: %w", *model, err)
		}
		defer wb.close()
		mi = &wb.m.Info
	} else {
		if mi, err = b.LoadModel(ctx, backends.LoadRequest{Path: abs}); err != nil {
			return fmt.Errorf("bench: loading %s: %w", *model, err)
		}
		defer func() { _ = b.UnloadModel(context.WithoutCancel(ctx), mi.ID) }()
	}

	bn := &benchRunner{b: b, model: mi.ID, nVocab: mi.NVocab, nCtxTrain: mi.NCtxTrain}
	// Time to first token: one single-token decode right after loading.
	if _, err := bn.tg(ctx, 1); err != nil {
		return fmt.Errorf("bench: first token: %w", err)
	}
	ttft := time.Since(start)
	ttftCPU := processCPU(sup.PID())
	// The speed tests measure the steady state: after the backend has
	// placed the weights (cpu-avx2 copies them into huge pages in the
	// background while the first tokens run from the file mapping).
	if err := waitPrepared(ctx, b); err != nil {
		return fmt.Errorf("bench: %w", err)
	}

	base := benchResult{
		ModelFilename: abs,
		ModelType:     modelType(mi),
		ModelSize:     st.Size(),
		NThreads:      info.Threads,
		Backends:      name,
		TTFTMs:        float64(ttft.Microseconds()) / 1000,
		TTFTCPUMs:     float64(ttftCPU.Microseconds()) / 1000,
	}
	results, err := benchTests(ctx, bn, base, *nPrompt, *nGen, *depth, *reps, sup.PID())
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	var cold time.Duration
	if *schema != "" && *nGen > 0 {
		tok, err := readTokenizer(abs)
		if err != nil {
			return fmt.Errorf("bench --json-schema: %w", err)
		}
		sr, c, err := benchSchema(ctx, bn, tok, *schema, base, *nGen, *reps, sup.PID())
		if err != nil {
			return fmt.Errorf("bench --json-schema: %w", err)
		}
		results, cold = append(results, sr...), c
	}
	if wb != nil {
		wr, err := wb.run(ctx, *wasmArg, *nPrompt, *nGen, *depth, *reps, log, env)
		if err != nil {
			return fmt.Errorf("bench --via-wasm: %w", err)
		}
		for _, w := range wr {
			r := base
			r.NPrompt, r.NGen, r.NDepth, r.ViaWasm = w.np, w.ng, *depth, true
			r.SamplesNs = w.ns
			var ns []float64
			for _, v := range w.ns {
				ns = append(ns, float64(v))
				r.SamplesTs = append(r.SamplesTs, float64(w.np+w.ng)/(float64(v)/1e9))
			}
			avg, sd := meanStddev(ns)
			r.AvgNs, r.StddevNs = int64(avg), int64(sd)
			r.AvgTs, r.StddevTs = meanStddev(r.SamplesTs)
			results = append(results, r)
		}
	}
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(results)
	}
	if err := printBench(env, results, ttft); err != nil {
		return err
	}
	return printSchemaCost(env, results, cold)
}

// openBenchBackend starts the selected (or pinned) backend plugin under
// the loader's supervisor, with threads compute threads (0: as
// configured). It returns the backend, its supervisor and a release
// function.
func openBenchBackend(ctx context.Context, env *cliEnv, cfgFlag, pinFlag string, threads int, log hclog.Logger) (backends.Backend, *loader.Supervisor, func(), error) {
	rt, err := openRuntime(ctx, env, cfgFlag, pinFlag, threads, log)
	if err != nil {
		return nil, nil, nil, err
	}
	return rt.Supervisor, rt.Supervisor, func() { _ = rt.Close() }, nil
}

// processRSS returns the resident set size of process pid in bytes from
// /proc (Linux), or 0 when it cannot be read.
func processRSS(pid int) int64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb); err == nil {
				return kb << 10
			}
		}
	}
	return 0
}

// processCPU returns the user+system CPU time of process pid from /proc
// (Linux, 100 ticks per second), or 0 when it cannot be read.
func processCPU(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the parenthesised command name; utime and stime are
	// the 14th and 15th fields of the line.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	var ut, st int64
	if _, err := fmt.Sscan(f[11], &ut); err != nil {
		return 0
	}
	if _, err := fmt.Sscan(f[12], &st); err != nil {
		return 0
	}
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// benchTests runs the pp test (nPrompt tokens in one batch) and the tg
// test (nGen single-token decodes), each after depth tokens already in
// the KV cache, with one warm-up and reps timed repetitions, and returns
// a result for each test that has tokens. pid is the plugin's process
// for the CPU-time and RSS figures (0: none).
func benchTests(ctx context.Context, bn *benchRunner, base benchResult, nPrompt, nGen, depth, reps, pid int) ([]benchResult, error) {
	// Each test runs in its own session of exactly depth + its tokens
	// positions (like llama-bench), so pp at the training context
	// (-p 2048 on a model trained on 2048) fits.
	tests := []struct{ np, ng int }{{nPrompt, 0}, {0, nGen}}
	for _, t := range tests {
		if need := depth + t.np + t.ng; t.np+t.ng > 0 && bn.nCtxTrain > 0 && need > bn.nCtxTrain {
			return nil, fmt.Errorf("depth %d + %d test tokens = %d exceeds the model's training context %d", depth, t.np+t.ng, need, bn.nCtxTrain)
		}
	}
	var results []benchResult
	for _, test := range tests {
		if test.np+test.ng == 0 {
			continue
		}
		r, err := bn.measure(ctx, base, test.np, test.ng, depth, reps, pid)
		if err != nil {
			return nil, err
		}
		results = append(results, r)
	}
	return results, nil
}

// measure runs one test in a session of exactly depth + np + ng
// positions (np or ng is 0) whose depth is filled once.
func (r *benchRunner) measure(ctx context.Context, base benchResult, np, ng, depth, reps, pid int) (benchResult, error) {
	ds, err := r.open(ctx, depth, np+ng)
	if err != nil {
		return benchResult{}, err
	}
	defer ds.close(ctx)
	run := func(ctx context.Context, i int) (time.Duration, error) {
		if err := ds.rewind(ctx); err != nil {
			return 0, err
		}
		if np > 0 {
			return r.ppIn(ctx, ds.sid, np, i)
		}
		return r.tgIn(ctx, ds.sid, ng)
	}
	if _, err := run(ctx, 0); err != nil { // warm-up
		return benchResult{}, err
	}
	res := base
	res.NPrompt, res.NGen, res.NDepth = np, ng, depth
	cpu0 := processCPU(pid)
	for i := 0; i < reps; i++ {
		d, err := run(ctx, i+1)
		if err != nil {
			return benchResult{}, err
		}
		res.SamplesNs = append(res.SamplesNs, d.Nanoseconds())
		res.SamplesTs = append(res.SamplesTs, float64(np+ng)/d.Seconds())
	}
	if cpu := processCPU(pid) - cpu0; cpu0 > 0 && cpu > 0 {
		res.CPUTs = float64((np+ng)*reps) / cpu.Seconds()
	}
	var ns []float64
	for _, v := range res.SamplesNs {
		ns = append(ns, float64(v))
	}
	avg, sd := meanStddev(ns)
	res.AvgNs, res.StddevNs = int64(avg), int64(sd)
	res.AvgTs, res.StddevTs = meanStddev(res.SamplesTs)
	res.PluginRSS = processRSS(pid)
	if info, err := r.b.Info(ctx); err == nil {
		for _, p := range info.KVPools {
			if p.Model == r.model {
				res.KVBytes = p.AllocatedBytes
			}
		}
	}
	return res, nil
}

// benchRunner runs the pp and tg tests.
type benchRunner struct {
	b         backends.Backend
	model     backends.ModelID
	nVocab    int
	nCtxTrain int // 0: unknown
}

// benchTokens returns n fixed pseudo-random tokens below nVocab, starting
// the generator from seed (the same sequence as the bench guest's).
func benchTokens(n, nVocab int, seed uint32) []int32 {
	toks := make([]int32, n)
	x := seed
	for i := range toks {
		x = x*1664525 + 1013904223
		toks[i] = int32((x >> 8) % uint32(max(nVocab, 1)))
	}
	return toks
}

// depthSession is a session of depth + n positions whose first depth
// positions are filled once (untimed) and kept across the repetitions:
// rewind truncates it back to depth before each one.
type depthSession struct {
	b     backends.Backend
	sid   backends.SessionID
	depth int
}

// open starts a session of exactly depth + n positions and decodes depth
// pseudo-random tokens into it (a seed different from the pp test's, so
// that the pp batch does not repeat the context).
func (r *benchRunner) open(ctx context.Context, depth, n int) (*depthSession, error) {
	sid, err := r.b.OpenSession(ctx, r.model, depth+n)
	if err != nil {
		return nil, err
	}
	ds := &depthSession{b: r.b, sid: sid, depth: depth}
	if depth > 0 {
		toks := benchTokens(depth, r.nVocab, 777)
		if _, err := r.b.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: toks, Want: backends.WantNone}); err != nil {
			ds.close(ctx)
			return nil, fmt.Errorf("filling %d tokens of depth: %w", depth, err)
		}
	}
	return ds, nil
}

// rewind drops every position after the depth.
func (d *depthSession) rewind(ctx context.Context) error {
	return d.b.Truncate(ctx, d.sid, d.depth)
}

func (d *depthSession) close(ctx context.Context) {
	_ = d.b.CloseSession(context.WithoutCancel(ctx), d.sid)
}

// ppIn decodes a batch of n fixed pseudo-random tokens in session sid
// and returns the time of that decode (the greedy token of the last
// position is sampled in the plugin, so no logits cross the wire). Run
// i (0 the warm-up) draws from seed 12345+i: a prompt repeated after a
// rewind would find its blocks in the KV pool's prefix cache and not be
// computed at all (llama-bench clears its cache between runs).
func (r *benchRunner) ppIn(ctx context.Context, sid backends.SessionID, n, i int) (time.Duration, error) {
	toks := benchTokens(n, r.nVocab, 12345+uint32(i))
	t0 := time.Now()
	if _, err := r.b.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: toks, Want: backends.WantSample, Sample: backends.SampleParams{Temperature: 0}}); err != nil {
		return 0, err
	}
	return time.Since(t0), nil
}

// tgIn decodes n tokens one at a time in session sid, feeding back each
// greedy token, and returns the total time.
func (r *benchRunner) tgIn(ctx context.Context, sid backends.SessionID, n int) (time.Duration, error) {
	tok := int32(1)
	t0 := time.Now()
	for i := 0; i < n; i++ {
		res, err := r.b.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: []int32{tok}, Want: backends.WantSample, Sample: backends.SampleParams{Temperature: 0}})
		if err != nil {
			return 0, err
		}
		tok = res.Token
	}
	return time.Since(t0), nil
}

// tg decodes n tokens one at a time in a fresh session of n positions.
func (r *benchRunner) tg(ctx context.Context, n int) (time.Duration, error) {
	ds, err := r.open(ctx, 0, n)
	if err != nil {
		return 0, err
	}
	defer ds.close(ctx)
	return r.tgIn(ctx, ds.sid, n)
}

// modelType describes a model like llama-bench ("llama 1.1B Q4_0"): the
// architecture, the parameter count estimated from the shapes, and the
// most common tensor type among the matrices.
func modelType(mi *backends.ModelInfo) string {
	params := float64(mi.NVocab)*float64(mi.NEmbd)*2 +
		float64(mi.NLayer)*(2*float64(mi.NEmbd)*float64(mi.NEmbd)+
			2*float64(mi.NEmbd)*float64(mi.NEmbd)*float64(mi.NHeadKV)/float64(max(mi.NHead, 1))+
			3*float64(mi.NEmbd)*float64(mi.NFF))
	var size string
	switch {
	case params >= 1e9:
		size = fmt.Sprintf("%.1fB", params/1e9)
	case params >= 1e6:
		size = fmt.Sprintf("%.0fM", params/1e6)
	default:
		size = fmt.Sprintf("%.0fK", params/1e3)
	}
	names := make([]string, 0, len(mi.TensorTypes))
	for n := range mi.TensorTypes {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		a, b := mi.TensorTypes[names[i]], mi.TensorTypes[names[j]]
		if names[i] == "F32" || names[j] == "F32" { // norms: not the model's type
			return names[j] == "F32" && names[i] != "F32"
		}
		return a > b || (a == b && names[i] < names[j])
	})
	typ := "?"
	if len(names) > 0 {
		typ = names[0]
	}
	return strings.TrimSpace(fmt.Sprintf("%s %s %s", mi.Arch, size, typ))
}

func meanStddev(v []float64) (mean, sd float64) {
	if len(v) == 0 {
		return 0, 0
	}
	for _, x := range v {
		mean += x
	}
	mean /= float64(len(v))
	if len(v) < 2 {
		return mean, 0
	}
	for _, x := range v {
		sd += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(sd / float64(len(v)-1))
}

// printBench prints the results as a table like llama-bench's.
func printBench(env *cliEnv, results []benchResult, ttft time.Duration) error {
	tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "model\tsize\tbackend\tthreads\ttest\tt/s\tt/s per CPU-s")
	for _, r := range results {
		test := fmt.Sprintf("pp%d", r.NPrompt)
		if r.NGen > 0 {
			test = fmt.Sprintf("tg%d", r.NGen)
		}
		if r.NDepth > 0 {
			test += fmt.Sprintf(" @ d%d", r.NDepth)
		}
		if r.ViaWasm {
			test += " (wasm)"
		}
		if r.Sampler != "" {
			test += " (" + r.Sampler + ")"
		}
		cpu := "-"
		if r.CPUTs > 0 {
			cpu = fmt.Sprintf("%.2f", r.CPUTs)
		}
		fmt.Fprintf(tw, "%s\t%.2f MiB\t%s\t%d\t%s\t%.2f ± %.2f\t%s\n", r.ModelType, float64(r.ModelSize)/(1<<20), r.Backends, r.NThreads, test, r.AvgTs, r.StddevTs, cpu)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if _, err := fmt.Fprintf(env.Stdout, "time to first token (bench start → plugin start, model load, first decode): %.0f ms\n", float64(ttft.Microseconds())/1000); err != nil {
		return err
	}
	for i := len(results) - 1; i >= 0; i-- {
		if r := results[i]; r.PluginRSS > 0 {
			_, err := fmt.Fprintf(env.Stdout, "plugin RSS after the tests: %.1f MiB (model file %.1f MiB, KV pool %.1f MiB)\n",
				float64(r.PluginRSS)/(1<<20), float64(r.ModelSize)/(1<<20), float64(r.KVBytes)/(1<<20))
			return err
		}
	}
	return nil
}

// wasmTest is one test's timings from the bench guest.
type wasmTest struct {
	np, ng int
	ns     []int64
}

// wasmBench is a model loaded through a host model cache (a registry
// of one model: the file, by a fixed name), for the bench guest.
type wasmBench struct {
	cache *loader.ModelCache
	m     *model.Model
}

// wasmModelName is the name the bench guest loads its model by.
const wasmModelName = "bench-model"

// openWasmBench loads the model file at path on backend b through a
// model cache, and waits until the backend has placed its weights.
func openWasmBench(ctx context.Context, b backends.Backend, backendName, path string, log hclog.Logger) (*wasmBench, error) {
	dir, file := filepath.Split(path)
	src := fmt.Sprintf("models_dir = %s\nmodel %q {\n  path = %s\n}\n", hclString(dir), wasmModelName, hclString(file))
	cfg, err := loader.ParseConfig([]byte(src), "bench.hcl")
	if err != nil {
		return nil, err
	}
	cache := loader.NewModelCache(loader.CacheConfig{
		Registry:    loader.NewRegistry(cfg),
		Backend:     b,
		BackendName: backendName,
		Logger:      log,
	})
	m, err := cache.Acquire(ctx, wasmModelName)
	if err != nil {
		cache.Close()
		return nil, err
	}
	return &wasmBench{cache: cache, m: m}, nil
}

// close releases the model and the cache (which unloads it).
func (w *wasmBench) close() {
	w.cache.Release(w.m)
	w.cache.Close()
}

// benchViaWasm loads the model file at path on backend b through a model
// cache and runs the bench guest on it (see wasmBench.run).
func benchViaWasm(ctx context.Context, b backends.Backend, backendName, path, wasmPath string, nPrompt, nGen, depth, reps int, log hclog.Logger, env *cliEnv) ([]wasmTest, error) {
	wb, err := openWasmBench(ctx, b, backendName, path, log)
	if err != nil {
		return nil, err
	}
	defer wb.close()
	return wb.run(ctx, wasmPath, nPrompt, nGen, depth, reps, log, env)
}

// run runs the bench guest (examples/bench) in a Realm host whose
// models come from w's cache (the guest's load by name gets w's model)
// and returns its pp and tg timings, measured after the backend has
// placed the weights.
func (w *wasmBench) run(ctx context.Context, wasmPath string, nPrompt, nGen, depth, reps int, log hclog.Logger, env *cliEnv) ([]wasmTest, error) {
	if wasmPath == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		wasmPath = filepath.Join(filepath.Dir(exe), "examples", "bench.wasm")
	}
	wasm, err := os.ReadFile(wasmPath)
	if err != nil {
		return nil, fmt.Errorf("%w (build it with: GOOS=wasip1 GOARCH=wasm go build -o bin/examples/bench.wasm ./examples/bench)", err)
	}
	if err := waitPrepared(ctx, w.m.Backend); err != nil {
		return nil, err
	}
	cache, name := w.cache, wasmModelName
	hcfg := core.Config{Models: loaderhost.Models(cache), Logger: log, CacheDir: defaultGuestCacheDir()}
	host, err := core.NewHost(ctx, hcfg)
	if err != nil {
		return nil, err
	}
	defer host.Close(context.WithoutCancel(ctx))
	var out bytes.Buffer
	res, err := host.Run(ctx, core.RunRequest{
		Wasm: wasm, Name: filepath.Base(wasmPath),
		Args:   []string{name, strconv.Itoa(nPrompt), strconv.Itoa(nGen), strconv.Itoa(reps), strconv.Itoa(depth)},
		Stdout: &out, Stderr: env.Stderr,
		Policy: core.Policy{Timeout: time.Hour},
	})
	if err != nil {
		return nil, err
	}
	if res.ExitCode != 0 {
		return nil, fmt.Errorf("guest exited with status %d", res.ExitCode)
	}
	var g struct {
		PP []int64 `json:"pp_ns"`
		TG []int64 `json:"tg_ns"`
	}
	if err := json.Unmarshal(out.Bytes(), &g); err != nil {
		return nil, fmt.Errorf("guest output: %w", err)
	}
	var tests []wasmTest
	if nPrompt > 0 {
		tests = append(tests, wasmTest{np: nPrompt, ns: g.PP})
	}
	if nGen > 0 {
		tests = append(tests, wasmTest{ng: nGen, ns: g.TG})
	}
	for _, t := range tests {
		if len(t.ns) != reps {
			return nil, fmt.Errorf("guest output: %d timings, want %d", len(t.ns), reps)
		}
	}
	return tests, nil
}

// waitPrepared waits (up to 10 minutes) until b places the weights of
// no loaded model in the background any more (backends.Info.Preparing).
func waitPrepared(ctx context.Context, b backends.Backend) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	for {
		info, err := b.Info(ctx)
		if err != nil {
			return fmt.Errorf("waiting for the weights to be placed: %w", err)
		}
		if len(info.Preparing) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the weights of models %v to be placed: %w", info.Preparing, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// hclString quotes s as an HCL string literal (no template sequences).
func hclString(s string) string {
	q, _ := json.Marshal(s)
	return strings.NewReplacer("${", "$${", "%{", "%%{").Replace(string(q))
}

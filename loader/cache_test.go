package loader

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/internal/backend/reference"
	"github.com/realmrt/realm/internal/engine"
	"github.com/realmrt/realm/model"
)

const storiesSHA256 = "270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d"

// cacheFixture makes a models dir with copies of the reference model
// named a, b and c, plus extra config text, and returns a cache over a
// fake backend.
func cacheFixture(t *testing.T, budget int64, extra string) (*ModelCache, *fakeBackend, int64) {
	t.Helper()
	dir := t.TempDir()
	models := filepath.Join(dir, "models")
	if err := os.Mkdir(models, 0o755); err != nil {
		t.Fatal(err)
	}
	src := storiesPath(t)
	for _, n := range []string{"a", "b", "c"} {
		copyFile(t, src, filepath.Join(models, n+".gguf"))
	}
	st, err := os.Stat(src)
	if err != nil {
		t.Fatal(err)
	}
	cfg := mustParseAt(t, dir, "models_dir = \"models\"\nbackend \"fake\" {}\nbackend \"other\" {}\n"+extra)
	fb := newFake()
	c := NewModelCache(CacheConfig{Registry: NewRegistry(cfg), Backend: fb, BackendName: "fake", BudgetBytes: budget})
	t.Cleanup(func() { c.Close() })
	return c, fb, st.Size()
}

func entryOf(t *testing.T, c *ModelCache, name string) ModelEntry {
	t.Helper()
	for _, e := range c.List(context.Background()) {
		if e.Name == name {
			return e
		}
	}
	t.Fatalf("%s not listed", name)
	return ModelEntry{}
}

func TestCacheAcquire(t *testing.T) {
	c, fb, size := cacheFixture(t, 0, "")
	ctx := context.Background()
	m, err := c.Acquire(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "a" || m.BackendName != "fake" || m.Backend != fb || m.Info.ID == 0 || m.SizeBytes != size {
		t.Errorf("model = %+v", m)
	}
	if m.Meta == nil || len(m.Meta.Tensors) == 0 {
		t.Error("no GGUF metadata")
	}
	if arch, _ := m.Meta.String("general.architecture"); arch != "llama" {
		t.Errorf("arch = %q", arch)
	}
	if m.Tokenizer == nil || m.Tokenizer.NVocab() != 512 {
		t.Errorf("tokenizer = %v", m.Tokenizer)
	}
	m2, err := c.Acquire(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if m2 != m {
		t.Error("second Acquire returned another *model.Model")
	}
	if fb.totalLoads() != 1 {
		t.Errorf("LoadModel called %d times", fb.totalLoads())
	}
	if e := entryOf(t, c, "a"); !e.Loaded || e.Refs != 2 {
		t.Errorf("entry = %+v", e)
	}
	c.Release(m)
	c.Release(m2)
	c.Release(m2) // one too many: ignored
	if e := entryOf(t, c, "a"); !e.Loaded || e.Refs != 0 {
		t.Errorf("after release: %+v", e)
	}
	if e := entryOf(t, c, "b"); e.Loaded {
		t.Errorf("b loaded: %+v", e)
	}
	// Released but unbudgeted: still loaded, and re-acquired without a load.
	if m3, err := c.Acquire(ctx, "a"); err != nil || m3 != m {
		t.Errorf("re-acquire: %v, same=%v", err, m3 == m)
	}
	if fb.totalLoads() != 1 || c.Used() != size {
		t.Errorf("loads %d used %d", fb.totalLoads(), c.Used())
	}
}

func TestCacheCoalesce(t *testing.T) {
	c, fb, _ := cacheFixture(t, 0, "")
	fb.gate = make(chan struct{})
	fb.started = make(chan struct{}, 100)
	const n = 16
	var wg sync.WaitGroup
	models := make([]*model.Model, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			models[i], errs[i] = c.Acquire(context.Background(), "a")
		}()
	}
	<-fb.started
	// Give the other goroutines time to join the load in flight.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		w := c.entries["a"].waiters
		c.mu.Unlock()
		if w == n || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(fb.gate)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if models[i] != models[0] {
			t.Fatal("goroutines got different models")
		}
	}
	if fb.totalLoads() != 1 {
		t.Errorf("LoadModel called %d times, want 1", fb.totalLoads())
	}
	if e := entryOf(t, c, "a"); e.Refs != n {
		t.Errorf("refs = %d, want %d", e.Refs, n)
	}
}

func TestCacheWaiterCancelled(t *testing.T) {
	c, fb, _ := cacheFixture(t, 0, "")
	fb.gate = make(chan struct{})
	fb.started = make(chan struct{}, 10)
	done := make(chan error, 1)
	var first *model.Model
	go func() {
		var err error
		first, err = c.Acquire(context.Background(), "a")
		done <- err
	}()
	<-fb.started
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := c.Acquire(ctx, "a"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiter: %v", err)
	}
	close(fb.gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if e := entryOf(t, c, "a"); e.Refs != 1 {
		t.Errorf("refs = %d, want 1 (the cancelled waiter holds none)", e.Refs)
	}
	c.Release(first)
}

func TestCacheLoaderCancelled(t *testing.T) {
	// The caller that started the load gives up; a waiter that did not
	// retries and gets the model.
	c, fb, _ := cacheFixture(t, 0, "")
	fb.gate = make(chan struct{})
	fb.started = make(chan struct{}, 10)
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		_, err := c.Acquire(ctx, "a")
		first <- err
	}()
	<-fb.started
	second := make(chan error, 1)
	go func() {
		_, err := c.Acquire(context.Background(), "a")
		second <- err
	}()
	for {
		c.mu.Lock()
		w := c.entries["a"].waiters
		c.mu.Unlock()
		if w == 2 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Errorf("first: %v", err)
	}
	<-fb.started // the retry
	close(fb.gate)
	if err := <-second; err != nil {
		t.Errorf("second: %v", err)
	}
	if e := entryOf(t, c, "a"); !e.Loaded || e.Refs != 1 {
		t.Errorf("entry = %+v", e)
	}
}

func TestCacheLRUEviction(t *testing.T) {
	// Room for two models.
	c, fb, size := cacheFixture(t, 0, "")
	c.cfg.BudgetBytes = 2*size + size/2
	ctx := context.Background()
	acq := func(name string) *model.Model {
		t.Helper()
		m, err := c.Acquire(ctx, name)
		if err != nil {
			t.Fatalf("Acquire(%s): %v", name, err)
		}
		return m
	}
	a := acq("a")
	b := acq("b")
	c.Release(b)
	c.Release(a) // a is now the most recently used
	cm := acq("c")
	if fb.nLoaded() != 2 {
		t.Errorf("backend holds %d models, want 2", fb.nLoaded())
	}
	if len(fb.unloads) != 1 || fb.unloads[0] != b.Info.ID {
		t.Errorf("unloads = %v, want b's id %d", fb.unloads, b.Info.ID)
	}
	if entryOf(t, c, "b").Loaded || !entryOf(t, c, "a").Loaded || !entryOf(t, c, "c").Loaded {
		t.Error("wrong model evicted")
	}
	if c.Used() != 2*size {
		t.Errorf("used %d, want %d", c.Used(), 2*size)
	}
	// a idle, c held: loading b evicts a.
	b = acq("b")
	if entryOf(t, c, "a").Loaded {
		t.Error("idle a not evicted")
	}
	// b and c held: a cannot fit.
	_, err := c.Acquire(ctx, "a")
	if !errors.Is(err, ErrOverBudget) || !errors.Is(err, backends.ErrOutOfMemory) || !strings.Contains(err.Error(), "in use") {
		t.Errorf("over budget: %v", err)
	}
	if c.Used() != 2*size {
		t.Errorf("failed load leaked budget: used %d", c.Used())
	}
	c.Release(b)
	c.Release(cm)
	if _, err := c.Acquire(ctx, "a"); err != nil {
		t.Errorf("after release: %v", err)
	}

	// A model bigger than the whole budget.
	c.cfg.BudgetBytes = size / 2
	c.Close()
	c2 := NewModelCache(CacheConfig{Registry: c.cfg.Registry, Backend: fb, BackendName: "fake", BudgetBytes: size / 2})
	defer c2.Close()
	if _, err := c2.Acquire(ctx, "a"); !errors.Is(err, ErrOverBudget) {
		t.Errorf("too big: %v", err)
	}
}

func TestCacheChecksum(t *testing.T) {
	bad := strings.Repeat("0", 64)
	c, fb, _ := cacheFixture(t, 0, fmt.Sprintf(`
model "good" {
  path = "a.gguf"
  sha256 = %q
}
model "bad" {
  path = "b.gguf"
  sha256 = %q
}
`, strings.ToUpper(storiesSHA256), bad))
	ctx := context.Background()
	_, err := c.Acquire(ctx, "bad")
	if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), storiesSHA256) {
		t.Errorf("bad: %v", err)
	}
	if fb.totalLoads() != 0 {
		t.Error("LoadModel called for a file with a wrong checksum")
	}
	m, err := c.Acquire(ctx, "good")
	if err != nil {
		t.Fatal(err)
	}
	if e := entryOf(t, c, "good"); e.SHA256 != storiesSHA256 || !e.Configured {
		t.Errorf("entry = %+v", e)
	}
	c.Release(m)
}

func TestCacheErrors(t *testing.T) {
	c, fb, _ := cacheFixture(t, 0, `
model "elsewhere" {
  path = "c.gguf"
  backend = "other"
}
model "mine" {
  path = "a.gguf"
  backend = "fake"
}
`)
	ctx := context.Background()
	for name, want := range map[string]error{
		"../a":      ErrInvalidName,
		"A":         ErrInvalidName,
		"":          ErrInvalidName,
		"missing":   ErrNotFound,
		"elsewhere": ErrWrongBackend,
	} {
		if _, err := c.Acquire(ctx, name); !errors.Is(err, want) {
			t.Errorf("Acquire(%q) = %v, want %v", name, err, want)
		}
	}
	if _, err := c.Acquire(ctx, "mine"); err != nil {
		t.Errorf("mine: %v", err)
	}
	fb.loadErr = fmt.Errorf("boom: %w", backends.ErrInvalidModel)
	if _, err := c.Acquire(ctx, "b"); !errors.Is(err, backends.ErrInvalidModel) {
		t.Errorf("backend failure: %v", err)
	}
	fb.loadErr = nil
	// A failed load is remembered for a short while: the next request
	// gets the error without loading again...
	loads := fb.totalLoads()
	if _, err := c.Acquire(ctx, "b"); !errors.Is(err, backends.ErrInvalidModel) || !strings.Contains(err.Error(), "retried in") {
		t.Errorf("right after the failure: %v", err)
	}
	if fb.totalLoads() != loads {
		t.Error("loaded again within the retry delay")
	}
	// ...and once the delay has passed, the next request loads it.
	c.mu.Lock()
	f := c.failures["b"]
	f.at = f.at.Add(-failureDelay(f.n))
	c.failures["b"] = f
	c.mu.Unlock()
	if _, err := c.Acquire(ctx, "b"); err != nil {
		t.Errorf("retry after failure: %v", err)
	}
	c.mu.Lock()
	n := len(c.entries)
	c.mu.Unlock()
	if n != 2 {
		t.Errorf("%d entries, want 2 (failed loads leave none)", n)
	}
}

func TestCacheClose(t *testing.T) {
	c, fb, _ := cacheFixture(t, 0, "")
	ctx := context.Background()
	for _, n := range []string{"a", "b"} {
		if _, err := c.Acquire(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if fb.nLoaded() != 0 || c.Used() != 0 {
		t.Errorf("after Close: backend holds %d, used %d", fb.nLoaded(), c.Used())
	}
	if _, err := c.Acquire(ctx, "a"); !errors.Is(err, ErrCacheClosed) {
		t.Errorf("Acquire after Close: %v", err)
	}
}

func TestCacheConcurrent(t *testing.T) {
	c, fb, size := cacheFixture(t, 0, "")
	c.cfg.BudgetBytes = 2 * size
	names := []string{"a", "b", "c"}
	var wg sync.WaitGroup
	var mu sync.Mutex
	unexpected := []error{}
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			for range 40 {
				m, err := c.Acquire(context.Background(), names[rng.IntN(len(names))])
				if err != nil {
					if !errors.Is(err, ErrOverBudget) {
						mu.Lock()
						unexpected = append(unexpected, err)
						mu.Unlock()
					}
					continue
				}
				if rng.IntN(2) == 0 {
					time.Sleep(time.Duration(rng.IntN(200)) * time.Microsecond)
				}
				c.Release(m)
			}
		}()
	}
	wg.Wait()
	if len(unexpected) > 0 {
		t.Fatal(unexpected)
	}
	loaded := 0
	for _, e := range c.List(context.Background()) {
		if e.Loaded {
			loaded++
			if e.Refs != 0 {
				t.Errorf("%s refs %d after every release", e.Name, e.Refs)
			}
		}
	}
	if loaded != fb.nLoaded() || int64(loaded)*size != c.Used() || c.Used() > 2*size {
		t.Errorf("cache lists %d loaded, backend holds %d, used %d", loaded, fb.nLoaded(), c.Used())
	}
}

func TestJudgeBackend(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name     string
		setup    func(f *fakeBackend)
		gpu      bool
		veto     string
		software bool
	}{
		{name: "cpu ok", setup: func(f *fakeBackend) {}},
		{name: "discrete", gpu: true, setup: func(f *fakeBackend) {
			f.devices = []backends.Device{{Name: "NVIDIA H100", Kind: "discrete"}}
		}},
		{name: "lavapipe", gpu: true, software: true, setup: func(f *fakeBackend) {
			f.devices = []backends.Device{{Name: "llvmpipe (LLVM 17.0.6, 256 bits)", Kind: "cpu"}}
		}},
		{name: "mixed", gpu: true, setup: func(f *fakeBackend) {
			f.devices = []backends.Device{{Name: "llvmpipe", Kind: "cpu"}, {Name: "AMD Radeon", Kind: "integrated"}}
		}},
		{name: "no device", gpu: true, veto: "no device", setup: func(f *fakeBackend) {}},
		{name: "info fails", veto: "info: backend crashed", setup: func(f *fakeBackend) { f.infoErr = backends.ErrBackendCrashed }},
		{name: "wrong math", veto: "self-test: matmul", setup: func(f *fakeBackend) { f.badMatMul = true }},
		{name: "op unsupported", setup: func(f *fakeBackend) { f.opErr = backends.ErrUnsupported }},
		{name: "op fails", veto: "self-test: out of memory", setup: func(f *fakeBackend) { f.opErr = backends.ErrOutOfMemory }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake()
			tc.setup(f)
			pr := JudgeBackend(ctx, f, tc.gpu)
			if !pr.Probed || pr.Software != tc.software || !strings.Contains(pr.Veto, tc.veto) || (tc.veto == "") != (pr.Veto == "") {
				t.Errorf("probe = %+v, want veto %q software %v", pr, tc.veto, tc.software)
			}
		})
	}
}

func TestPreflight(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]os.FileMode{"realm-backend-reference": 0o755, "realm-backend-vulkan": 0o755, "realm-backend-noexec": 0o644} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	cfg := mustParseAt(t, dir, `
backend "reference" {}
backend "vulkan" {
  gpu = true
  probe = true
}
backend "cpu-avx2" {
  arch = "amd64"
  requires = ["AVX2"]
  probe = true
}
backend "noexec" {}
`)
	var probed []string
	probe := func(ctx context.Context, b BackendConfig) ProbeResult {
		probed = append(probed, b.Name)
		return ProbeResult{Software: true}
	}
	prs := Preflight(context.Background(), oldX86, cfg, probe)
	if strings.Join(probed, ",") != "vulkan" {
		t.Errorf("probed %v, want only vulkan (cpu-avx2 lacks AVX2 and its binary)", probed)
	}
	if !prs["vulkan"].Probed || !prs["vulkan"].Software {
		t.Errorf("vulkan = %+v", prs["vulkan"])
	}
	if want := "binary not built: run make (bin/realm-backend-cpu-avx2)"; prs["cpu-avx2"].BinaryErr != want {
		t.Errorf("cpu-avx2 = %q, want %q", prs["cpu-avx2"].BinaryErr, want)
	}
	if !strings.Contains(prs["noexec"].BinaryErr, "not executable") || prs["reference"].BinaryErr != "" {
		t.Errorf("noexec = %+v, reference = %+v", prs["noexec"], prs["reference"])
	}
	d, err := Select(oldX86, cfg, prs, "")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(d.Order, ",") != "reference,vulkan" {
		t.Errorf("order = %v", d.Order)
	}
}

// TestCacheEngineBackend loads the reference model through the real
// in-process engine over the reference kernels.
func TestCacheEngineBackend(t *testing.T) {
	dir := t.TempDir()
	src := storiesPath(t)
	cfg := mustParseAt(t, dir, fmt.Sprintf(`
models_dir = %q
model "stories260k" {
  path = "stories260K.gguf"
  sha256 = %q
}
`, filepath.Dir(src), storiesSHA256))
	be := engine.NewBackend(reference.New(), engine.Options{Name: "reference"})
	c := NewModelCache(CacheConfig{Registry: NewRegistry(cfg), Backend: be, BackendName: "reference"})
	defer c.Close()
	ctx := context.Background()
	m, err := c.Acquire(ctx, "stories260k")
	if err != nil {
		t.Fatal(err)
	}
	if m.Info.NVocab != 512 || m.Info.NLayer != 5 || m.Info.Arch != "llama" {
		t.Errorf("info = %+v", m.Info)
	}
	ids, err := m.Tokenizer.Encode("Once upon a time", true, false)
	if err != nil || len(ids) < 2 {
		t.Fatalf("encode: %v %v", ids, err)
	}
	sid, err := be.OpenSession(ctx, m.Info.ID, 64)
	if err != nil {
		t.Fatal(err)
	}
	res, err := be.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: ids, Want: backends.WantLogits})
	if err != nil || len(res.Logits) != 512 {
		t.Fatalf("decode: %v", err)
	}
	c.Release(m)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := be.OpenSession(ctx, m.Info.ID, 8); err == nil {
		t.Error("model still loaded in the backend after Close")
	}
	if pr := JudgeBackend(ctx, be, false); pr.Veto != "" {
		t.Errorf("reference fails the self-test: %s", pr.Veto)
	}
}

// TestCacheReserveNoPointlessEviction: a model that cannot fit even
// after evicting every idle model evicts none (before: every idle model
// was unloaded first, then the load failed anyway).
func TestCacheReserveNoPointlessEviction(t *testing.T) {
	c, fb, size := cacheFixture(t, 0, "")
	ctx := context.Background()
	c.cfg.BudgetBytes = 2*size + size/2
	held, err := c.Acquire(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	idle, err := c.Acquire(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	c.Release(idle)
	// 2·size held or idle; a KV reservation of 1.6·size cannot fit even
	// with b evicted (size held by a + 1.6·size > 2.5·size).
	if _, err := c.ReserveKV(ctx, size+size*6/10); !errors.Is(err, ErrOverBudget) || !errors.Is(err, backends.ErrOutOfMemory) {
		t.Fatalf("oversized KV reservation: %v", err)
	}
	if !entryOf(t, c, "b").Loaded || len(fb.unloads) != 0 {
		t.Fatalf("idle model evicted for a reservation that could not fit (unloads %v)", fb.unloads)
	}
	// One that fits after evicting b evicts b and is counted.
	used := c.Used()
	release, err := c.ReserveKV(ctx, size)
	if err != nil {
		t.Fatal(err)
	}
	if entryOf(t, c, "b").Loaded || c.KVBytes() != size || c.Used() != used-size+size {
		t.Errorf("after reserving: b loaded %v, kv %d, used %d (was %d)", entryOf(t, c, "b").Loaded, c.KVBytes(), c.Used(), used)
	}
	// The KV bytes hold the budget: b cannot come back until released.
	if _, err := c.Acquire(ctx, "b"); !errors.Is(err, ErrOverBudget) {
		t.Errorf("b while KV holds the room: %v", err)
	}
	release()
	release() // idempotent
	if c.KVBytes() != 0 {
		t.Errorf("kv after release: %d", c.KVBytes())
	}
	m, err := c.Acquire(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	c.Release(m)
	c.Release(held)
}

// TestCacheKVBudget carries kv_budget (the model block's, else the
// file's) to the backend in LoadRequest.
func TestCacheKVBudget(t *testing.T) {
	c, fb, _ := cacheFixture(t, 0, "kv_budget = \"1GiB\"\nmodel \"b\" {\n  path = \"b.gguf\"\n  kv_budget = \"64MiB\"\n}\n")
	ctx := context.Background()
	for _, n := range []string{"a", "b"} {
		m, err := c.Acquire(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Release(m)
		want := uint64(1 << 30)
		if n == "b" {
			want = 64 << 20
		}
		fb.mu.Lock()
		got := fb.kvBudgets[m.Path]
		fb.mu.Unlock()
		if got != want {
			t.Errorf("model %s loaded with KVBudget %d, want %d", n, got, want)
		}
		if e := entryOf(t, c, n); e.KVBudget != int64(want) {
			t.Errorf("model %s listed with kv_budget %d, want %d", n, e.KVBudget, want)
		}
	}
}

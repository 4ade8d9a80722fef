package core

import (
	"bytes"
	"context"
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
)

type testEnv struct {
	h  *Host
	tm *testModels
}

func newTestEnv(t testing.TB) *testEnv {
	t.Helper()
	tm := newTestModels(t)
	h, err := NewHost(context.Background(), Config{Models: tm})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(context.Background()) })
	return &testEnv{h: h, tm: tm}
}

type runOut struct {
	res    *RunResult
	err    error
	trace  string
	stdout string
	stderr string
}

func (e *testEnv) run(t testing.TB, wasm []byte, p Policy, args ...string) runOut {
	t.Helper()
	var tr, out, errb bytes.Buffer
	res, err := e.h.Run(context.Background(), RunRequest{Wasm: wasm, Args: args, Stdout: &out, Stderr: &errb, Trace: &tr, Policy: p})
	if held := e.tm.held(); len(held) != 0 {
		t.Errorf("model references still held after the run: %v", held)
	}
	return runOut{res, err, tr.String(), out.String(), errb.String()}
}

// traceLines keeps the ==>/<== lines.
func traceLines(s string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(s, "\n") {
		if strings.HasPrefix(l, "==>") || strings.HasPrefix(l, "<==") {
			b.WriteString(l)
		}
	}
	return b.String()
}

const testTimeout = 2 * time.Minute // a cap for slow machines (-race), not a wait

// TestCompileCacheEvictionWhileHeld fills the compiled-module cache past
// its size while one run still holds the oldest module: the eviction must
// not close it under that run, and the last holder closes it instead.
func TestCompileCacheEvictionWhileHeld(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	r, err := e.h.runtime(ctx, DefaultMemoryBytes/wasmPageSize)
	if err != nil {
		t.Fatal(err)
	}
	module := func(i int) *Module {
		w := newWasm().i32(int64(i)).raw(opDrop).bytes()
		return &Module{wasm: w, key: sha256.Sum256(w)}
	}
	held, release, err := r.compile(ctx, module(0))
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= maxCompiled; i++ {
		_, rel, err := r.compile(ctx, module(i))
		if err != nil {
			t.Fatal(err)
		}
		rel()
	}
	r.mu.Lock()
	_, cached := r.compiled[module(0).key]
	r.mu.Unlock()
	if cached {
		t.Fatal("module 0 is still cached after maxCompiled newer ones")
	}
	// The evicted module is still usable by its holder.
	inst, err := r.rt.InstantiateModule(ctx, held, wazero.NewModuleConfig().WithStartFunctions().WithName(""))
	if err != nil {
		t.Fatalf("instantiate the held module after eviction: %v", err)
	}
	inst.Close(ctx)
	release()
	release() // idempotent
}

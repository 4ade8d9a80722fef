package core

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
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

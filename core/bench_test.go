package core

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/realmrt/realm/internal/refdata"
)

// BenchmarkInstantiateWarm: one run of a minimal guest (and of the Go
// generate example, which exits at once for lack of arguments) with the
// compiled module cached: instantiation plus _start.
func BenchmarkInstantiateWarm(b *testing.B) {
	e := newTestEnv(b)
	small := newWasm().call("realm_host_last_error", 0, 0).bytes()
	for _, c := range []struct {
		name string
		wasm []byte
	}{{"tiny", small}, {"go-generate", guests.get(b, "generate")}} {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			mod, err := e.h.Compile(ctx, c.wasm)
			if err != nil {
				b.Fatal(err)
			}
			req := RunRequest{Module: mod, Stderr: io.Discard, Policy: Policy{Timeout: testTimeout}}
			if _, err := e.h.Run(ctx, req); err != nil { // warm the cache
				b.Fatal(err)
			}
			var inst time.Duration
			b.ResetTimer()
			for range b.N {
				res, err := e.h.Run(ctx, req)
				if err != nil {
					b.Fatal(err)
				}
				inst += res.Instantiate
			}
			b.ReportMetric(float64(inst.Microseconds())/float64(b.N), "µs-instantiate/op")
		})
	}
}

// BenchmarkHostCall: the per-call overhead of a host function (a guest
// making 10000 calls of realm_host_last_error(0, 0), net of the run).
func BenchmarkHostCall(b *testing.B) {
	e := newTestEnv(b)
	const calls = 10000
	w := newWasm()
	for range calls {
		w.call("realm_host_last_error", 0, 0)
	}
	many := w.bytes()
	none := newWasm().bytes()
	ctx := context.Background()
	run := func(wasm []byte) time.Duration {
		start := time.Now()
		if _, err := e.h.Run(ctx, RunRequest{Wasm: wasm, Policy: Policy{Timeout: testTimeout}}); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	run(many)
	run(none)
	var net time.Duration
	b.ResetTimer()
	for range b.N {
		net += run(many) - run(none)
	}
	b.ReportMetric(float64(net.Nanoseconds())/float64(b.N*calls), "ns/call")
}

// BenchmarkTokensPerSecond compares the guest-driven decode loop
// (sampler, greedy) with one-call generate on stories260K, in-process
// backend with reference kernels.
func BenchmarkTokensPerSecond(b *testing.B) {
	ref, err := refdata.LoadOutput("stories260K.once-upon")
	if err != nil {
		b.Fatal(err)
	}
	e := newTestEnv(b)
	n := fmt.Sprint(len(ref.GenIDs))
	for _, c := range []struct {
		name string
		wasm []byte
		args []string
	}{
		{"sampler", guests.get(b, "sampler"), []string{"-greedy", "-n", n, "stories260k", ref.Prompt}},
		{"generate", guests.get(b, "generate"), []string{"stories260k", ref.Prompt, n}},
	} {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			req := RunRequest{Wasm: c.wasm, Args: c.args, Stdout: io.Discard, Stderr: io.Discard, Policy: Policy{Timeout: testTimeout}}
			if _, err := e.h.Run(ctx, req); err != nil {
				b.Fatal(err)
			}
			tokens, gen := 0, time.Duration(0)
			b.ResetTimer()
			for range b.N {
				res, err := e.h.Run(ctx, req)
				if err != nil || res.ExitCode != 0 {
					b.Fatal(err, res)
				}
				tokens += res.TokensDecoded
				gen += res.Duration - res.Instantiate
			}
			b.ReportMetric(float64(tokens)/gen.Seconds(), "tokens/s")
		})
	}
}

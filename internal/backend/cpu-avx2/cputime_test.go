//go:build linux && amd64

package cpuavx2

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/realmrt/realm/gguf"
)

// threadCPU returns the CPU time consumed by the calling OS thread.
func threadCPU() time.Duration {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
	return time.Duration(ts.Nano())
}

// BenchmarkKernelCPU times single-threaded kernels by the thread's CPU
// time rather than wall time, so that other processes on a shared
// machine distort the figures less. Reports cpu-GB/s of weights and
// cpu-GFLOP/s.
func BenchmarkKernelCPU(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 5))
	for _, batch := range []int{1, 128} {
		for _, typ := range []gguf.Type{gguf.TypeQ4_0, gguf.TypeQ8_0, gguf.TypeQ4_K, gguf.TypeQ6_K, gguf.TypeF16,
			gguf.TypeQ5_K, gguf.TypeIQ4_NL, gguf.TypeIQ4_XS} {
			rows := 256
			if batch > 1 {
				rows = 64
			}
			w := randWeight(rng, typ, rows, 2048)
			x := randVec(rng, batch*2048)
			out := make([]float32, batch*rows)
			for _, isa := range []string{"avx2", "vnni", "amx"} {
				vnni, amx := isa != "avx2", isa == "amx"
				if isa == "vnni" && typ != gguf.TypeQ4_0 && typ != gguf.TypeQ8_0 && typ != gguf.TypeQ4_K && typ != gguf.TypeIQ4_XS && typ != gguf.TypeIQ4_NL {
					continue
				}
				if amx && (batch == 1 || typ == gguf.TypeF16) {
					continue
				}
				b.Run(fmt.Sprintf("b%d/%v/%s", batch, typ, isa), func(b *testing.B) {
					k := benchKernelsAMX(b, 1, vnni, amx)
					runtime.LockOSThread()
					defer runtime.UnlockOSThread()
					k.MatMul(out, w, x, batch)
					best := time.Duration(1 << 62)
					for b.Loop() {
						t0 := threadCPU()
						k.MatMul(out, w, x, batch)
						if d := threadCPU() - t0; d < best && d > 0 {
							best = d
						}
					}
					s := best.Seconds()
					b.ReportMetric(float64(len(w.Data))/s/1e9, "cpu-GB/s")
					b.ReportMetric(2*float64(rows)*2048*float64(batch)/s/1e9, "cpu-GFLOP/s")
				})
			}
		}
	}
}

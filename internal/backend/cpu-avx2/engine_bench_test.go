//go:build linux && amd64

package cpuavx2

import (
	"context"
	"flag"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/gguf"
	"github.com/realmrt/realm/internal/engine"
)

var (
	benchModel   = flag.String("model", "", "GGUF model for BenchmarkEngine (e.g. a synthetic TinyLlama in /tmp)")
	benchThreads = flag.Int("threads", 2, "threads for BenchmarkEngine")
	benchAVX2    = flag.Bool("avx2only", false, "BenchmarkEngine: the AVX2 kernels only (no AVX-512, VNNI or AMX)")
)

// BenchmarkEngine runs the in-process engine over these kernels on the
// model named by -model: pp128 (one 128-token batch) and tg (one token
// per decode). Without -model it is skipped: the model files are too big
// for the repository.
func BenchmarkEngine(b *testing.B) {
	if *benchModel == "" {
		b.Skip("no -model given")
	}
	ctx := context.Background()
	k, err := NewWithOptions(Options{Threads: *benchThreads, DisableVNNI: *benchAVX2})
	if err != nil {
		b.Fatal(err)
	}
	be := engine.NewBackend(k, engine.Options{Name: Name, Threads: *benchThreads})
	mi, err := be.LoadModel(ctx, backends.LoadRequest{Path: *benchModel})
	if err != nil {
		b.Fatal(err)
	}
	defer be.UnloadModel(ctx, mi.ID)
	b.Run("tg", func(b *testing.B) {
		sid, err := be.OpenSession(ctx, mi.ID, 2048)
		if err != nil {
			b.Fatal(err)
		}
		defer be.CloseSession(ctx, sid)
		tok := int32(1)
		for b.Loop() {
			res, err := be.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: []int32{tok}, Want: backends.WantSample})
			if err != nil {
				b.Fatal(err)
			}
			tok = res.Token
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tok/s")
	})
	b.Run("pp128", func(b *testing.B) {
		toks := make([]int32, 128)
		for i := range toks {
			toks[i] = int32(100 + 7*i)
		}
		for b.Loop() {
			sid, err := be.OpenSession(ctx, mi.ID, 256)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := be.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: toks, Want: backends.WantSample}); err != nil {
				b.Fatal(err)
			}
			be.CloseSession(ctx, sid)
		}
		b.ReportMetric(128*float64(b.N)/b.Elapsed().Seconds(), "tok/s")
	})
}

// BenchmarkMappedMatVec multiplies by token_embd.weight of -model read
// in place from the mapping, and by a heap copy of it: the difference is
// the cost of streaming from 4 KiB page-cache pages.
func BenchmarkMappedMatVec(b *testing.B) {
	if *benchModel == "" {
		b.Skip("no -model given")
	}
	m, err := gguf.Open(*benchModel)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	ti, ok := m.Tensor("token_embd.weight")
	if !ok {
		b.Fatal("no token_embd.weight")
	}
	data, err := m.TensorData(ti)
	if err != nil {
		b.Fatal(err)
	}
	w := &engine.Weight{Type: ti.Type, Rows: int(ti.Dims[1]), Cols: int(ti.Dims[0]), Data: data}
	hw := *w
	hw.Data = append([]byte(nil), data...)
	x := make([]float32, w.Cols)
	for i := range x {
		x[i] = float32(i%13) - 6
	}
	out := make([]float32, w.Rows)
	for _, threads := range []int{1, 2} {
		k := benchKernels(b, threads, true)
		for _, c := range []struct {
			name string
			w    *engine.Weight
		}{{"mapped", w}, {"heap", &hw}} {
			b.Run(fmt.Sprintf("%s/t%d", c.name, threads), func(b *testing.B) {
				b.SetBytes(int64(len(data)))
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				var cpu time.Duration
				for b.Loop() {
					t0 := threadCPU()
					k.MatMul(out, c.w, x, 1)
					cpu += threadCPU() - t0
				}
				if threads == 1 {
					b.ReportMetric(float64(len(data))*float64(b.N)/cpu.Seconds()/1e9, "cpu-GB/s")
				}
			})
		}
	}
}

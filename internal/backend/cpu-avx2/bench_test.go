//go:build amd64

package cpuavx2

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/realmrt/realm/gguf"
	"github.com/realmrt/realm/internal/engine"
)

// TinyLlama-1.1B matrix shapes (rows × cols).
var benchShapes = []struct {
	name       string
	rows, cols int
}{
	{"attn_2048x2048", 2048, 2048},
	{"ffn_up_5632x2048", 5632, 2048},
	{"ffn_down_2048x5632", 2048, 5632},
	{"output_32000x2048", 32000, 2048},
}

func benchKernels(b *testing.B, threads int, vnni bool) *Kernels {
	return benchKernelsAMX(b, threads, vnni, false)
}

// benchKernelsAMX is benchKernels with the AMX tiles on or off (on:
// skipped without AMX).
func benchKernelsAMX(b *testing.B, threads int, vnni, amx bool) *Kernels {
	ki, err := NewWithOptions(Options{Threads: threads, DisableVNNI: !vnni, DisableAMX: !amx})
	if err != nil {
		b.Fatal(err)
	}
	k := ki.(*Kernels)
	b.Cleanup(func() { k.Close() })
	if vnni && !k.UsesVNNI() {
		b.Skip("no AVX512-VNNI")
	}
	if amx && !k.UsesAMX() {
		b.Skip("no AMX-INT8")
	}
	return k
}

// BenchmarkMatVec reports GB/s of weights streamed (one activation row).
func BenchmarkMatVec(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, typ := range []gguf.Type{gguf.TypeQ4_0, gguf.TypeQ8_0, gguf.TypeQ4_K, gguf.TypeQ5_K, gguf.TypeQ6_K, gguf.TypeIQ4_NL, gguf.TypeIQ4_XS, gguf.TypeF16} {
		for _, sh := range benchShapes {
			if typ == gguf.TypeF16 && sh.rows > 6000 {
				continue
			}
			w := randWeight(rng, typ, sh.rows, sh.cols)
			x := randVec(rng, sh.cols)
			out := make([]float32, sh.rows)
			for _, threads := range []int{1, 2} {
				if packable(w) {
					pw := *w
					pw.Data = make([]byte, len(w.Data))
					packRows(pw.Data, w.Data, w.Type, w.Rows, w.Cols)
					pw.Layout = layoutP16
					b.Run(fmt.Sprintf("%v/%s/t%d/p16", typ, sh.name, threads), func(b *testing.B) {
						k := benchKernels(b, threads, true)
						b.SetBytes(int64(len(w.Data)))
						for b.Loop() {
							k.MatMul(out, &pw, x, 1)
						}
					})
				}
				for _, vnni := range []bool{false, true} {
					if vnni && typ != gguf.TypeQ4_0 && typ != gguf.TypeQ8_0 && typ != gguf.TypeQ4_K && typ != gguf.TypeIQ4_XS && typ != gguf.TypeIQ4_NL {
						continue
					}
					isa := "avx2"
					if vnni {
						isa = "vnni"
					}
					b.Run(fmt.Sprintf("%v/%s/t%d/%s", typ, sh.name, threads, isa), func(b *testing.B) {
						k := benchKernels(b, threads, vnni)
						b.SetBytes(int64(len(w.Data)))
						for b.Loop() {
							k.MatMul(out, w, x, 1)
						}
					})
				}
			}
		}
	}
}

// BenchmarkMatMulBatch128 reports GFLOP/s (2·rows·cols·batch per op) and
// GB/s of weights for a prompt batch of 128 rows.
func BenchmarkMatMulBatch128(b *testing.B) {
	rng := rand.New(rand.NewPCG(2, 2))
	const batch = 128
	for _, typ := range []gguf.Type{gguf.TypeQ4_0, gguf.TypeQ8_0, gguf.TypeQ4_K, gguf.TypeQ5_K, gguf.TypeQ6_K, gguf.TypeIQ4_NL, gguf.TypeIQ4_XS, gguf.TypeF16} {
		for _, sh := range benchShapes[:3] {
			w := randWeight(rng, typ, sh.rows, sh.cols)
			x := randVec(rng, batch*sh.cols)
			out := make([]float32, batch*sh.rows)
			for _, threads := range []int{1, 2} {
				if packable(w) {
					pw := *w
					pw.Data = make([]byte, len(w.Data))
					packRows(pw.Data, w.Data, w.Type, w.Rows, w.Cols)
					pw.Layout = layoutP16
					b.Run(fmt.Sprintf("%v/%s/t%d/p16", typ, sh.name, threads), func(b *testing.B) {
						k := benchKernels(b, threads, true)
						b.SetBytes(int64(len(w.Data)))
						for b.Loop() {
							k.MatMul(out, &pw, x, batch)
						}
						flops := 2 * float64(sh.rows) * float64(sh.cols) * batch * float64(b.N)
						b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
					})
				}
				for _, vnni := range []bool{false, true} {
					if vnni && typ != gguf.TypeQ4_0 && typ != gguf.TypeQ8_0 && typ != gguf.TypeQ4_K && typ != gguf.TypeIQ4_XS && typ != gguf.TypeIQ4_NL {
						continue
					}
					isa := "avx2"
					if vnni {
						isa = "vnni"
					}
					b.Run(fmt.Sprintf("%v/%s/t%d/%s", typ, sh.name, threads, isa), func(b *testing.B) {
						k := benchKernels(b, threads, vnni)
						b.SetBytes(int64(len(w.Data)))
						for b.Loop() {
							k.MatMul(out, w, x, batch)
						}
						flops := 2 * float64(sh.rows) * float64(sh.cols) * batch * float64(b.N)
						b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
					})
				}
			}
		}
	}
}

// BenchmarkOps covers the vector kernels on TinyLlama sizes.
func BenchmarkOps(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 3))
	k := benchKernels(b, 2, false)
	n := 2048 * 128
	x, y, out := randVec(rng, n), randVec(rng, n), make([]float32, n)
	wt := randVec(rng, 2048)
	b.Run("rmsnorm_128x2048", func(b *testing.B) {
		b.SetBytes(int64(4 * n))
		for b.Loop() {
			k.RMSNorm(out, x, wt, 2048, 1e-5)
		}
	})
	b.Run("silumul_128x5632", func(b *testing.B) {
		g, u, o := randVec(rng, 128*5632), randVec(rng, 128*5632), make([]float32, 128*5632)
		b.SetBytes(int64(4 * len(g)))
		for b.Loop() {
			k.SiLUMul(o, g, u)
		}
	})
	b.Run("add_2048", func(b *testing.B) {
		b.SetBytes(4 * 2048)
		for b.Loop() {
			k.Add(out[:2048], x[:2048], y[:2048])
		}
	})
	b.Run("softmax_32x512", func(b *testing.B) {
		b.SetBytes(4 * 32 * 512)
		for b.Loop() {
			copy(out, x[:32*512])
			k.Softmax(out[:32*512], 512)
		}
	})
	b.Run("rope_128x32x64", func(b *testing.B) {
		pos := make([]int32, 128)
		for i := range pos {
			pos[i] = int32(i)
		}
		for b.Loop() {
			k.RoPE(out[:128*2048], pos, 32, 64, 64, 10000)
		}
	})
	for _, sp := range []struct{ batch, start int }{{1, 511}, {128, 0}} {
		b.Run(fmt.Sprintf("attention_b%d_ctx%d", sp.batch, sp.batch+sp.start), func(b *testing.B) {
			p := engine.AttentionParams{NHead: 32, NHeadKV: 4, HeadDim: 64, Batch: sp.batch, StartPos: sp.start, Scale: 0.125}
			ctx := sp.batch + sp.start
			q := randVec(rng, sp.batch*32*64)
			kc, vc := randVec(rng, ctx*4*64), randVec(rng, ctx*4*64)
			o := make([]float32, len(q))
			for b.Loop() {
				k.Attention(o, q, kc, vc, p)
			}
		})
	}
}

// BenchmarkMemRead measures this machine's read bandwidth with the F32
// dot product over 2×64 MiB (a yardstick for the GB/s figures above).
func BenchmarkMemRead(b *testing.B) {
	n := 16 << 20
	x, y := make([]float32, n), make([]float32, n)
	for i := range x {
		x[i], y[i] = 1, 1
	}
	b.SetBytes(int64(8 * n))
	for b.Loop() {
		dotF32(&x[0], &y[0], n)
	}
}

// BenchmarkMatVecInCache measures the matvec kernels' compute speed on
// one thread with the weights in L2 (256×2048), free of memory limits.
func BenchmarkMatVecInCache(b *testing.B) {
	rng := rand.New(rand.NewPCG(4, 4))
	for _, typ := range []gguf.Type{gguf.TypeQ4_0, gguf.TypeQ8_0, gguf.TypeQ4_K, gguf.TypeQ6_K, gguf.TypeF16} {
		w := randWeight(rng, typ, 256, 2048)
		x := randVec(rng, 2048)
		out := make([]float32, 256)
		for _, vnni := range []bool{false, true} {
			if vnni && typ != gguf.TypeQ4_0 && typ != gguf.TypeQ8_0 && typ != gguf.TypeQ4_K && typ != gguf.TypeIQ4_XS && typ != gguf.TypeIQ4_NL {
				continue
			}
			isa := "avx2"
			if vnni {
				isa = "vnni"
			}
			b.Run(fmt.Sprintf("%v/%s", typ, isa), func(b *testing.B) {
				k := benchKernels(b, 1, vnni)
				b.SetBytes(int64(len(w.Data)))
				for b.Loop() {
					k.MatMul(out, w, x, 1)
				}
			})
			if vnni && packable(w) {
				p := *w
				p.Data = make([]byte, len(w.Data))
				packRows(p.Data, w.Data, w.Type, w.Rows, w.Cols)
				p.Layout = layoutP16
				b.Run(fmt.Sprintf("%v/packed", typ), func(b *testing.B) {
					k := benchKernels(b, 1, vnni)
					b.SetBytes(int64(len(p.Data)))
					for b.Loop() {
						x[0] += 1e-3 // defeat the requantization skip
						k.MatMul(out, &p, x, 1)
					}
				})
			}
		}
	}
}

//go:build amd64

package cpuavx2

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/realmrt/realm/internal/engine"
	"testing"

	"github.com/realmrt/realm/internal/engine/kvtest"
)

// forcedPath is a Kernels whose AttentionF16 takes the tiled path from
// batches of minTiled rows (1: always; a huge value: never).
type forcedPath struct {
	*Kernels
	minTiled int
}

func (f forcedPath) AttentionF16(out, q []float32, kv engine.KVView, p engine.AttentionParams) {
	f.attentionF16(out, q, kv, p, f.minTiled)
}

// TestAttentionF16 checks the fused f16 attention (1 and 2 threads)
// against the reference kernels: as dispatched, and forced onto the
// per-row and the tiled path for every case.
func TestAttentionF16(t *testing.T) {
	for _, threads := range []int{1, 2} {
		for name, k := range variants(t, threads) {
			t.Run(fmt.Sprint(name, threads), func(t *testing.T) { kvtest.Check(t, k, 2e-6) })
			if name != "avx2" {
				continue // the attention kernels do not depend on VNNI or AMX
			}
			t.Run(fmt.Sprint(name, threads, "/rows"), func(t *testing.T) { kvtest.Check(t, forcedPath{k, math.MaxInt}, 2e-6) })
			t.Run(fmt.Sprint(name, threads, "/tiled"), func(t *testing.T) { kvtest.Check(t, forcedPath{k, 1}, 2e-6) })
		}
	}
}

// BenchmarkAttention compares one decode step's attention (TinyLlama's
// shape: 32 query heads over 4 KV heads of 64) at depth 4096: the fused
// kernel over f16 blocks and the f32 kernel over a contiguous cache.
func BenchmarkAttention(b *testing.B) {
	ki, err := New(2)
	if err != nil {
		b.Fatal(err)
	}
	k := ki.(*Kernels)
	defer k.Close()
	p := engine.AttentionParams{NHead: 32, NHeadKV: 4, HeadDim: 64, Batch: 1, StartPos: 4095, Scale: 0.125}
	kvd := p.NHeadKV * p.HeadDim
	n := p.StartPos + p.Batch
	rng := rand.New(rand.NewPCG(1, 1))
	kf, vf := randVec(rng, n*kvd), randVec(rng, n*kvd)
	var view engine.KVView
	for i := 0; i < engine.BlocksFor(n); i++ {
		kb, vb := make([]uint16, engine.KVBlockSize*kvd), make([]uint16, engine.KVBlockSize*kvd)
		k.ToF16(kb, kf[i*len(kb):min(len(kf), (i+1)*len(kb))])
		k.ToF16(vb, vf[i*len(vb):min(len(vf), (i+1)*len(vb))])
		view.K, view.V = append(view.K, kb), append(view.V, vb)
	}
	q := randVec(rng, p.NHead*p.HeadDim)
	out := make([]float32, len(q))
	b.Run("f16-blocks", func(b *testing.B) {
		for range b.N {
			k.AttentionF16(out, q, view, p)
		}
	})
	b.Run("f32", func(b *testing.B) {
		for range b.N {
			k.Attention(out, q, kf, vf, p)
		}
	})
}

// f16View returns n positions of random keys and values in f16 blocks
// (kvd values per position).
func f16View(k *Kernels, rng *rand.Rand, n, kvd int) engine.KVView {
	kf, vf := randVec(rng, n*kvd), randVec(rng, n*kvd)
	var view engine.KVView
	for i := 0; i < engine.BlocksFor(n); i++ {
		kb, vb := make([]uint16, engine.KVBlockSize*kvd), make([]uint16, engine.KVBlockSize*kvd)
		k.ToF16(kb, kf[i*len(kb):min(len(kf), (i+1)*len(kb))])
		k.ToF16(vb, vf[i*len(vb):min(len(vf), (i+1)*len(vb))])
		view.K, view.V = append(view.K, kb), append(view.V, vb)
	}
	return view
}

// BenchmarkAttentionPrefill compares the per-row and the tiled f16
// attention (2 threads) for a prefill batch of 512 in TinyLlama's shape
// (32 query heads over 4 KV heads of 64) at depths 0 and 4096, and for
// small batches at depth 4096 in shapes with groups of 8, 4 and 1 (where
// the tiled path starts to win: tiledMinBatch).
func BenchmarkAttentionPrefill(b *testing.B) {
	ki, err := New(2)
	if err != nil {
		b.Fatal(err)
	}
	k := ki.(*Kernels)
	defer k.Close()
	rng := rand.New(rand.NewPCG(1, 1))
	flush := make([]byte, 64<<20)
	type shape struct {
		name                string
		nHead, nHeadKV, dim int
	}
	tiny := shape{"tinyllama", 32, 4, 64}
	cases := []struct {
		s            shape
		batch, depth int
	}{{tiny, 512, 0}, {tiny, 512, 4096}}
	for _, s := range []shape{tiny, {"g4d128", 32, 8, 128}, {"g1d128", 32, 32, 128}} {
		for _, batch := range []int{1, 2, 4, 8, 16} {
			cases = append(cases, struct {
				s            shape
				batch, depth int
			}{s, batch, 4096})
		}
	}
	for _, c := range cases {
		b.Run(fmt.Sprintf("%s/batch%d/depth%d", c.s.name, c.batch, c.depth), func(b *testing.B) {
			p := engine.AttentionParams{NHead: c.s.nHead, NHeadKV: c.s.nHeadKV, HeadDim: c.s.dim, Batch: c.batch,
				StartPos: c.depth, Scale: float32(1 / math.Sqrt(float64(c.s.dim)))}
			view := f16View(k, rng, p.StartPos+p.Batch, p.NHeadKV*p.HeadDim)
			q := randVec(rng, p.Batch*p.NHead*p.HeadDim)
			out := make([]float32, len(q))
			for _, path := range []struct {
				name     string
				minTiled int
			}{{"rows", math.MaxInt}, {"tiled", 1}} {
				b.Run(path.name, func(b *testing.B) {
					for range b.N {
						k.attentionF16(out, q, view, p, path.minTiled)
					}
				})
				if c.batch > 1 {
					continue
				}
				// As in generation, where the weights streamed between two
				// layers' attention evict the cache: the KV comes from memory.
				b.Run(path.name+"-cold", func(b *testing.B) {
					for range b.N {
						b.StopTimer()
						for i := 0; i < len(flush); i += 64 {
							flush[i]++
						}
						b.StartTimer()
						k.attentionF16(out, q, view, p, path.minTiled)
					}
				})
			}
		})
	}
}

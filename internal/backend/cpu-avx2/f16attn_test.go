//go:build amd64

package cpuavx2

import (
	"math/rand/v2"

	"github.com/realmrt/realm/internal/engine"
	"testing"

	"github.com/realmrt/realm/internal/engine/kvtest"
)

// TestAttentionF16 checks the fused f16 attention (1 and 2 threads)
// against the reference kernels.
func TestAttentionF16(t *testing.T) {
	for _, threads := range []int{1, 2} {
		for name, k := range variants(t, threads) {
			t.Run(name, func(t *testing.T) { kvtest.Check(t, k, 2e-6) })
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

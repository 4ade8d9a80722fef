// Package kvtest checks kernels' attention over the engine's f16 KV
// blocks against the reference kernels' f32 attention (shared by the
// backends' tests).
package kvtest

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/realmrt/realm/gguf"
	"github.com/realmrt/realm/internal/backend/reference"
	"github.com/realmrt/realm/internal/engine"
)

// Case is one attention call.
type Case struct {
	NHead, NHeadKV, HeadDim int
	Batch, StartPos         int
	Window                  int
	SoftCap                 float32
}

// Cases covers GQA ratios, odd head sizes (SIMD tails), decode and
// prefill, positions inside and across blocks, long caches, sliding
// windows and soft caps.
var Cases = []Case{
	{NHead: 4, NHeadKV: 4, HeadDim: 64, Batch: 1, StartPos: 0},
	{NHead: 8, NHeadKV: 2, HeadDim: 64, Batch: 1, StartPos: 31},
	{NHead: 8, NHeadKV: 2, HeadDim: 64, Batch: 1, StartPos: 32},
	{NHead: 6, NHeadKV: 3, HeadDim: 5, Batch: 7, StartPos: 30},
	{NHead: 4, NHeadKV: 1, HeadDim: 13, Batch: 40, StartPos: 0},
	{NHead: 32, NHeadKV: 4, HeadDim: 64, Batch: 1, StartPos: 1000},
	{NHead: 4, NHeadKV: 2, HeadDim: 128, Batch: 9, StartPos: 300},
	{NHead: 4, NHeadKV: 2, HeadDim: 32, Batch: 20, StartPos: 50, Window: 16},
	{NHead: 4, NHeadKV: 2, HeadDim: 32, Batch: 3, StartPos: 500, Window: 100, SoftCap: 50},
	{NHead: 2, NHeadKV: 1, HeadDim: 24, Batch: 33, StartPos: 0, SoftCap: 2},
	// Prefill batches large enough for tiled kernels (a tile of rows
	// sharing each block): groups of 1, 4, 7 and 8, head sizes with and
	// without SIMD tails, deep caches starting inside a block, diagonal
	// blocks that differ per row, windows and soft caps.
	{NHead: 32, NHeadKV: 4, HeadDim: 64, Batch: 64, StartPos: 0},
	{NHead: 32, NHeadKV: 4, HeadDim: 64, Batch: 2, StartPos: 1000},
	{NHead: 16, NHeadKV: 2, HeadDim: 64, Batch: 16, StartPos: 1001},
	{NHead: 4, NHeadKV: 4, HeadDim: 128, Batch: 40, StartPos: 1200},
	{NHead: 7, NHeadKV: 1, HeadDim: 96, Batch: 24, StartPos: 900},
	{NHead: 14, NHeadKV: 2, HeadDim: 80, Batch: 19, StartPos: 45},
	{NHead: 8, NHeadKV: 2, HeadDim: 64, Batch: 48, StartPos: 3000, Window: 300},
	{NHead: 8, NHeadKV: 1, HeadDim: 40, Batch: 70, StartPos: 37, SoftCap: 30},
	{NHead: 3, NHeadKV: 3, HeadDim: 13, Batch: 50, StartPos: 1000, Window: 64, SoftCap: 20},
	{NHead: 4, NHeadKV: 1, HeadDim: 256, Batch: 20, StartPos: 2500, Window: 400, SoftCap: 50},
}

// Check runs every case on k and compares with the reference kernels'
// f32 Attention over the same values: both compute the same sums in a
// different order, so they agree to float32 rounding (≤ tol absolute;
// outputs are weighted means of values in [-2, 2]).
func Check(t *testing.T, k engine.F16Attention, tol float64) {
	t.Helper()
	ref := reference.New()
	rng := rand.New(rand.NewPCG(1, 2))
	for ci, c := range Cases {
		kvd := c.NHeadKV * c.HeadDim
		n := c.StartPos + c.Batch
		nb := engine.BlocksFor(n)
		var view engine.KVView
		kf := make([]float32, n*kvd)
		vf := make([]float32, n*kvd)
		for i := 0; i < nb; i++ {
			kb := make([]uint16, engine.KVBlockSize*kvd)
			vb := make([]uint16, engine.KVBlockSize*kvd)
			for j := range kb {
				// Garbage past the filled positions must not matter.
				kb[j], vb[j] = gguf.F32ToF16(float32(rng.NormFloat64()*100)), gguf.F32ToF16(1e4)
				if p := i*engine.KVBlockSize + j/kvd; p < n {
					kb[j] = gguf.F32ToF16(float32(rng.NormFloat64()))
					vb[j] = gguf.F32ToF16(float32(rng.Float64()*4 - 2))
					kf[p*kvd+j%kvd] = gguf.F16ToF32(kb[j])
					vf[p*kvd+j%kvd] = gguf.F16ToF32(vb[j])
				}
			}
			view.K, view.V = append(view.K, kb), append(view.V, vb)
		}
		q := make([]float32, c.Batch*c.NHead*c.HeadDim)
		for i := range q {
			q[i] = float32(rng.NormFloat64())
		}
		p := engine.AttentionParams{NHead: c.NHead, NHeadKV: c.NHeadKV, HeadDim: c.HeadDim, Batch: c.Batch,
			StartPos: c.StartPos, Scale: float32(1 / math.Sqrt(float64(c.HeadDim))), Window: c.Window, SoftCap: c.SoftCap}
		want := make([]float32, len(q))
		ref.Attention(want, q, kf, vf, p)
		got := make([]float32, len(q)+1)
		got[len(q)] = 42
		k.AttentionF16(got[:len(q)], q, view, p)
		if got[len(q)] != 42 {
			t.Errorf("case %d %+v: wrote past the output", ci, c)
		}
		var worst float64
		for i := range want {
			if d := math.Abs(float64(got[i] - want[i])); d > worst || math.IsNaN(float64(got[i])) {
				worst = d
				if math.IsNaN(float64(got[i])) {
					worst = math.Inf(1)
				}
			}
		}
		if worst > tol {
			t.Errorf("case %d %+v: max abs difference %g from the reference (tolerance %g)", ci, c, worst, tol)
		}
	}
	// ToF16 rounds like gguf.F32ToF16 (ties to even, overflow to inf,
	// subnormals), for every length (SIMD tails).
	src := []float32{0, -0, 1, -1, 65504, 65520, 1e6, -1e6, 5.96e-8, 2.98e-8, 6.1e-5, 1.0009766, 1.00048828125,
		float32(math.Inf(1)), float32(math.Inf(-1)), 3.14159, -2.71828}
	for range 100 {
		src = append(src, float32(rng.NormFloat64()*math.Pow(10, float64(rng.IntN(12)-6))))
	}
	for n := 0; n <= len(src); n += 1 + n/8 {
		dst := make([]uint16, n+1)
		dst[n] = 0xBEEF
		k.ToF16(dst[:n], src[:n])
		for i := 0; i < n; i++ {
			if want := gguf.F32ToF16(src[i]); dst[i] != want {
				t.Fatalf("ToF16(%g) (length %d) = %#x, want %#x", src[i], n, dst[i], want)
			}
		}
		if dst[n] != 0xBEEF {
			t.Fatalf("ToF16 of length %d wrote past the end", n)
		}
	}
}

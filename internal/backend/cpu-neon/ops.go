package cpuneon

import (
	"fmt"
	"math"

	"github.com/realmrt/realm/internal/engine"
)

// elemChunk is the number of elements one worker takes at a time in the
// element-wise kernels; shorter vectors run on the calling goroutine.
const elemChunk = 16 * 1024

// RMSNorm normalizes each row of n elements of x and scales it by weight.
func (k *Kernels) RMSNorm(out, x, weight []float32, n int, eps float32) {
	if n <= 0 {
		return
	}
	rows := len(x) / n
	weight = weight[:n]
	k.pool.parallel(rows, max(1, elemChunk/n), func(_, lo, hi int) {
		for r := lo; r < hi; r++ {
			xr := x[r*n : (r+1)*n]
			ss := dotF32(xr, xr)
			scale := float32(1 / math.Sqrt(float64(ss/float32(n)+eps)))
			scaleMul(out[r*n:(r+1)*n], xr, weight, scale)
		}
	})
}

// RoPE rotates adjacent pairs of the first nDims elements of each head of
// x in place by pos·base^(−2i/nDims) (ggml's normal mode).
func (k *Kernels) RoPE(x []float32, pos []int32, nHeads, headDim, nDims int, base float32) {
	if len(pos) == 0 || nHeads <= 0 || nDims <= 0 {
		return
	}
	if nDims > headDim || nDims%2 != 0 || len(x) < len(pos)*nHeads*headDim {
		panic(fmt.Sprintf("cpuneon: RoPE: bad shape (nDims %d, headDim %d, %d rows × %d heads, len %d)",
			nDims, headDim, len(pos), nHeads, len(x)))
	}
	half := nDims / 2
	inv := make([]float64, half)
	for i := range inv {
		inv[i] = math.Pow(float64(base), -2*float64(i)/float64(nDims))
	}
	k.pool.parallel(len(pos), 1, func(_, lo, hi int) {
		cos, sin := make([]float32, half), make([]float32, half)
		for b := lo; b < hi; b++ {
			p := float64(pos[b])
			for i := range cos {
				s, c := math.Sincos(p * inv[i])
				cos[i], sin[i] = float32(c), float32(s)
			}
			row := x[b*nHeads*headDim : (b+1)*nHeads*headDim]
			for h := 0; h < nHeads; h++ {
				rope(row[h*headDim:h*headDim+nDims], cos, sin)
			}
		}
	})
}

// Softmax replaces each row of n elements of x by its softmax.
func (k *Kernels) Softmax(x []float32, n int) {
	if n <= 0 {
		return
	}
	rows := len(x) / n
	k.pool.parallel(rows, max(1, elemChunk/n), func(_, lo, hi int) {
		for r := lo; r < hi; r++ {
			softmaxRow(x[r*n : (r+1)*n])
		}
	})
}

// softmaxRow computes the softmax of x in place.
func softmaxRow(x []float32) {
	sum := expSub(x, x, maxF32(x))
	vscale(x, x, 1/sum)
}

// SiLUMul computes out[i] = silu(gate[i])·up[i].
func (k *Kernels) SiLUMul(out, gate, up []float32) {
	n := len(out)
	gate, up = gate[:n], up[:n]
	k.pool.parallel(n, elemChunk, func(_, lo, hi int) {
		siluMul(out[lo:hi], gate[lo:hi], up[lo:hi])
	})
}

// Add computes out[i] = a[i] + b[i].
func (k *Kernels) Add(out, a, b []float32) {
	n := len(out)
	a, b = a[:n], b[:n]
	k.pool.parallel(n, 4*elemChunk, func(_, lo, hi int) {
		vadd(out[lo:hi], a[lo:hi], b[lo:hi])
	})
}

// Mul computes out[i] = a[i]·b[i].
func (k *Kernels) Mul(out, a, b []float32) {
	n := len(out)
	a, b = a[:n], b[:n]
	k.pool.parallel(n, 4*elemChunk, func(_, lo, hi int) {
		vmul(out[lo:hi], a[lo:hi], b[lo:hi])
	})
}

// ExtOps lists the extended graph ops: GoExt's and the attention
// window and soft-capping, which Attention honours.
func (k *Kernels) ExtOps() []string {
	return append(k.GoExt.ExtOps(), engine.GOpAttnWindow, engine.GOpAttnSoftCap)
}

// Attention computes causal grouped-query attention for one layer; query
// heads are spread over the workers.
func (k *Kernels) Attention(out, q, kc, vc []float32, p engine.AttentionParams) {
	if p.Batch <= 0 || p.NHead <= 0 {
		return
	}
	if p.NHeadKV <= 0 || p.NHead%p.NHeadKV != 0 || p.HeadDim <= 0 || p.StartPos < 0 {
		panic(fmt.Sprintf("cpuneon: Attention: bad parameters %+v", p))
	}
	hd := p.HeadDim
	kvStride := p.NHeadKV * hd
	ctx := p.StartPos + p.Batch
	if len(q) < p.Batch*p.NHead*hd || len(out) < p.Batch*p.NHead*hd || len(kc) < ctx*kvStride || len(vc) < ctx*kvStride {
		panic(fmt.Sprintf("cpuneon: Attention: short slices for %+v", p))
	}
	group := p.NHead / p.NHeadKV
	buf := make([]float32, k.threads*ctx) // one score row per worker
	k.pool.parallel(p.Batch*p.NHead, 1, func(w, lo, hi int) {
		scores := buf[w*ctx : (w+1)*ctx]
		for t := lo; t < hi; t++ {
			b, h := t/p.NHead, t%p.NHead
			kvh := h / group
			qv := q[(b*p.NHead+h)*hd : (b*p.NHead+h+1)*hd]
			n := p.StartPos + b + 1
			first := 0
			if p.Window > 0 {
				first = max(0, n-p.Window)
			}
			sc := scores[:n-first]
			for i := range sc {
				j := first + i
				sc[i] = dotF32(qv, kc[j*kvStride+kvh*hd:j*kvStride+(kvh+1)*hd]) * p.Scale
			}
			if p.SoftCap != 0 {
				for i, v := range sc {
					sc[i] = float32(float64(p.SoftCap) * math.Tanh(float64(v)/float64(p.SoftCap)))
				}
			}
			softmaxRow(sc)
			o := out[(b*p.NHead+h)*hd : (b*p.NHead+h+1)*hd]
			clear(o)
			for i, w := range sc {
				j := first + i
				axpy(o, w, vc[j*kvStride+kvh*hd:j*kvStride+(kvh+1)*hd])
			}
		}
	})
}

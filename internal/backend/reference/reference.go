// Package reference is Realm's scalar, obviously-correct implementation
// of engine.Kernels: plain Go loops, no threads, no SIMD. It runs
// everywhere and is the yardstick the other backends are compared with.
//
// Numerics: every dot product and reduction is accumulated in float64
// from exact float64 products of float32 operands and rounded to
// float32 once at the end. A product of two float32 values is exact in
// float64, so whether the compiler fuses the multiply-add (arm64 always
// does, amd64 with GOAMD64=v3) cannot change a bit of the result; every
// other place where fusion could apply uses an explicit conversion to
// force the intermediate rounding. The results are therefore identical
// on every architecture.
package reference

import (
	"fmt"
	"math"

	"github.com/realmrt/realm/gguf"
	"github.com/realmrt/realm/internal/engine"
)

// Kernels is the scalar kernel set. The zero value is ready to use and
// it is safe for concurrent use (it holds no state).
type Kernels struct {
	engine.GoExt // the element-wise extended ops
}

// New returns the scalar reference kernels.
func New() engine.Kernels { return Kernels{} }

var _ engine.ExtKernels = Kernels{}

var _ engine.Kernels = Kernels{}

// Types lists the weight types MatMul and GetRows accept: all of them
// (gguf.WeightTypes).
func (Kernels) Types() []gguf.Type { return gguf.WeightTypes() }

// dequantRow dequantizes one row of w into dst (len w.Cols). The engine
// validates types and sizes before calling a kernel, so a failure here
// is a programming error.
func dequantRow(dst []float32, w *engine.Weight, r int) {
	rb := w.RowBytes()
	if err := gguf.Dequantize(dst[:w.Cols], w.Data[r*rb:(r+1)*rb], w.Type); err != nil {
		panic(fmt.Sprintf("reference: weight %q row %d: %v", w.Name, r, err))
	}
}

// MatMul computes out[b*w.Rows+r] = Σ_k w[r][k]·x[b*w.Cols+k]. Each
// weight row is dequantized to f32 once and dotted with every batch row.
func (Kernels) MatMul(out []float32, w *engine.Weight, x []float32, batch int) {
	row := make([]float32, w.Cols)
	for r := 0; r < w.Rows; r++ {
		dequantRow(row, w, r)
		for b := 0; b < batch; b++ {
			out[b*w.Rows+r] = dot(row, x[b*w.Cols:(b+1)*w.Cols])
		}
	}
}

// dot returns Σ a[i]·b[i] accumulated in float64, rounded once.
func dot(a, b []float32) float32 {
	var sum float64
	b = b[:len(a)]
	for i, v := range a {
		sum += float64(v) * float64(b[i]) // exact product: fusion-proof
	}
	return float32(sum)
}

// GetRows dequantizes rows ids[i] of w into out[i*w.Cols:(i+1)*w.Cols].
func (Kernels) GetRows(out []float32, w *engine.Weight, ids []int32) {
	for i, id := range ids {
		dequantRow(out[i*w.Cols:(i+1)*w.Cols], w, int(id))
	}
}

// RMSNorm computes out = x / sqrt(mean(x²) + eps) · weight per row of n.
// The mean is accumulated in float64; the scale is rounded to float32
// and applied as ggml does: (x·scale) rounded, then times the weight.
func (Kernels) RMSNorm(out, x, weight []float32, n int, eps float32) {
	if n <= 0 {
		return
	}
	weight = weight[:n]
	for off := 0; off+n <= len(x); off += n {
		xr := x[off : off+n]
		var ss float64
		for _, v := range xr {
			ss += float64(v) * float64(v)
		}
		scale := float32(1 / math.Sqrt(ss/float64(n)+float64(eps)))
		or := out[off : off+n]
		for i, v := range xr {
			or[i] = float32(v*scale) * weight[i]
		}
	}
}

// RoPE rotates adjacent pairs of the first nDims elements of every head
// in place, by angle pos·base^(−2i/nDims), computed in float64.
func (Kernels) RoPE(x []float32, pos []int32, nHeads, headDim, nDims int, base float32) {
	half := nDims / 2
	cs := make([]float64, half)
	sn := make([]float64, half)
	for b, p := range pos {
		for i := 0; i < half; i++ {
			theta := float64(p) * math.Pow(float64(base), -2*float64(i)/float64(nDims))
			cs[i], sn[i] = math.Cos(theta), math.Sin(theta)
		}
		for h := 0; h < nHeads; h++ {
			v := x[(b*nHeads+h)*headDim:][:headDim]
			for i := 0; i < half; i++ {
				x0, x1 := float64(v[2*i]), float64(v[2*i+1])
				v[2*i] = float32(float64(x0*cs[i]) - float64(x1*sn[i]))
				v[2*i+1] = float32(float64(x0*sn[i]) + float64(x1*cs[i]))
			}
		}
	}
}

// Softmax replaces each row of n elements of x by its softmax
// (max-subtracted, sum in float64).
func (Kernels) Softmax(x []float32, n int) {
	if n <= 0 {
		return
	}
	for off := 0; off+n <= len(x); off += n {
		softmaxRow(x[off : off+n])
	}
}

// softmaxRow is the softmax of one row, in place.
func softmaxRow(r []float32) {
	max := float32(math.Inf(-1))
	for _, v := range r {
		if v > max {
			max = v
		}
	}
	if math.IsInf(float64(max), -1) {
		// All −∞: a uniform distribution rather than NaN.
		for i := range r {
			r[i] = 1 / float32(len(r))
		}
		return
	}
	var sum float64
	for i, v := range r {
		e := math.Exp(float64(v) - float64(max))
		r[i] = float32(e)
		sum += e
	}
	inv := 1 / sum
	for i, v := range r {
		r[i] = float32(float64(v) * inv)
	}
}

// SiLUMul computes out[i] = silu(gate[i])·up[i], silu(v) = v/(1+e^−v).
func (Kernels) SiLUMul(out, gate, up []float32) {
	up = up[:len(gate)]
	out = out[:len(gate)]
	for i, g := range gate {
		out[i] = silu(g) * up[i]
	}
}

// silu returns v/(1+e^−v) computed in float64 and rounded once.
func silu(v float32) float32 {
	return float32(float64(v) / (1 + math.Exp(-float64(v))))
}

// SiLU computes out[i] = silu(x[i]).
func (Kernels) SiLU(out, x []float32) {
	out = out[:len(x)]
	for i, v := range x {
		out[i] = silu(v)
	}
}

// Add computes out[i] = a[i] + b[i].
func (Kernels) Add(out, a, b []float32) {
	b = b[:len(a)]
	out = out[:len(a)]
	for i, v := range a {
		out[i] = v + b[i]
	}
}

// Mul computes out[i] = a[i] · b[i].
func (Kernels) Mul(out, a, b []float32) {
	b = b[:len(a)]
	out = out[:len(a)]
	for i, v := range a {
		out[i] = v * b[i]
	}
}

// ExtOps lists the extended graph ops: GoExt's and the attention
// window and soft-capping, which Attention honours.
func (k Kernels) ExtOps() []string {
	return append(k.GoExt.ExtOps(), engine.GOpAttnWindow, engine.GOpAttnSoftCap)
}

// Attention computes causal grouped-query attention: for each query row
// b and head h, scores against cache rows 0..StartPos+b of kv head
// h/(NHead/NHeadKV), scaled, softmaxed and used to weight the values.
// Scores, softmax and the weighted sum are computed in float64.
func (Kernels) Attention(out, q, k, v []float32, p engine.AttentionParams) {
	d := p.HeadDim
	group := p.NHead / p.NHeadKV
	kvStride := p.NHeadKV * d
	n := p.StartPos + p.Batch
	scores := make([]float64, n)
	acc := make([]float64, d)
	for b := 0; b < p.Batch; b++ {
		last := p.StartPos + b // inclusive
		first := 0
		if p.Window > 0 {
			first = max(0, last-p.Window+1)
		}
		for h := 0; h < p.NHead; h++ {
			qh := q[(b*p.NHead+h)*d:][:d]
			kvh := h / group
			max := math.Inf(-1)
			for j := first; j <= last; j++ {
				kj := k[j*kvStride+kvh*d:][:d]
				var s float64
				for i, qv := range qh {
					s += float64(qv) * float64(kj[i])
				}
				s = float64(float32(s) * p.Scale)
				if p.SoftCap != 0 {
					s = float64(float32(float64(p.SoftCap) * math.Tanh(s/float64(p.SoftCap))))
				}
				scores[j] = s
				if s > max {
					max = s
				}
			}
			var sum float64
			for j := first; j <= last; j++ {
				scores[j] = math.Exp(scores[j] - max)
				sum += scores[j]
			}
			clear(acc)
			for j := first; j <= last; j++ {
				w := scores[j] / sum
				vj := v[j*kvStride+kvh*d:][:d]
				for i, vv := range vj {
					acc[i] += float64(w * float64(vv))
				}
			}
			oh := out[(b*p.NHead+h)*d:][:d]
			for i := range oh {
				oh[i] = float32(acc[i])
			}
		}
	}
}

var _ engine.F16Attention = Kernels{}

// ToF16 rounds src to f16 (ties to even) into dst.
func (Kernels) ToF16(dst []uint16, src []float32) {
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] = gguf.F32ToF16(v)
	}
}

// AttentionF16 computes Attention over the f16 blocks of kv, one KV
// block at a time with an online softmax (running maximum and sum, the
// accumulator rescaled when the maximum grows), all in float64: the
// result differs from the two-pass softmax of Attention only by float64
// rounding, far below the final float32 rounding.
func (Kernels) AttentionF16(out, q []float32, kv engine.KVView, p engine.AttentionParams) {
	d := p.HeadDim
	group := p.NHead / p.NHeadKV
	kvStride := p.NHeadKV * d
	const bs = engine.KVBlockSize
	scores := make([]float64, bs)
	acc := make([]float64, d)
	qf := make([]float64, d)
	for b := 0; b < p.Batch; b++ {
		last := p.StartPos + b // inclusive
		first := 0
		if p.Window > 0 {
			first = max(0, last-p.Window+1)
		}
		for h := 0; h < p.NHead; h++ {
			for i, v := range q[(b*p.NHead+h)*d:][:d] {
				qf[i] = float64(v)
			}
			kvOff := (h / group) * d
			m, l := math.Inf(-1), 0.0
			clear(acc)
			for blk := first / bs; blk <= last/bs; blk++ {
				j0, j1 := max(first, blk*bs), min(last, blk*bs+bs-1)
				kb, vb := kv.K[blk], kv.V[blk]
				mt := math.Inf(-1)
				for j := j0; j <= j1; j++ {
					kj := kb[(j-blk*bs)*kvStride+kvOff:][:d]
					var s float64
					for i, kv := range kj {
						s += qf[i] * float64(gguf.F16ToF32(kv))
					}
					s = float64(float32(s) * p.Scale)
					if p.SoftCap != 0 {
						s = float64(float32(float64(p.SoftCap) * math.Tanh(s/float64(p.SoftCap))))
					}
					scores[j-j0] = s
					mt = math.Max(mt, s)
				}
				if mt > m {
					c := math.Exp(m - mt)
					l *= c
					for i := range acc {
						acc[i] *= c
					}
					m = mt
				}
				for j := j0; j <= j1; j++ {
					w := math.Exp(scores[j-j0] - m)
					l += w
					vj := vb[(j-blk*bs)*kvStride+kvOff:][:d]
					for i, vv := range vj {
						acc[i] += float64(w * float64(gguf.F16ToF32(vv)))
					}
				}
			}
			oh := out[(b*p.NHead+h)*d:][:d]
			for i := range oh {
				oh[i] = float32(acc[i] / l)
			}
		}
	}
}

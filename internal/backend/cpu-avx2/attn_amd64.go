//go:build amd64

package cpuavx2

import (
	"math"

	"github.com/realmrt/realm/internal/engine"
)

var _ engine.F16Attention = (*Kernels)(nil)

// ToF16 rounds src to f16 (ties to even) into dst with F16C.
func (k *Kernels) ToF16(dst []uint16, src []float32) {
	if len(src) == 0 {
		return
	}
	dst = dst[:len(src)]
	cvtF32F16(&dst[0], &src[0], len(src))
}

// AttentionF16 computes causal grouped-query attention over the f16
// blocks of kv, fused: for each (query row, head), spread over the
// pool, it walks the KV blocks once, scoring a block's keys straight
// from f16 (F16C), folding them into a running maximum and sum (online
// softmax, the output rescaled when the maximum grows) and adding the
// block's f16 values into the output; no score row longer than a block
// exists.
func (k *Kernels) AttentionF16(out, q []float32, kv engine.KVView, p engine.AttentionParams) {
	d := p.HeadDim
	if p.Batch <= 0 || p.NHead <= 0 || d <= 0 {
		return
	}
	const bs = engine.KVBlockSize
	group := p.NHead / p.NHeadKV
	kvStride := p.NHeadKV * d
	nb := engine.BlocksFor(p.StartPos + p.Batch)
	q = q[:p.Batch*p.NHead*d]
	out = out[:p.Batch*p.NHead*d]
	for i := 0; i < nb; i++ {
		_ = kv.K[i][bs*kvStride-1]
		_ = kv.V[i][bs*kvStride-1]
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for i := range k.scores {
		k.scores[i] = grow(k.scores[i], bs)
	}
	k.pool.forChunks(p.Batch*p.NHead, 1, 2, func(worker, lo, hi int) {
		sc := k.scores[worker][:bs]
		for t := lo; t < hi; t++ {
			b, h := t/p.NHead, t%p.NHead
			last := p.StartPos + b
			first := 0
			if p.Window > 0 {
				first = max(0, last-p.Window+1)
			}
			qh := &q[(b*p.NHead+h)*d]
			kvOff := (h / group) * d
			oh := out[(b*p.NHead+h)*d : (b*p.NHead+h+1)*d]
			clear(oh)
			m := float32(math.Inf(-1))
			var l float32
			for blk := first / bs; blk <= last/bs; blk++ {
				j0, j1 := max(first, blk*bs), min(last, blk*bs+bs-1)
				cnt := j1 - j0 + 1
				kb, vb := kv.K[blk], kv.V[blk]
				o := (j0-blk*bs)*kvStride + kvOff
				for j := 0; j < cnt; j++ {
					sc[j] = dotF16(&kb[o+j*kvStride], qh, d) * p.Scale
				}
				if p.SoftCap != 0 {
					for j := 0; j < cnt; j++ {
						sc[j] = float32(float64(p.SoftCap) * math.Tanh(float64(sc[j])/float64(p.SoftCap)))
					}
				}
				if mt := maxF32(&sc[0], cnt); mt > m {
					if l != 0 {
						c := float32(math.Exp(float64(m - mt)))
						l *= c
						scaleF32(&oh[0], &oh[0], c, d)
					}
					m = mt
				}
				vec := cnt &^ 7
				if vec > 0 {
					l += expShift(&sc[0], vec, m)
				}
				for j := vec; j < cnt; j++ {
					e := float32(math.Exp(float64(sc[j] - m)))
					sc[j] = e
					l += e
				}
				for j := 0; j < cnt; j++ {
					axpyF16(&oh[0], &vb[o+j*kvStride], sc[j], d)
				}
			}
			scaleF32(&oh[0], &oh[0], 1/l, d)
		}
	})
}

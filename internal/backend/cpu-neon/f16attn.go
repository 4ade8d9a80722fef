package cpuneon

import (
	"math"
	"unsafe"

	"github.com/realmrt/realm/gguf"
	"github.com/realmrt/realm/internal/engine"
)

var _ engine.F16Attention = (*Kernels)(nil)

// ToF16 rounds src to f16 (ties to even) into dst.
func (k *Kernels) ToF16(dst []uint16, src []float32) {
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] = gguf.F32ToF16(v)
	}
}

// AttentionF16 computes causal grouped-query attention over the f16
// blocks of kv, fused: each task (query row, KV head), spread over the
// workers, walks the KV blocks once, converting a block's keys and
// values of that head to f32 once for all query heads of the group,
// and folds each block into a running maximum and sum per head (online
// softmax, the output rescaled when the maximum grows); no score row
// longer than a block exists.
func (k *Kernels) AttentionF16(out, q []float32, kv engine.KVView, p engine.AttentionParams) {
	hd := p.HeadDim
	if p.Batch <= 0 || p.NHead <= 0 || hd <= 0 {
		return
	}
	const bs = engine.KVBlockSize
	group := p.NHead / p.NHeadKV
	kvStride := p.NHeadKV * hd
	q = q[:p.Batch*p.NHead*hd]
	out = out[:p.Batch*p.NHead*hd]
	for i := 0; i < engine.BlocksFor(p.StartPos+p.Batch); i++ {
		_ = kv.K[i][bs*kvStride-1]
		_ = kv.V[i][bs*kvStride-1]
	}
	per := 2*bs*hd + group*bs + 2*group
	buf := make([]float32, k.threads*per)
	k.pool.parallel(p.Batch*p.NHeadKV, 1, func(w, lo, hi int) {
		s := buf[w*per : (w+1)*per]
		kf, vf := s[:bs*hd], s[bs*hd:2*bs*hd]
		sc := s[2*bs*hd : 2*bs*hd+group*bs]
		m, l := s[2*bs*hd+group*bs:][:group], s[2*bs*hd+group*bs+group:][:group]
		for t := lo; t < hi; t++ {
			b, kvh := t/p.NHeadKV, t%p.NHeadKV
			last := p.StartPos + b
			first := 0
			if p.Window > 0 {
				first = max(0, last-p.Window+1)
			}
			h0 := kvh * group
			o := out[(b*p.NHead+h0)*hd : (b*p.NHead+h0+group)*hd]
			clear(o)
			for g := range m {
				m[g], l[g] = float32(math.Inf(-1)), 0
			}
			for blk := first / bs; blk <= last/bs; blk++ {
				j0, j1 := max(first, blk*bs), min(last, blk*bs+bs-1)
				cnt := j1 - j0 + 1
				off := (j0-blk*bs)*kvStride + kvh*hd
				for j := 0; j < cnt; j++ {
					f16Row(kf[j*hd:(j+1)*hd], kv.K[blk][off+j*kvStride:][:hd])
					f16Row(vf[j*hd:(j+1)*hd], kv.V[blk][off+j*kvStride:][:hd])
				}
				for g := 0; g < group; g++ {
					qv := q[(b*p.NHead+h0+g)*hd:][:hd]
					sg := sc[g*bs : g*bs+cnt]
					for j := range sg {
						sg[j] = dotF32(qv, kf[j*hd:(j+1)*hd]) * p.Scale
					}
					if p.SoftCap != 0 {
						for j, v := range sg {
							sg[j] = float32(float64(p.SoftCap) * math.Tanh(float64(v)/float64(p.SoftCap)))
						}
					}
					og := o[g*hd : (g+1)*hd]
					if mt := maxF32(sg); mt > m[g] {
						if l[g] != 0 {
							c := float32(math.Exp(float64(m[g] - mt)))
							l[g] *= c
							vscale(og, og, c)
						}
						m[g] = mt
					}
					l[g] += expSub(sg, sg, m[g])
					for j, e := range sg {
						axpy(og, e, vf[j*hd:(j+1)*hd])
					}
				}
			}
			for g := 0; g < group; g++ {
				og := o[g*hd : (g+1)*hd]
				vscale(og, og, 1/l[g])
			}
		}
	})
}

// f16Row converts the f16 values of src to f32 in dst.
func f16Row(dst []float32, src []uint16) {
	f16RowToF32(dst, unsafe.Slice((*byte)(unsafe.Pointer(&src[0])), 2*len(src)))
}

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
// blocks of kv, fused: for each query row and head (four heads of one
// KV group at a time when the group allows), spread over the pool, it
// walks the KV blocks once, scoring a block's keys straight
// from f16 (F16C, one call per block), folding them into a running
// maximum and sum (online softmax, the output rescaled when the maximum
// grows) and adding the block's f16 values into the output (one call
// per block, the output held in registers); no score row longer than a
// block exists.
//
// A prefill batch of at least tiledMinBatch rows takes the tiled path
// instead (attentionTiled), which converts each block once per tile of
// query rows rather than once per row; it needs at least as many rows
// as the pool has threads per KV head to keep every thread busy.
func (k *Kernels) AttentionF16(out, q []float32, kv engine.KVView, p engine.AttentionParams) {
	minTiled := tiledMinBatch
	if p.NHeadKV > 0 {
		minTiled = max(minTiled, (k.pool.n+p.NHeadKV-1)/p.NHeadKV)
	}
	k.attentionF16(out, q, kv, p, minTiled)
}

// attentionF16 is AttentionF16 with the tiled path taken from batches of
// minTiled rows (tests and benchmarks force either path).
func (k *Kernels) attentionF16(out, q []float32, kv engine.KVView, p engine.AttentionParams, minTiled int) {
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
	if p.Batch >= minTiled {
		k.attentionTiled(out, q, kv, p)
		return
	}
	// Heads of a group that share a KV head go four at a time, so that
	// each key and value is converted once for the four.
	quad := group%4 == 0 && d%16 == 0
	hs := 1
	if quad {
		hs = 4
	}
	for i := range k.scores {
		k.scores[i] = grow(k.scores[i], hs*bs)
	}
	k.pool.forChunks(p.Batch*p.NHead/hs, 1, 2, func(worker, lo, hi int) {
		sc := k.scores[worker][:hs*bs]
		var m, l [4]float32
		for t := lo; t < hi; t++ {
			b, h0 := t/(p.NHead/hs), (t%(p.NHead/hs))*hs
			last := p.StartPos + b
			first := 0
			if p.Window > 0 {
				first = max(0, last-p.Window+1)
			}
			qh := q[(b*p.NHead+h0)*d:]
			kvOff := (h0 / group) * d
			oh := out[(b*p.NHead+h0)*d : (b*p.NHead+h0+hs)*d]
			clear(oh)
			for g := range hs {
				m[g], l[g] = float32(math.Inf(-1)), 0
			}
			for blk := first / bs; blk <= last/bs; blk++ {
				j0, j1 := max(first, blk*bs), min(last, blk*bs+bs-1)
				cnt := j1 - j0 + 1
				kb, vb := kv.K[blk], kv.V[blk]
				o := (j0-blk*bs)*kvStride + kvOff
				if blk < last/bs {
					// The next block lies elsewhere in memory, where the
					// hardware prefetcher does not follow; in generation the
					// weights streamed since the layer's last pass have
					// evicted it from cache (BenchmarkAttentionPrefill's
					// "-cold" runs).
					prefetchRows(&kv.K[blk+1][kvOff], kvStride, bs, 2*d)
					prefetchRows(&kv.V[blk+1][kvOff], kvStride, bs, 2*d)
				}
				switch {
				case quad:
					scoreF16x4(&sc[0], bs, &kb[o], kvStride, &qh[0], d, d, cnt)
				case d%8 == 0:
					scoreF16(&sc[0], &kb[o], kvStride, &qh[0], d, cnt)
				default:
					for j := 0; j < cnt; j++ {
						sc[j] = dotF16(&kb[o+j*kvStride], &qh[0], d)
					}
				}
				for g := range hs {
					sg := sc[g*bs : g*bs+cnt]
					og := oh[g*d : (g+1)*d]
					scaleF32(&sg[0], &sg[0], p.Scale, cnt)
					if p.SoftCap != 0 {
						for j, v := range sg {
							sg[j] = float32(float64(p.SoftCap) * math.Tanh(float64(v)/float64(p.SoftCap)))
						}
					}
					if mt := maxF32(&sg[0], cnt); mt > m[g] {
						if l[g] != 0 {
							c := float32(math.Exp(float64(m[g] - mt)))
							l[g] *= c
							scaleF32(&og[0], &og[0], c, d)
						}
						m[g] = mt
					}
					vec := cnt &^ 7
					if vec > 0 {
						l[g] += expShift(&sg[0], vec, m[g])
					}
					for j := vec; j < cnt; j++ {
						e := float32(math.Exp(float64(sg[j] - m[g])))
						sg[j] = e
						l[g] += e
					}
				}
				switch {
				case quad:
					accumF16x4(&oh[0], d, &vb[o], kvStride, &sc[0], bs, d, cnt)
				case d%8 == 0:
					accumF16(&oh[0], &vb[o], kvStride, &sc[0], d, cnt)
				default:
					for j := 0; j < cnt; j++ {
						axpyF16(&oh[0], &vb[o+j*kvStride], sc[j], d)
					}
				}
			}
			for g := range hs {
				scaleF32(&oh[g*d], &oh[g*d], 1/l[g], d)
			}
		}
	})
}

//go:build amd64

package cpuavx2

import (
	"math"
	"unsafe"

	"github.com/realmrt/realm/internal/engine"
)

const (
	// tiledMinBatch is the batch from which AttentionF16 takes the tiled
	// path (see attentionTiled). BenchmarkAttentionPrefill at depth 4096
	// on 2 threads: from 2 rows the tiled path is faster for groups of
	// 8, 4 and 1 (1.3×, 1.4×, 1.4×; 1.5-2.6× at 4 rows), at 1 row (decode)
	// it loses for a group of 1 (0.7×), whose rows path has no block
	// to share.
	tiledMinBatch = 2
	// tileQueries is the number of query vectors (rows × heads of a KV
	// group) a tile aims at: enough to amortize a block's conversion,
	// few enough that the tile's queries, outputs and probabilities stay
	// in L2 (56 KiB at 64 of 64 dims). TinyLlama, batch 512, depth 4096:
	// 32 → 100 ms, 64 and 128 → 96 ms, 256 → 98 ms; at depth 0 32 is
	// 1.7× slower than 64.
	tileQueries = 64
)

//go:noescape
func cvtKT8(kt *float32, k *uint16, kstride int, d int, ng int)

//go:noescape
func cvtVRows(v *float32, vstride int, src *uint16, sstride int, d int, n int)

//go:noescape
func scoreKT(s *float32, kt *float32, q *float32, d int, nq int, scale float32)

//go:noescape
func softmaxTile(ps *float32, nq int, m *float32, l *float32, o *float32, dp int)

//go:noescape
func accumVT(o *float32, v *float32, p *float32, dp int, n int, nq int)

// attentionTiled is AttentionF16 for a prefill batch. A work item is a
// KV head and a tile of consecutive query rows; its query vectors are
// the rows × the heads sharing that KV head. Each KV block in the
// tile's range is converted to f32 once for all of them: the keys
// transposed (kt[i][j], so that a query's 32 scores are vertical FMAs
// of broadcast q[i] against kt rows), the values row-major, padded to a
// multiple of 16. Then every query vector folds the block into its
// online softmax (its own causal and window range: positions outside
// get probability 0) and the values are accumulated for four query
// vectors at a time. Tiles go heaviest (latest rows) first. The caller
// holds k.mu and has checked the blocks' bounds.
func (k *Kernels) attentionTiled(out, q []float32, kv engine.KVView, p engine.AttentionParams) {
	const bs = engine.KVBlockSize
	d := p.HeadDim
	group := p.NHead / p.NHeadKV
	kvStride := p.NHeadKV * d
	dp := (d + 15) &^ 15
	rows := min(p.Batch, max(1, tileQueries/group))
	// Smaller tiles when the batch would not give each thread two.
	if want := (2*k.pool.n + p.NHeadKV - 1) / p.NHeadKV; p.Batch < want*rows {
		rows = max(1, (p.Batch+want-1)/want)
	}
	nq := rows * group
	ntiles := (p.Batch + rows - 1) / rows
	ktN, vN, qN, oN, pN := d*bs, bs*dp, nq*d, nq*dp, nq*bs
	total := ktN + vN + qN + oN + pN + 2*nq
	for i := range k.scores {
		k.scores[i] = grow(k.scores[i], total)
	}
	negInf := float32(math.Inf(-1))
	k.pool.forChunks(ntiles*p.NHeadKV, 1, 2, func(worker, lo, hi int) {
		s := k.scores[worker][:total]
		kt, s := s[:ktN], s[ktN:]
		vs, s := s[:vN], s[vN:]
		qs, s := s[:qN], s[qN:]
		os, s := s[:oN], s[oN:]
		ps, s := s[:pN], s[pN:]
		m, l := s[:nq], s[nq:2*nq]
		for t := lo; t < hi; t++ {
			tile, kvh := ntiles-1-t/p.NHeadKV, t%p.NHeadKV
			b0 := tile * rows
			nr := min(rows, p.Batch-b0)
			nqv := nr * group
			for r := range nr {
				o := ((b0+r)*p.NHead + kvh*group) * d
				copy(qs[r*group*d:(r+1)*group*d], q[o:o+group*d])
			}
			clear(os[:nqv*dp])
			clear(vs) // the padding columns stay 0
			for i := range nqv {
				m[i], l[i] = negInf, 0
			}
			first0 := 0
			if p.Window > 0 {
				first0 = max(0, p.StartPos+b0-p.Window+1)
			}
			lastN := p.StartPos + b0 + nr - 1
			off := kvh * d
			for blk := first0 / bs; blk <= lastN/bs; blk++ {
				base := blk * bs
				ulo, uhi := max(first0, base)-base, min(lastN, base+bs-1)-base
				un := uhi - ulo + 1
				kb, vb := kv.K[blk], kv.V[blk]
				if d%8 == 0 {
					g0, g1 := ulo&^7, (uhi+8)&^7
					cvtKT8(&kt[g0], &kb[g0*kvStride+off], kvStride, d, (g1-g0)/8)
					cvtVRows(&vs[ulo*dp], dp, &vb[ulo*kvStride+off], kvStride, d, un)
				} else {
					for j := ulo; j <= uhi; j++ {
						o := j*kvStride + off
						_, _ = kb[o+d-1], vb[o+d-1]
						cvtF16Strided(&kt[j], 4*bs, (*byte)(unsafe.Pointer(&kb[o])), 2, d)
						cvtF16Strided(&vs[j*dp], 4, (*byte)(unsafe.Pointer(&vb[o])), 2, d)
					}
				}
				scoreKT(&ps[0], &kt[0], &qs[0], d, nqv, p.Scale)
				if p.SoftCap != 0 {
					for j, v := range ps[:nqv*bs] {
						ps[j] = float32(float64(p.SoftCap) * math.Tanh(float64(v)/float64(p.SoftCap)))
					}
				}
				// Every row sees the whole block (not its diagonal, not a
				// window's edge): the common case at depth, in one call.
				if un == bs && p.StartPos+b0 >= base+bs-1 && (p.Window == 0 || lastN-p.Window+1 <= base) {
					softmaxTile(&ps[0], nqv, &m[0], &l[0], &os[0], dp)
					accumVT(&os[0], &vs[0], &ps[0], dp, bs, nqv)
					continue
				}
				for r := range nr {
					last := p.StartPos + b0 + r
					first := 0
					if p.Window > 0 {
						first = max(0, last-p.Window+1)
					}
					jlo, jhi := max(first, base)-base, min(last, base+bs-1)-base
					for g := range group {
						i := r*group + g
						pr := ps[i*bs : (i+1)*bs]
						if jlo > jhi {
							clear(pr[ulo : uhi+1])
							continue
						}
						sg := pr[jlo : jhi+1]
						cnt := len(sg)
						if mt := maxF32(&sg[0], cnt); mt > m[i] {
							if l[i] != 0 {
								c := float32(math.Exp(float64(m[i] - mt)))
								l[i] *= c
								scaleF32(&os[i*dp], &os[i*dp], c, dp)
							}
							m[i] = mt
						}
						vec := cnt &^ 7
						if vec > 0 {
							l[i] += expShift(&sg[0], vec, m[i])
						}
						for j := vec; j < cnt; j++ {
							e := float32(math.Exp(float64(sg[j] - m[i])))
							sg[j] = e
							l[i] += e
						}
						clear(pr[ulo:jlo])
						clear(pr[jhi+1 : uhi+1])
					}
				}
				accumVT(&os[0], &vs[ulo*dp], &ps[ulo], dp, un, nqv)
			}
			for r := range nr {
				o := ((b0+r)*p.NHead + kvh*group) * d
				for g := range group {
					i := r*group + g
					scaleF32(&out[o+g*d], &os[i*dp], 1/l[i], d)
				}
			}
		}
	})
}

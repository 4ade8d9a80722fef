//go:build amd64

package cpuavx2

import (
	"encoding/binary"
	"fmt"

	"github.com/realmrt/realm/internal/engine"
)

// Q6_K super-block geometry: 256 weights in 210 bytes (ql 128, qh 64,
// 16 int8 scales at 192, f16 d at 208); a packed group's super-block
// takes 16 × 210 bytes (see layoutP16).
const (
	q6kBlock   = 210
	q6kQH      = 128
	q6kSc      = 192
	q6kD       = 208
	q6kPScales = 32
	q6kPQuants = 288
	q6kPBlock  = packGroup * q6kBlock
)

// q6kQuants unpacks the 256 six-bit quants (0..63, the stored values
// before the −32 offset) of the GGUF Q6_K block blk into q, in weight
// order, 4 at a time.
func q6kQuants(q *[256]byte, blk []byte) {
	ql, qh := (*[128]byte)(blk[:q6kQH]), (*[64]byte)(blk[q6kQH:q6kSc])
	const m2, m4 = 0x03030303, 0x0f0f0f0f
	le := binary.LittleEndian
	for h := 0; h < 2; h++ {
		for l := 0; l < 32; l += 4 {
			a, b, c := le.Uint32(ql[64*h+l:]), le.Uint32(ql[64*h+32+l:]), le.Uint32(qh[32*h+l:])
			le.PutUint32(q[128*h+l:], a&m4|(c&m2)<<4)
			le.PutUint32(q[128*h+32+l:], b&m4|(c>>2&m2)<<4)
			le.PutUint32(q[128*h+64+l:], a>>4&m4|(c>>4&m2)<<4)
			le.PutUint32(q[128*h+96+l:], b>>4&m4|(c>>6&m2)<<4)
		}
	}
}

// q6kStore is q6kQuants' inverse: it writes q into blk's ql and qh.
func q6kStore(blk []byte, q *[256]byte) {
	ql, qh := blk[:q6kQH], blk[q6kQH:q6kSc]
	for h := 0; h < 2; h++ {
		for l := 0; l < 32; l++ {
			q0, q1, q2, q3 := q[128*h+l], q[128*h+32+l], q[128*h+64+l], q[128*h+96+l]
			ql[64*h+l] = q0&15 | (q2&15)<<4
			ql[64*h+32+l] = q1&15 | (q3&15)<<4
			qh[32*h+l] = q0>>4 | (q1>>4)<<2 | (q2>>4)<<4 | (q3>>4)<<6
		}
	}
}

// packRowsQ6K is packRows for Q6_K weights (cols a multiple of 256).
func packRowsQ6K(dst, src []byte, rows, cols int) {
	nb := cols / 256
	rb := nb * q6kBlock
	full := rows / packGroup * packGroup
	if len(dst) < rows*rb || len(src) < rows*rb {
		panic(fmt.Sprintf("cpuavx2: packRows: %d and %d bytes for %d rows of %d", len(dst), len(src), rows, rb))
	}
	var q [256]byte
	for g := 0; g < full; g += packGroup {
		for i := 0; i < nb; i++ {
			p := (*[q6kPBlock]byte)(dst[g*rb+i*q6kPBlock:])
			for n := 0; n < packGroup; n++ {
				blk := (*[q6kBlock]byte)(src[(g+n)*rb+i*q6kBlock:])
				p[2*n], p[2*n+1] = blk[q6kD], blk[q6kD+1]
				for k := 0; k < 8; k++ {
					p[q6kPScales+32*k+2*n] = blk[q6kSc+2*k]
					p[q6kPScales+32*k+2*n+1] = blk[q6kSc+2*k+1]
				}
				q6kQuants(&q, blk[:])
				const m2 = 0x03030303
				le := binary.LittleEndian
				for j := 0; j < 16; j++ {
					qj := (*[16]byte)(q[16*j:])
					pj := p[q6kPQuants+192*j+4*n:]
					w3 := le.Uint32(qj[12:])
					le.PutUint32(pj, le.Uint32(qj[0:])|(w3&m2)<<6)
					le.PutUint32(pj[64:], le.Uint32(qj[4:])|(w3>>2&m2)<<6)
					le.PutUint32(pj[128:], le.Uint32(qj[8:])|(w3>>4&m2)<<6)
				}
			}
		}
	}
	copy(dst[full*rb:rows*rb], src[full*rb:rows*rb])
}

// packedRowQ6K is packedRow for a packed Q6_K weight.
func packedRowQ6K(dst []byte, w *engine.Weight, r int) []byte {
	nb := w.Cols / 256
	rb := nb * q6kBlock
	g := r / packGroup * packGroup
	if g+packGroup > w.Rows {
		return w.Data[r*rb : (r+1)*rb]
	}
	dst = dst[:rb]
	src := w.Data[g*rb : (g+packGroup)*rb]
	n := r - g
	var q [256]byte
	for i := 0; i < nb; i++ {
		p := src[i*q6kPBlock : (i+1)*q6kPBlock]
		blk := dst[i*q6kBlock : (i+1)*q6kBlock]
		blk[q6kD], blk[q6kD+1] = p[2*n], p[2*n+1]
		for k := 0; k < 8; k++ {
			blk[q6kSc+2*k] = p[q6kPScales+32*k+2*n]
			blk[q6kSc+2*k+1] = p[q6kPScales+32*k+2*n+1]
		}
		for j := 0; j < 16; j++ {
			for b := 0; b < 4; b++ {
				o := q6kPQuants + 192*j + 4*n + b
				P, Q, R := p[o], p[o+64], p[o+128]
				q[16*j+b], q[16*j+4+b], q[16*j+8+b] = P&63, Q&63, R&63
				q[16*j+12+b] = P>>6 | (Q>>6)<<2 | (R>>6)<<4
			}
		}
		q6kStore(blk, &q)
	}
	return dst
}

// matPackedQ6K is matPackedQ4K for a packed Q6_K weight (rows past the
// last whole group: dotQ6K).
func (k *Kernels) matPackedQ6K(out []float32, w *engine.Weight, rb, batch int) {
	rows, cols, nb := w.Rows, w.Cols, w.Cols/256
	groups := rows / packGroup
	a, data := &k.q8k, w.Data
	gb := packGroup * rb
	chunk := 1
	if batch < 4 {
		chunk = max((k.rowChunk(rows, 1)+packGroup-1)/packGroup, 1)
	}
	k.pool.forChunks(groups, chunk, 0, func(_, lo, hi int) {
		for g := lo; g < hi; g++ {
			wg := &data[g*gb]
			b := 0
			for ; b+4 <= batch; b += 4 {
				dotQ6KP16x4(wg, nb, &a.qs[b*cols], cols, &a.d[b*nb], 4*nb, &a.bsums[b*nb*16], 32*nb, &out[b*rows+g*packGroup], 4*rows)
			}
			for ; b < batch; b++ {
				dotQ6KP16(wg, nb, &a.qs[b*cols], &a.d[b*nb], &a.bsums[b*nb*16], &out[b*rows+g*packGroup])
			}
		}
	})
	for r := groups * packGroup; r < rows; r++ {
		for b := 0; b < batch; b++ {
			out[b*rows+r] = dotQ6K(&data[r*rb], &a.qs[b*cols], &a.d[b*nb], &a.bsums[b*nb*16], nb)
		}
	}
}

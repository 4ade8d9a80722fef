//go:build amd64

package cpuavx2

import (
	"encoding/binary"
	"math"
	"unsafe"

	"github.com/realmrt/realm/internal/engine"
)

//go:noescape
func dotQ5K(w *byte, a *int8, ad *float32, bs *int16, nb int) float32

//go:noescape
func dotQ5Kx4(w *byte, a *int8, astride int, ad *float32, dstride int, bs *int16, bstride int, nb int, out *float32)

//go:noescape
func dotIQ4NL(w *byte, a *int8, ad *float32, nb int) float32

//go:noescape
func dotIQ4XS(w *byte, a *int8, ad *float32, nb int) float32

//go:noescape
func dotIQ4XSx8Z(w *byte, p *byte, nb int, out *float32)

//go:noescape
func dotIQ4NLx8Z(w *byte, p *byte, ng int, out *float32)

//go:noescape
func dotIQ4NLx4(w *byte, a *int8, astride int, ad *float32, dstride int, nb int, out *float32)

//go:noescape
func dotIQ4XSx4(w *byte, a *int8, astride int, ad *float32, dstride int, nb int, out *float32)

// matIQ4NL multiplies IQ4_NL weights by the Q8_0 activations in k.q8:
// four activation rows per pass over a weight row, then one at a time.
func (k *Kernels) matIQ4NL(out []float32, w *engine.Weight, rb, batch int) {
	rows, cols, nb := w.Rows, w.Cols, w.Cols/32
	qs, ad, data := k.q8.qs, k.q8.d, w.Data
	// With VNNI and whole groups of 8 blocks: groups of 8 activation
	// rows through the 512-bit tile over the x8 layout.
	groups, ng := 0, cols/256
	if k.vnni && cols%256 == 0 {
		groups = batch / 8
		k.packIQ4NL8(groups)
	}
	p := k.iq4p
	k.pool.forChunks(rows, k.rowChunk(rows, batch), 0, func(_, lo, hi int) {
		var t [4]float32
		var t8 [8]float32
		for g := 0; g < groups; g++ {
			pg := &p[g*ng*iq4nlRec]
			for r := lo; r < hi; r++ {
				dotIQ4NLx8Z(&data[r*rb], pg, ng, &t8[0])
				for i, v := range t8 {
					out[(g*8+i)*rows+r] = v
				}
			}
		}
		b0 := groups * 8
		for ; b0+4 <= batch; b0 += 4 {
			for r := lo; r < hi; r++ {
				dotIQ4NLx4(&data[r*rb], &qs[b0*cols], cols, &ad[b0*nb], 4*nb, nb, &t[0])
				for i, v := range t {
					out[(b0+i)*rows+r] = v
				}
			}
		}
		for r := lo; r < hi; r++ {
			wr := &data[r*rb]
			for b := b0; b < batch; b++ {
				out[b*rows+r] = dotIQ4NL(wr, &qs[b*cols], &ad[b*nb], nb)
			}
		}
	})
}

// matQ8KRows multiplies 256-element super-block weights (Q5_K, IQ4_XS)
// by the Q8_K activations in k.q8k: four activation rows per pass over a
// weight row, then one at a time.
func (k *Kernels) matQ8KRows(out []float32, w *engine.Weight, rb, batch int, q5k bool) {
	rows, cols, nb := w.Rows, w.Cols, w.Cols/256
	qs, ad, bs, data := k.q8k.qs, k.q8k.d, k.q8k.bsums, w.Data
	// IQ4_XS with VNNI: groups of 8 activation rows through the 512-bit
	// tile over the x8 layout.
	groups := 0
	if !q5k && k.vnni {
		groups = batch / 8
		k.packIQ4XS8(groups)
	}
	p := k.iq4p
	k.pool.forChunks(rows, k.rowChunk(rows, batch), 0, func(_, lo, hi int) {
		var t [4]float32
		var t8 [8]float32
		for g := 0; g < groups; g++ {
			pg := &p[g*nb*iq4xsRec]
			for r := lo; r < hi; r++ {
				dotIQ4XSx8Z(&data[r*rb], pg, nb, &t8[0])
				for i, v := range t8 {
					out[(g*8+i)*rows+r] = v
				}
			}
		}
		b0 := groups * 8
		// Four activation rows per pass over a weight block.
		for ; b0+4 <= batch; b0 += 4 {
			a, d, s := &qs[b0*cols], &ad[b0*nb], &bs[b0*nb*16]
			for r := lo; r < hi; r++ {
				if q5k {
					dotQ5Kx4(&data[r*rb], a, cols, d, 4*nb, s, 32*nb, nb, &t[0])
				} else {
					dotIQ4XSx4(&data[r*rb], a, cols, d, 4*nb, nb, &t[0])
				}
				for i, v := range t {
					out[(b0+i)*rows+r] = v
				}
			}
		}
		for r := lo; r < hi; r++ {
			wr := &data[r*rb]
			for b := b0; b < batch; b++ {
				if q5k {
					out[b*rows+r] = dotQ5K(wr, &qs[b*cols], &ad[b*nb], &bs[b*nb*16], nb)
				} else {
					out[b*rows+r] = dotIQ4XS(wr, &qs[b*cols], &ad[b*nb], nb)
				}
			}
		}
	})
}

// iq4xsRec is the size of one super-block of 8 activation rows in the
// layout of dotIQ4XSx8Z: per row 256 permuted quants and 16 int32
// −128·bsums, then the 8 rows' f32 scales.
const iq4xsRec = 8*320 + 32

// packIQ4XS8 writes the first groups·8 activation rows of k.q8k into
// k.iq4p in the layout of dotIQ4XSx8Z: 64-byte chunk c of a row's
// super-block holds, for each sub-block s, its elements 8c..8c+7 at
// byte 8s. (Redone per call: a copy of the quants, small against the
// matmul it feeds.)
func (k *Kernels) packIQ4XS8(groups int) {
	if groups == 0 {
		return
	}
	a := &k.q8k
	nb, cols := a.nb, a.cols
	k.iq4p = grow(k.iq4p, groups*nb*iq4xsRec)
	p := k.iq4p
	qs := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(a.qs))), len(a.qs))
	k.pool.forChunks(groups*nb, 8, 16, func(_, lo, hi int) {
		for i := lo; i < hi; i++ {
			g, j := i/nb, i%nb
			blk := p[i*iq4xsRec:][:iq4xsRec]
			for b := range 8 {
				row := g*8 + b
				src := qs[row*cols+j*256:][:256]
				rec := blk[b*320:][:320]
				permute256(rec, src)
				for n, v := range a.bsums[(row*nb+j)*16:][:16] {
					binary.LittleEndian.PutUint32(rec[256+4*n:], uint32(-128*int32(v)))
				}
				binary.LittleEndian.PutUint32(blk[2560+4*b:], math.Float32bits(a.d[row*nb+j]))
			}
		}
	})
}

// iq4nlRec is the size of one group of 8 blocks (256 columns) of 8
// activation rows in the layout of dotIQ4NLx8Z: per row 256 permuted
// quants, 16 int32 −128·(block sum) (block s in lane 2s, lane 2s+1
// zero) and 16 f32 block scales (block s in lanes 2s and 2s+1).
const iq4nlRec = 8 * 384

// packIQ4NL8 writes the first groups·8 activation rows of k.q8 (Q8_0,
// cols a multiple of 256) into k.iq4p in the layout of dotIQ4NLx8Z, the
// quants permuted as in packIQ4XS8.
func (k *Kernels) packIQ4NL8(groups int) {
	if groups == 0 {
		return
	}
	a := &k.q8
	cols := a.cols
	nb, ng := cols/32, cols/256
	k.iq4p = grow(k.iq4p, groups*ng*iq4nlRec)
	p := k.iq4p
	qs := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(a.qs))), len(a.qs))
	k.pool.forChunks(groups*ng, 8, 16, func(_, lo, hi int) {
		for i := lo; i < hi; i++ {
			g, j := i/ng, i%ng
			blk := p[i*iq4nlRec:][:iq4nlRec]
			for b := range 8 {
				row := g*8 + b
				src := qs[row*cols+j*256:][:256]
				rec := blk[b*384:][:384]
				permute256(rec, src)
				for s := range 8 {
					var sum int32
					for _, v := range src[32*s:][:32] {
						sum += int32(int8(v))
					}
					binary.LittleEndian.PutUint32(rec[256+8*s:], uint32(-128*sum))
					binary.LittleEndian.PutUint32(rec[256+8*s+4:], 0)
					d := math.Float32bits(a.d[row*nb+j*8+s])
					binary.LittleEndian.PutUint32(rec[320+8*s:], d)
					binary.LittleEndian.PutUint32(rec[320+8*s+4:], d)
				}
			}
		}
	})
}

// permute256 writes the 256 quants of src (8 sub-blocks of 32) into
// rec's first 256 bytes in the VNNI kernels' order: 64-byte chunk c
// holds, for each sub-block s, its elements 8c..8c+7 at byte 8s.
func permute256(rec, src []byte) {
	for c := range 4 {
		for s := range 8 {
			copy(rec[64*c+8*s:][:8], src[32*s+8*c:])
		}
	}
}

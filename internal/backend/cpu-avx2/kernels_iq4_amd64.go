//go:build amd64

package cpuavx2

import "github.com/realmrt/realm/internal/engine"

//go:noescape
func dotQ5K(w *byte, a *int8, ad *float32, bs *int16, nb int) float32

//go:noescape
func dotQ5Kx4(w *byte, a *int8, astride int, ad *float32, dstride int, bs *int16, bstride int, nb int, out *float32)

//go:noescape
func dotIQ4NL(w *byte, a *int8, ad *float32, nb int) float32

//go:noescape
func dotIQ4XS(w *byte, a *int8, ad *float32, nb int) float32

//go:noescape
func dotIQ4NLx4(w *byte, a *int8, astride int, ad *float32, dstride int, nb int, out *float32)

//go:noescape
func dotIQ4XSx4(w *byte, a *int8, astride int, ad *float32, dstride int, nb int, out *float32)

// matIQ4NL multiplies IQ4_NL weights by the Q8_0 activations in k.q8:
// four activation rows per pass over a weight row, then one at a time.
func (k *Kernels) matIQ4NL(out []float32, w *engine.Weight, rb, batch int) {
	rows, cols, nb := w.Rows, w.Cols, w.Cols/32
	qs, ad, data := k.q8.qs, k.q8.d, w.Data
	k.pool.forChunks(rows, k.rowChunk(rows, batch), 0, func(_, lo, hi int) {
		var t [4]float32
		b0 := 0
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
	k.pool.forChunks(rows, k.rowChunk(rows, batch), 0, func(_, lo, hi int) {
		var t [4]float32
		b0 := 0
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

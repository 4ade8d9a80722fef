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

// matQ8Rows multiplies weights with 32-element blocks (IQ4_NL) by the
// Q8_0 activations in k.q8, one weight row and activation row at a time.
func (k *Kernels) matQ8Rows(out []float32, w *engine.Weight, rb, batch int, dot func(w *byte, a *int8, ad *float32, nb int) float32) {
	rows, cols, nb := w.Rows, w.Cols, w.Cols/32
	qs, ad, data := k.q8.qs, k.q8.d, w.Data
	k.pool.forChunks(rows, k.rowChunk(rows, batch), 0, func(_, lo, hi int) {
		for r := lo; r < hi; r++ {
			wr := &data[r*rb]
			for b := 0; b < batch; b++ {
				out[b*rows+r] = dot(wr, &qs[b*cols], &ad[b*nb], nb)
			}
		}
	})
}

// matQ8KRows multiplies 256-element super-block weights (Q5_K, IQ4_XS)
// by the Q8_K activations in k.q8k, one weight row and activation row at
// a time (each weight row is used for every activation row while it is
// in cache).
func (k *Kernels) matQ8KRows(out []float32, w *engine.Weight, rb, batch int, q5k bool) {
	rows, cols, nb := w.Rows, w.Cols, w.Cols/256
	qs, ad, bs, data := k.q8k.qs, k.q8k.d, k.q8k.bsums, w.Data
	k.pool.forChunks(rows, k.rowChunk(rows, batch), 0, func(_, lo, hi int) {
		var t [4]float32
		b0 := 0
		if q5k {
			// Four activation rows per pass over a weight block.
			for ; b0+4 <= batch; b0 += 4 {
				a, d, s := &qs[b0*cols], &ad[b0*nb], &bs[b0*nb*16]
				for r := lo; r < hi; r++ {
					dotQ5Kx4(&data[r*rb], a, cols, d, 4*nb, s, 32*nb, nb, &t[0])
					for i, v := range t {
						out[(b0+i)*rows+r] = v
					}
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

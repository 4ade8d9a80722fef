//go:build amd64

package cpuavx2

// Assembly kernels (AVX2 + FMA + F16C; the *VNNI variants also need
// AVX512-VNNI and AVX512-VL). Pointers must reference enough elements
// for the lengths given; callers in this package check that.

//go:noescape
func dotF32(a, b *float32, n int) float32

//go:noescape
func dotF16(w *uint16, x *float32, n int) float32

//go:noescape
func roundF16(dst, src *float32, n int)

//go:noescape
func addF32(out, a, b *float32, n int)

//go:noescape
func mulF32(out, a, b *float32, n int)

//go:noescape
func axpyF32(y, x *float32, alpha float32, n int)

//go:noescape
func scaleF32(out, x *float32, s float32, n int)

//go:noescape
func rmsScale(out, x, w *float32, s float32, n int)

//go:noescape
func sumSq(x *float32, n int) float64

//go:noescape
func maxF32(x *float32, n int) float32

//go:noescape
func expShift(x *float32, n int, m float32) float32

//go:noescape
func siluMul(out, gate, up *float32, n int)

//go:noescape
func ropeRot(x, c, s *float32, n int)

//go:noescape
func dotQ4_0(w *byte, a *int8, ad *float32, nb int) float32

//go:noescape
func dotQ8_0(w *byte, a *int8, ad *float32, nb int) float32

//go:noescape
func dotQ8_0VNNI(w *byte, a *int8, ad *float32, nb int) float32

//go:noescape
func dotQ4_0x4(w *byte, a *int8, astride int, ad *float32, dstride int, nb int, out *float32)

//go:noescape
func dotQ8_0x4(w *byte, a *int8, astride int, ad *float32, dstride int, nb int, out *float32)

//go:noescape
func dotQ8_0x4VNNI(w *byte, a *int8, astride int, ad *float32, dstride int, nb int, out *float32)

//go:noescape
func dotQ4K(w *byte, a *int8, ad *float32, bs *int16, nb int) float32

//go:noescape
func dotQ4Kx4(w *byte, a *int8, astride int, ad *float32, dstride int, bs *int16, bstride int, nb int, out *float32)

//go:noescape
func dotQ6K(w *byte, a *int8, ad *float32, bs *int16, nb int) float32

//go:noescape
func dotQ6Kx4(w *byte, a *int8, astride int, ad *float32, dstride int, bs *int16, bstride int, nb int, out *float32)

//go:noescape
func dotQ4_0VNNIU(w *byte, a *int8, ad *float32, ac *int32, nb int) float32

//go:noescape
func dotQ4_0x4VNNIU(w *byte, a *int8, astride int, ad *float32, ac *int32, dstride int, nb int, out *float32)

//go:noescape
func quantQ8_0(x *float32, qs *int8, d *float32, s *int32, nb int)

//go:noescape
func quantQ8K(x *float32, qs *int8, d *float32, bsums *int16, nb int)

//go:noescape
func dotQ4_0x4Z(w *byte, a *int8, cvec *int32, dvec *float32, stride int, npairs int, out *float32)

//go:noescape
func dotQ4_0x8Z(w *byte, a *int8, cvec *int32, dvec *float32, stride int, npairs int, out *float32)

//go:noescape
func dotQ8_0x8Z(w *byte, au *uint8, dvec *float32, stride int, npairs int, out *float32)

//go:noescape
func dotQ4Kx8Z(w *byte, a *int8, meta *byte, stride int, nb int, out *float32)

//go:noescape
func dotQ4_0Z1(w *byte, a *int8, cvec *int32, dvec *float32, npairs int) float32

//go:noescape
func dotQ8_0Z1(w *byte, au *uint8, dvec *float32, npairs int) float32

//go:noescape
func amxQ8Tile(cfg *byte, w *byte, rb int, wstep int, b *int8, ad *float32, wd *float32, nb int, cbuf *int32, out *float32)

//go:noescape
func unpackQ4_0(dst *byte, src *byte, nb int)

//go:noescape
func cvtF16Strided(dst *float32, dstride int, src *byte, sstride int, n int)

//go:noescape
func amxQ4KTile(cfg *byte, w *byte, rb int, wstep int, b *int8, ad *float32, wd *float32, nb int, cbuf *int32, out *float32, wm *float32, at *float32)

//go:noescape
func unpackQ4K(dst *byte, src *byte, nsb int)

//go:noescape
func amxK16Tile(cfg *byte, w *byte, b *int8, ad *float32, wd *float32, nb int, cbuf *int32, out *float32)

//go:noescape
func unpackQ6K(dst *byte, src *byte, nsb int)

//go:noescape
func dotQ4_0P16(w *byte, nb int, a *int8, cneg *int32, dx *float32, out *float32)

//go:noescape
func dotQ8_0P16(w *byte, nb int, a *int8, cneg *int32, dx *float32, out *float32)

//go:noescape
func amxP16Tile(cfg *byte, wq *byte, a *int8, astride int, wsc *byte, ad *float32, ac *int32, nb int, cbuf *int32, out *float32)

//go:noescape
func unpackP16Q4(dst *byte, src *byte, nb int)

//go:noescape
func dotQ4_0P16x4(w *byte, nb int, a *int8, astride int, cneg *int32, dx *float32, sstride int, out *float32, ostride int)

//go:noescape
func dotQ8_0P16x4(w *byte, nb int, a *int8, astride int, cneg *int32, dx *float32, sstride int, out *float32, ostride int)

//go:noescape
func cvtF32F16(dst *uint16, src *float32, n int)

//go:noescape
func axpyF16(y *float32, x *uint16, alpha float32, n int)

//go:noescape
func scoreF16(out *float32, k *uint16, kstride int, q *float32, d int, n int)

//go:noescape
func accumF16(o *float32, v *uint16, vstride int, w *float32, d int, n int)

// prefetchRows asks for the cache lines of rows rows of bytes bytes
// (> 0) each, stride uint16s apart, from p on (PREFETCHT0).
//
//go:noescape
func prefetchRows(p *uint16, stride int, rows int, bytes int)

//go:noescape
func scoreF16x4(out *float32, ostride int, k *uint16, kstride int, q *float32, qstride int, d int, n int)

//go:noescape
func accumF16x4(o *float32, ostride int, v *uint16, vstride int, w *float32, wstride int, d int, n int)

//go:noescape
func dotQ4KP16(w *byte, nb int, a *int8, ad *float32, bs *int16, out *float32)

//go:noescape
func dotQ4KP16x4(w *byte, nb int, a *int8, astride int, ad *float32, dstride int, bs *int16, bstride int, out *float32, ostride int)

//go:noescape
func dotQ6KP16(w *byte, nb int, a *int8, ad *float32, bs *int16, out *float32)

//go:noescape
func dotQ6KP16x4(w *byte, nb int, a *int8, astride int, ad *float32, dstride int, bs *int16, bstride int, out *float32, ostride int)

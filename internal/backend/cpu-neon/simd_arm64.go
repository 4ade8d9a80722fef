//go:build arm64

package cpuneon

//go:generate ./gen_asm.sh

import (
	"golang.org/x/sys/cpu"
)

// Assembly primitives (simd_arm64.s). See the comments there for the
// length requirements; the wrappers below handle the remainders.

//go:noescape
func dotF32Asm(a, b *float32, n int) float32

//go:noescape
func dotF32x4Asm(w, x *float32, xstride, n int, out *float32)

//go:noescape
func dotI8x16SDOT(w, x *int8, n int, out *int32)

//go:noescape
func dotI8x16SMULL(w, x *int8, n int, out *int32)

//go:noescape
func dotQ8BlocksSDOT(wq *int8, wd *float32, xq *int8, xd *float32, nb int) float32

//go:noescape
func dotQ8BlocksSMULL(wq *int8, wd *float32, xq *int8, xd *float32, nb int) float32

//go:noescape
func dotQ8Blocks4SDOT(wq *int8, wd *float32, xq *int8, xd *float32, xstride, nb int, out *float32)

//go:noescape
func dotQ8Blocks4SMULL(wq *int8, wd *float32, xq *int8, xd *float32, xstride, nb int, out *float32)

//go:noescape
func dotI8x16x4SDOT(w, x *int8, xstride, n int, out *int32, ostride int)

//go:noescape
func dotI8x16x4SMULL(w, x *int8, xstride, n int, out *int32, ostride int)

//go:noescape
func quantQ8_0Asm(q *int8, d *float32, x *float32, nb int)

//go:noescape
func quantQ8KAsm(q *int8, d *float32, bsums *int32, x *float32, nb int)

//go:noescape
func roundF16Asm(dst, src *float32, n int)

//go:noescape
func dotQ4KSDOT(wq, xq *int8, sc *int32, wd, xd *float32, bsums *int32, nb int) float32

//go:noescape
func dotQ4KSMULL(wq, xq *int8, sc *int32, wd, xd *float32, bsums *int32, nb int) float32

//go:noescape
func dotQ6KSDOT(wq, xq *int8, sc *int32, wd, xd *float32, nb int) float32

//go:noescape
func dotQ6KSMULL(wq, xq *int8, sc *int32, wd, xd *float32, nb int) float32

//go:noescape
func f16ToF32Asm(dst *float32, src *byte, n int)

//go:noescape
func unpackQ4_0Asm(q *int8, d *float32, src *byte, nb int)

//go:noescape
func unpackQ8_0Asm(q *int8, d *float32, src *byte, nb int)

//go:noescape
func unpackQ4KAsm(q *int8, src *byte, nb int)

//go:noescape
func unpackQ6KAsm(q *int8, src *byte, nb int)

//go:noescape
func addAsm(out, a, b *float32, n int)

//go:noescape
func mulAsm(out, a, b *float32, n int)

//go:noescape
func scaleMulAsm(out, x, w *float32, s float32, n int)

//go:noescape
func scaleAsm(out, x *float32, s float32, n int)

//go:noescape
func axpyAsm(y, x *float32, a float32, n int)

//go:noescape
func absMaxAsm(x *float32, n int) float32

//go:noescape
func maxAsm(x *float32, n int) float32

//go:noescape
func expSubAsm(out, x *float32, b float32, n int) float32

//go:noescape
func siluMulAsm(out, gate, up *float32, n int)

//go:noescape
func ropeAsm(x, cos, sin *float32, n int)

// simdPath is the path counted for the f32 kernels on this architecture.
const simdF32Path, simdF16Path = PathF32, PathF16

func hasDotProd() bool { return cpu.ARM64.HasASIMDDP }

func intPath(dot bool) Path {
	if dot {
		return PathSDOT
	}
	return PathSMULL
}

func dotF32(a, b []float32) float32 {
	n := len(a)
	m := n &^ 15
	var s float32
	if m > 0 {
		_ = b[m-1]
		s = dotF32Asm(&a[0], &b[0], m)
	}
	if m < n {
		s += dotF32Go(a[m:n], b[m:n])
	}
	return s
}

// dotF32x4 computes out[r] = dot(w, x[r*stride:r*stride+len(w)]) for r < 4.
func dotF32x4(out *[4]float32, w, x []float32, stride int) {
	n := len(w)
	m := n &^ 15
	_ = x[3*stride+n-1]
	if m > 0 {
		dotF32x4Asm(&w[0], &x[0], stride*4, m, &out[0])
	} else {
		*out = [4]float32{}
	}
	if m < n {
		for r := 0; r < 4; r++ {
			out[r] += dotF32Go(w[m:], x[r*stride+m:r*stride+n])
		}
	}
}

func dotI8x16(w, x []int8, out []int32, dot bool) {
	n := len(w)
	if n == 0 {
		return
	}
	_ = x[n-1]
	_ = out[n/16-1]
	if dot {
		dotI8x16SDOT(&w[0], &x[0], n, &out[0])
	} else {
		dotI8x16SMULL(&w[0], &x[0], n, &out[0])
	}
}

// dotQ8Blocks returns Σ_b wd[b]·xd[b]·(int8 dot of block b of wq and xq)
// over len(wd) blocks of 32.
func dotQ8Blocks(wq []int8, wd []float32, xq []int8, xd []float32, dot bool) float32 {
	nb := len(wd)
	if nb == 0 {
		return 0
	}
	_, _, _ = wq[32*nb-1], xq[32*nb-1], xd[nb-1]
	if dot {
		return dotQ8BlocksSDOT(&wq[0], &wd[0], &xq[0], &xd[0], nb)
	}
	return dotQ8BlocksSMULL(&wq[0], &wd[0], &xq[0], &xd[0], nb)
}

// dotQ8Blocks4 is dotQ8Blocks for four activation rows at once: row r's
// quants are xq[r*len(wq):], its scales xd[r*len(wd):].
func dotQ8Blocks4(out *[4]float32, wq []int8, wd []float32, xq []int8, xd []float32, dot bool) {
	nb := len(wd)
	if nb == 0 {
		*out = [4]float32{}
		return
	}
	_, _, _ = wq[32*nb-1], xq[4*32*nb-1], xd[4*nb-1]
	if dot {
		dotQ8Blocks4SDOT(&wq[0], &wd[0], &xq[0], &xd[0], 32*nb, nb, &out[0])
	} else {
		dotQ8Blocks4SMULL(&wq[0], &wd[0], &xq[0], &xd[0], 32*nb, nb, &out[0])
	}
}

// dotI8x16x4 is dotI8x16 for four activation rows at once: row r is
// x[r*len(w):] and its sums go to out[r*len(w)/16:].
func dotI8x16x4(w, x []int8, out []int32, dot bool) {
	n := len(w)
	if n == 0 {
		return
	}
	_, _ = x[4*n-1], out[4*(n/16)-1]
	if dot {
		dotI8x16x4SDOT(&w[0], &x[0], n, n, &out[0], n/16)
	} else {
		dotI8x16x4SMULL(&w[0], &x[0], n, n, &out[0], n/16)
	}
}

// dotQ4K returns the dot product of an unpacked Q4_K weight row (quants
// wq, scales and mins sc, d/dmin pairs wd) with a Q8_K activation row.
func dotQ4K(wq, xq []int8, sc []int32, wd, xd []float32, bsums []int32, dot bool) float32 {
	nb := len(xd)
	if nb == 0 {
		return 0
	}
	_, _, _, _, _ = wq[256*nb-1], xq[256*nb-1], sc[16*nb-1], wd[2*nb-1], bsums[16*nb-1]
	if dot {
		return dotQ4KSDOT(&wq[0], &xq[0], &sc[0], &wd[0], &xd[0], &bsums[0], nb)
	}
	return dotQ4KSMULL(&wq[0], &xq[0], &sc[0], &wd[0], &xd[0], &bsums[0], nb)
}

// dotQ6K returns the dot product of an unpacked Q6_K weight row (quants
// wq, scales sc, d wd) with a Q8_K activation row.
func dotQ6K(wq, xq []int8, sc []int32, wd, xd []float32, dot bool) float32 {
	nb := len(xd)
	if nb == 0 {
		return 0
	}
	_, _, _, _ = wq[256*nb-1], xq[256*nb-1], sc[16*nb-1], wd[nb-1]
	if dot {
		return dotQ6KSDOT(&wq[0], &xq[0], &sc[0], &wd[0], &xd[0], nb)
	}
	return dotQ6KSMULL(&wq[0], &xq[0], &sc[0], &wd[0], &xd[0], nb)
}

func f16RowToF32(dst []float32, src []byte) {
	n := len(dst)
	m := n &^ 15
	if m > 0 {
		_ = src[2*m-1]
		f16ToF32Asm(&dst[0], &src[0], m)
	}
	if m < n {
		f16RowToF32Go(dst[m:], src[2*m:])
	}
}

func unpackQ4_0(q []int8, d []float32, src []byte) {
	if len(d) == 0 {
		return
	}
	_ = q[32*len(d)-1]
	_ = src[18*len(d)-1]
	unpackQ4_0Asm(&q[0], &d[0], &src[0], len(d))
}

func unpackQ8_0(q []int8, d []float32, src []byte) {
	if len(d) == 0 {
		return
	}
	_ = q[32*len(d)-1]
	_ = src[34*len(d)-1]
	unpackQ8_0Asm(&q[0], &d[0], &src[0], len(d))
}

// unpackQ4K expands the quants of the Q4_K blocks in src (a whole row).
func unpackQ4K(q []int8, src []byte) {
	nb := len(q) / 256
	if nb == 0 {
		return
	}
	_ = src[144*nb-1]
	unpackQ4KAsm(&q[0], &src[0], nb)
}

// unpackQ6K expands the quants of the Q6_K blocks in src (a whole row).
func unpackQ6K(q []int8, src []byte) {
	nb := len(q) / 256
	if nb == 0 {
		return
	}
	_ = src[210*nb-1]
	unpackQ6KAsm(&q[0], &src[0], nb)
}

func vadd(out, a, b []float32) {
	n := len(out)
	m := n &^ 15
	if m > 0 {
		_, _ = a[m-1], b[m-1]
		addAsm(&out[0], &a[0], &b[0], m)
	}
	addGo(out[m:], a[m:n], b[m:n])
}

func vmul(out, a, b []float32) {
	n := len(out)
	m := n &^ 15
	if m > 0 {
		_, _ = a[m-1], b[m-1]
		mulAsm(&out[0], &a[0], &b[0], m)
	}
	mulGo(out[m:], a[m:n], b[m:n])
}

func scaleMul(out, x, w []float32, s float32) {
	n := len(out)
	m := n &^ 15
	if m > 0 {
		_, _ = x[m-1], w[m-1]
		scaleMulAsm(&out[0], &x[0], &w[0], s, m)
	}
	scaleMulGo(out[m:], x[m:n], w[m:n], s)
}

func vscale(out, x []float32, s float32) {
	n := len(out)
	m := n &^ 15
	if m > 0 {
		_ = x[m-1]
		scaleAsm(&out[0], &x[0], s, m)
	}
	scaleGo(out[m:], x[m:n], s)
}

func axpy(y []float32, a float32, x []float32) {
	n := len(y)
	m := n &^ 15
	if m > 0 {
		_ = x[m-1]
		axpyAsm(&y[0], &x[0], a, m)
	}
	axpyGo(y[m:], a, x[m:n])
}

func absMaxF32(x []float32) float32 {
	n := len(x)
	m := n &^ 15
	var r float32
	if m > 0 {
		r = absMaxAsm(&x[0], m)
	}
	if t := absMaxGo(x[m:]); t > r {
		r = t
	}
	return r
}

func maxF32(x []float32) float32 {
	n := len(x)
	m := n &^ 15
	if m == 0 {
		return maxGo(x)
	}
	r := maxAsm(&x[0], m)
	if m < n {
		if t := maxGo(x[m:]); t > r {
			r = t
		}
	}
	return r
}

// expSub sets out[i] = exp(x[i] − b) and returns the sum of out.
func expSub(out, x []float32, b float32) float32 {
	n := len(out)
	m := n &^ 3
	var s float32
	if m > 0 {
		_ = x[m-1]
		s = expSubAsm(&out[0], &x[0], b, m)
	}
	return s + expSubGo(out[m:], x[m:n], b)
}

func siluMul(out, g, u []float32) {
	n := len(out)
	m := n &^ 3
	if m > 0 {
		_, _ = g[m-1], u[m-1]
		siluMulAsm(&out[0], &g[0], &u[0], m)
	}
	siluMulGo(out[m:], g[m:n], u[m:n])
}

// rope rotates the pairs of v (len 2·len(cos)) by the angles of cos/sin.
func rope(v, cos, sin []float32) {
	n := len(cos)
	m := n &^ 3
	if m > 0 {
		_, _ = v[2*m-1], sin[m-1]
		ropeAsm(&v[0], &cos[0], &sin[0], m)
	}
	ropeGo(v[2*m:2*n], cos[m:n], sin[m:n])
}

// quantizeQ8_0 quantizes x (a multiple of 32 elements) like llama.cpp on
// arm64: d = amax/127 stored as f16, quants = round-half-even(x·(1/d)).
func quantizeQ8_0(qs []int8, ds []float32, x []float32) {
	nb := len(x) / 32
	if nb == 0 {
		return
	}
	_, _ = qs[32*nb-1], ds[nb-1]
	quantQ8_0Asm(&qs[0], &ds[0], &x[0], nb)
}

// roundF16 sets dst[i] to src[i] rounded to binary16 precision.
func roundF16(dst, src []float32) {
	n := len(dst)
	m := n &^ 7
	if m > 0 {
		_ = src[m-1]
		roundF16Asm(&dst[0], &src[0], m)
	}
	roundF16Go(dst[m:], src[m:n])
}

// quantizeQ8_K quantizes x (a multiple of 256 elements) to Q8_K like
// llama.cpp: the signed value of largest magnitude maps to −127.
func quantizeQ8_K(qs []int8, ds []float32, bsums []int32, x []float32) {
	nb := len(x) / 256
	if nb == 0 {
		return
	}
	_, _, _ = qs[256*nb-1], ds[nb-1], bsums[16*nb-1]
	quantQ8KAsm(&qs[0], &ds[0], &bsums[0], &x[0], nb)
}

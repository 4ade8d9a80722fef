//go:build !arm64

package cpuneon

// Portable versions of the vector primitives, used when the package is
// built for an architecture other than arm64 (so it builds and its logic
// is tested everywhere).

const simdF32Path, simdF16Path = PathGo, PathGo

func hasDotProd() bool { return false }

func intPath(bool) Path { return PathGo }

func dotF32(a, b []float32) float32 { return dotF32Go(a, b) }

func dotF32x4(out *[4]float32, w, x []float32, stride int) {
	for r := 0; r < 4; r++ {
		out[r] = dotF32Go(w, x[r*stride:r*stride+len(w)])
	}
}

func dotI8x16(w, x []int8, out []int32, _ bool) { dotI8x16Go(w, x, out) }

func dotQ8Blocks(wq []int8, wd []float32, xq []int8, xd []float32, _ bool) float32 {
	return dotQ8BlocksGo(wq, wd, xq, xd)
}

func dotQ8Blocks4(out *[4]float32, wq []int8, wd []float32, xq []int8, xd []float32, _ bool) {
	n, nb := len(wq), len(wd)
	for r := range out {
		out[r] = dotQ8BlocksGo(wq, wd, xq[r*n:(r+1)*n], xd[r*nb:(r+1)*nb])
	}
}

func dotI8x16x4(w, x []int8, out []int32, _ bool) {
	n := len(w)
	for r := 0; r < 4; r++ {
		dotI8x16Go(w, x[r*n:(r+1)*n], out[r*n/16:(r+1)*n/16])
	}
}

func dotQ4K(wq, xq []int8, sc []int32, wd, xd []float32, bsums []int32, _ bool) float32 {
	return dotQ4KGo(wq, xq, sc, wd, xd, bsums)
}

func dotQ6K(wq, xq []int8, sc []int32, wd, xd []float32, _ bool) float32 {
	return dotQ6KGo(wq, xq, sc, wd, xd)
}

func f16RowToF32(dst []float32, src []byte)        { f16RowToF32Go(dst, src) }
func unpackQ4_0(q []int8, d []float32, src []byte) { unpackQ4_0Go(q, d, src) }
func unpackQ8_0(q []int8, d []float32, src []byte) { unpackQ8_0Go(q, d, src) }

func unpackQ4K(q []int8, src []byte) {
	for b := 0; b < len(q)/256; b++ {
		unpackQ4KGo(q[b*256:], src[b*144+16:])
	}
}

func unpackQ6K(q []int8, src []byte) {
	for b := 0; b < len(q)/256; b++ {
		unpackQ6KGo(q[b*256:], src[b*210:])
	}
}

func vadd(out, a, b []float32)                 { addGo(out, a, b) }
func vmul(out, a, b []float32)                 { mulGo(out, a, b) }
func scaleMul(out, x, w []float32, s float32)  { scaleMulGo(out, x, w, s) }
func vscale(out, x []float32, s float32)       { scaleGo(out, x, s) }
func axpy(y []float32, a float32, x []float32) { axpyGo(y, a, x) }
func absMaxF32(x []float32) float32            { return absMaxGo(x) }
func maxF32(x []float32) float32               { return maxGo(x) }

func expSub(out, x []float32, b float32) float32 { return expSubGo(out, x, b) }
func siluMul(out, g, u []float32)                { siluMulGo(out, g, u) }
func rope(v, cos, sin []float32)                 { ropeGo(v, cos, sin) }

func quantizeQ8_0(qs []int8, ds []float32, x []float32) { quantizeQ8_0Go(qs, ds, x) }
func roundF16(dst, src []float32)                       { roundF16Go(dst, src) }

func quantizeQ8_K(qs []int8, ds []float32, bsums []int32, x []float32) {
	quantizeQ8_KGo(qs, ds, bsums, x)
}

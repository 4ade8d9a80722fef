package cpuneon

import "math"

// Scalar versions of the vector primitives: the whole implementation on
// non-arm64 builds, and the remainder loops of the arm64 wrappers.

func dotF32Go(a, b []float32) float32 {
	var s float32
	b = b[:len(a)]
	for i, v := range a {
		s += v * b[i]
	}
	return s
}

func dotI8x16Go(w, x []int8, out []int32) {
	for i := range len(w) / 16 {
		var s int32
		for j := 16 * i; j < 16*i+16; j++ {
			s += int32(w[j]) * int32(x[j])
		}
		out[i] = s
	}
}

// dotQ8BlocksGo mirrors dotQ8Blocks: the integer dot of each block,
// converted and accumulated scaled by wd·xd.
func dotQ8BlocksGo(wq []int8, wd []float32, xq []int8, xd []float32) float32 {
	var acc float32
	for b, d := range wd {
		var isum int32
		for j := 32 * b; j < 32*b+32; j++ {
			isum += int32(wq[j]) * int32(xq[j])
		}
		acc += float32(isum) * (d * xd[b])
	}
	return acc
}

// dotQ4KGo mirrors dotQ4K (see the assembly for the layout).
func dotQ4KGo(wq, xq []int8, sc []int32, wd, xd []float32, bsums []int32) float32 {
	var acc float32
	var d16 [16]int32
	for i, yd := range xd {
		dotI8x16Go(wq[256*i:256*i+256], xq[256*i:256*i+256], d16[:])
		scs, bs := sc[16*i:16*i+16], bsums[16*i:16*i+16]
		var sumi, mins int32
		for j := 0; j < 8; j++ {
			sumi += scs[j] * (d16[2*j] + d16[2*j+1])
			mins += scs[8+j] * (bs[2*j] + bs[2*j+1])
		}
		acc += float32(sumi) * (wd[2*i] * yd)
		acc -= float32(mins) * (wd[2*i+1] * yd)
	}
	return acc
}

// dotQ6KGo mirrors dotQ6K.
func dotQ6KGo(wq, xq []int8, sc []int32, wd, xd []float32) float32 {
	var acc float32
	var d16 [16]int32
	for i, yd := range xd {
		dotI8x16Go(wq[256*i:256*i+256], xq[256*i:256*i+256], d16[:])
		var sumi int32
		for j, v := range d16 {
			sumi += sc[16*i+j] * v
		}
		acc += float32(sumi) * (wd[i] * yd)
	}
	return acc
}

func addGo(out, a, b []float32) {
	a, b = a[:len(out)], b[:len(out)]
	for i := range out {
		out[i] = a[i] + b[i]
	}
}

func mulGo(out, a, b []float32) {
	a, b = a[:len(out)], b[:len(out)]
	for i := range out {
		out[i] = a[i] * b[i]
	}
}

func scaleMulGo(out, x, w []float32, s float32) {
	x, w = x[:len(out)], w[:len(out)]
	for i := range out {
		out[i] = float32(x[i]*s) * w[i]
	}
}

func scaleGo(out, x []float32, s float32) {
	x = x[:len(out)]
	for i := range out {
		out[i] = x[i] * s
	}
}

func axpyGo(y []float32, a float32, x []float32) {
	x = x[:len(y)]
	for i := range y {
		y[i] += a * x[i]
	}
}

func absMaxGo(x []float32) float32 {
	var m float32
	for _, v := range x {
		m = max(m, float32(math.Abs(float64(v))))
	}
	return m
}

func maxGo(x []float32) float32 {
	m := float32(math.Inf(-1))
	for _, v := range x {
		m = max(m, v)
	}
	return m
}

func expSubGo(out, x []float32, b float32) float32 {
	x = x[:len(out)]
	var s float32
	for i, v := range x {
		e := float32(math.Exp(float64(v - b)))
		out[i] = e
		s += e
	}
	return s
}

func siluMulGo(out, g, u []float32) {
	g, u = g[:len(out)], u[:len(out)]
	for i, v := range g {
		out[i] = float32(v/float32(1+math.Exp(-float64(v)))) * u[i]
	}
}

func ropeGo(v, cos, sin []float32) {
	v = v[:2*len(cos)]
	for i, c := range cos {
		s := sin[i]
		x0, x1 := v[2*i], v[2*i+1]
		v[2*i] = float32(x0*c) - float32(x1*s)
		v[2*i+1] = float32(x0*s) + float32(x1*c)
	}
}

package gguf

import (
	"encoding/binary"
	"fmt"
	"math"
)

// CanQuantize reports whether Quantize supports type t.
func CanQuantize(t Type) bool {
	switch t {
	case TypeF32, TypeF16, TypeBF16, TypeQ4_0, TypeQ4_1, TypeQ5_0, TypeQ5_1, TypeQ8_0,
		TypeQ4_K, TypeQ5_K, TypeQ6_K, TypeQ8_K, TypeIQ4_NL, TypeIQ4_XS:
		return true
	}
	return false
}

// Quantize encodes src as type t into dst, which must be exactly the
// encoded size of len(src) elements (see Type.RowBytes).
//
// The 32-element types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) follow ggml's
// reference rounding so that results match llama-quantize; so do Q5_K,
// IQ4_NL and IQ4_XS, which follow ggml's searches without an importance
// matrix (see quant_q5k.go and iq4.go). Q4_K and Q6_K
// search each sub-block's scale (and min) by least squares over a set of
// candidate scales; Q8_K is the activation encoding described in
// FORMATS.md.
func Quantize(dst []byte, src []float32, t Type) error {
	if !CanQuantize(t) {
		return fmt.Errorf("gguf: quantize: unsupported target type %s", t)
	}
	if err := checkSizes(len(src), len(dst), t, "quantize"); err != nil {
		return err
	}
	switch t {
	case TypeF32:
		putF32s(dst, src)
		return nil
	case TypeF16:
		for i, x := range src {
			binary.LittleEndian.PutUint16(dst[2*i:], F32ToF16(x))
		}
		return nil
	case TypeBF16:
		for i, x := range src {
			binary.LittleEndian.PutUint16(dst[2*i:], F32ToBF16(x))
		}
		return nil
	}
	var fn func(b []byte, x []float32)
	switch t {
	case TypeQ4_0:
		fn = quantQ4_0
	case TypeQ4_1:
		fn = quantQ4_1
	case TypeQ5_0:
		fn = quantQ5_0
	case TypeQ5_1:
		fn = quantQ5_1
	case TypeQ8_0:
		fn = quantQ8_0
	case TypeQ4_K:
		fn = quantQ4_K
	case TypeQ5_K:
		fn = quantQ5_K
	case TypeQ6_K:
		fn = quantQ6_K
	case TypeIQ4_NL:
		fn = quantIQ4_NL
	case TypeIQ4_XS:
		fn = quantIQ4_XS
	case TypeQ8_K:
		fn = quantQ8_K
	}
	be, bb := t.BlockElems(), t.BlockBytes()
	for i := 0; i < len(src)/be; i++ {
		fn(dst[i*bb:(i+1)*bb], src[i*be:(i+1)*be])
	}
	return nil
}

func putF16(b []byte, x float32) { binary.LittleEndian.PutUint16(b, F32ToF16(x)) }

// signedMax returns the element with the largest magnitude (the first one
// on ties) and that magnitude.
func signedMax(x []float32) (maxv, amax float32) {
	for _, v := range x {
		if a := float32(math.Abs(float64(v))); a > amax {
			amax, maxv = a, v
		}
	}
	return maxv, amax
}

// quantQ8_0: d = amax/127, q = round(x/d) half away from zero.
func quantQ8_0(b []byte, x []float32) {
	amax := float32(0)
	for _, v := range x {
		amax = max(amax, float32(math.Abs(float64(v))))
	}
	d := amax / 127
	id := float32(0)
	if d != 0 {
		id = 1 / d
	}
	putF16(b, d)
	for j, v := range x {
		p := float32(v * id)
		b[2+j] = byte(int8(math.Round(float64(p))))
	}
}

// quantQ4_0: d = max/-8 for the signed extreme, q = min(15, trunc(x/d + 8.5)).
func quantQ4_0(b []byte, x []float32) {
	maxv, _ := signedMax(x)
	d := maxv / -8
	id := float32(0)
	if d != 0 {
		id = 1 / d
	}
	putF16(b, d)
	for j := 0; j < 16; j++ {
		x0 := float32(x[j] * id)
		x1 := float32(x[j+16] * id)
		q0 := min(15, int(int8(x0+8.5)))
		q1 := min(15, int(int8(x1+8.5)))
		b[2+j] = byte(q0) | byte(q1)<<4
	}
}

// quantQ4_1: d = (max-min)/15, m = min, q = min(15, trunc((x-m)/d + 0.5)).
func quantQ4_1(b []byte, x []float32) {
	lo, hi := x[0], x[0]
	for _, v := range x {
		lo, hi = min(lo, v), max(hi, v)
	}
	d := (hi - lo) / 15
	id := float32(0)
	if d != 0 {
		id = 1 / d
	}
	putF16(b, d)
	putF16(b[2:], lo)
	for j := 0; j < 16; j++ {
		x0 := float32((x[j] - lo) * id)
		x1 := float32((x[j+16] - lo) * id)
		q0 := min(15, int(int8(x0+0.5)))
		q1 := min(15, int(int8(x1+0.5)))
		b[4+j] = byte(q0) | byte(q1)<<4
	}
}

// quantQ5_0: d = max/-16, q = min(31, trunc(x/d + 16.5)).
func quantQ5_0(b []byte, x []float32) {
	maxv, _ := signedMax(x)
	d := maxv / -16
	id := float32(0)
	if d != 0 {
		id = 1 / d
	}
	putF16(b, d)
	var qh uint32
	for j := 0; j < 16; j++ {
		x0 := float32(x[j] * id)
		x1 := float32(x[j+16] * id)
		q0 := min(31, int(int8(x0+16.5)))
		q1 := min(31, int(int8(x1+16.5)))
		b[6+j] = byte(q0&0xf) | byte(q1&0xf)<<4
		qh |= uint32(q0>>4&1)<<j | uint32(q1>>4&1)<<(j+16)
	}
	binary.LittleEndian.PutUint32(b[2:], qh)
}

// quantQ5_1: d = (max-min)/31, m = min, q = trunc((x-m)/d + 0.5).
func quantQ5_1(b []byte, x []float32) {
	lo, hi := x[0], x[0]
	for _, v := range x {
		lo, hi = min(lo, v), max(hi, v)
	}
	d := (hi - lo) / 31
	id := float32(0)
	if d != 0 {
		id = 1 / d
	}
	putF16(b, d)
	putF16(b[2:], lo)
	var qh uint32
	for j := 0; j < 16; j++ {
		x0 := float32((x[j] - lo) * id)
		x1 := float32((x[j+16] - lo) * id)
		q0 := min(31, int(uint8(x0+0.5)))
		q1 := min(31, int(uint8(x1+0.5)))
		b[8+j] = byte(q0&0xf) | byte(q1&0xf)<<4
		qh |= uint32(q0>>4&1)<<j | uint32(q1>>4&1)<<(j+16)
	}
	binary.LittleEndian.PutUint32(b[4:], qh)
}

// quantQ8_K packs QuantizeQ8KBlock's output: d f32, 256 int8 quants,
// 16 int16 block sums.
func quantQ8_K(b []byte, x []float32) {
	var q [256]int8
	var bsums [16]int16
	d := QuantizeQ8KBlock(q[:], bsums[:], x)
	binary.LittleEndian.PutUint32(b, math.Float32bits(d))
	for j, v := range q {
		b[4+j] = byte(v)
	}
	for j, s := range bsums {
		binary.LittleEndian.PutUint16(b[260+2*j:], uint16(s))
	}
}

// QuantizeQ8KBlock quantizes one 256-element block of activations to
// Q8_K in the split form SIMD kernels keep it in: the quants into q[:256],
// the sum of each 16 quants into bsums[:16], and the scale d returned.
// iscale = −127/m for the element m of largest magnitude (with its
// sign), q = min(127, round-half-even(iscale·x)), d = 1/iscale; an
// all-zero block gives zeros and d = 0. It is the one scalar Q8_K
// quantizer: Quantize(…, TypeQ8_K) packs its output, and the backends'
// vector quantizers are tested bit for bit against it.
func QuantizeQ8KBlock(q []int8, bsums []int16, x []float32) (d float32) {
	q, bsums, x = q[:256], bsums[:16], x[:256]
	maxv, amax := signedMax(x)
	if amax == 0 {
		clear(q)
		clear(bsums)
		return 0
	}
	iscale := -127 / maxv
	for j, v := range x {
		p := float32(iscale * v)
		q[j] = int8(min(127, int(math.RoundToEven(float64(p)))))
	}
	for j := range bsums {
		var s int16
		for _, v := range q[16*j : 16*j+16] {
			s += int16(v)
		}
		bsums[j] = s
	}
	return 1 / iscale
}

func clampInt(v, lo, hi int) int {
	return max(lo, min(hi, v))
}

// roundHalfUp returns the integer nearest to v (halves rounded up); it
// is a cheap rounding for the candidate searches below.
func roundHalfUp(v float32) int {
	return int(math.Floor(float64(v) + 0.5))
}

// q4kSums rounds q = clamp((x−off)·inv, 0, nmax) and returns Σq, Σq²
// and Σxq. The explicit float32 conversions keep the compiler from
// fusing multiply-adds, so results are the same on every architecture.
func q4kSums(x []float32, off, inv float32, nmax int) (sl, sl2, sxl float64) {
	var a, b, c float32
	fmax := int32(nmax)
	for _, v := range x {
		qi := int32(float32((v-off)*inv) + 0.5)
		if qi < 0 {
			qi = 0
		} else if qi > fmax {
			qi = fmax
		}
		l := float32(qi)
		a += l
		b += float32(l * l)
		c += float32(l * v)
	}
	return float64(a), float64(b), float64(c)
}

// fitScaleMin fits x ≈ s·q + m with q in [0, nmax], s ≥ 0 and m ≤ 0,
// minimizing the squared error: for 21 candidate inverse scales around
// nmax/(max−min) it rounds q and solves the 2×2 least-squares problem for
// (s, m) (the error follows from the same sums), then refines the best
// candidate by re-rounding against it while the error drops.
func fitScaleMin(x []float32, nmax int) (s, m float32) {
	lo, hi := x[0], x[0]
	for _, v := range x {
		lo, hi = min(lo, v), max(hi, v)
	}
	lo = min(lo, 0)
	if hi == lo {
		return 0, lo
	}
	n := float64(len(x))
	var sumX, sumX2 float64
	for _, v := range x {
		sumX += float64(v)
		sumX2 += float64(v) * float64(v)
	}
	bestE := math.Inf(1)
	var bestS, bestM float64
	// try rounds q = (x−off)·inv, fits (s, m) and keeps the best.
	try := func(off, inv float32) bool {
		sl, sl2, sxl := q4kSums(x, off, inv, nmax)
		det := n*sl2 - sl*sl
		var s, m float64
		if det > 0 {
			s = (n*sxl - sl*sumX) / det
			m = (sl2*sumX - sl*sxl) / det
		}
		if m > 0 || det <= 0 || s < 0 {
			// Constrained fit: min pinned at 0.
			m = 0
			s = 0
			if sl2 > 0 {
				s = max(0, sxl/sl2)
			}
		}
		e := sumX2 - 2*s*sxl - 2*m*sumX + s*s*sl2 + 2*s*m*sl + n*m*m
		if e < bestE {
			bestE, bestS, bestM = e, s, m
			return true
		}
		return false
	}
	rng := hi - lo
	for k := -10; k <= 10; k++ {
		try(lo, (float32(nmax)+0.1*float32(k))/rng)
	}
	for it := 0; it < 4 && bestS > 0; it++ {
		if !try(float32(bestM), float32(1/bestS)) {
			break
		}
	}
	return float32(bestS), float32(bestM)
}

// quantQ4_K fits a scale and min per 32-element sub-block (fitScaleMin),
// quantizes the eight scales and mins to 6 bits against the super-block
// d and dmin, then rounds every element against its final scale and min.
func quantQ4_K(b []byte, x []float32) {
	var scales, mins [8]float32
	var maxScale, maxMin float32
	for j := 0; j < 8; j++ {
		s, m := fitScaleMin(x[32*j:32*j+32], 15)
		scales[j], mins[j] = s, -m
		maxScale = max(maxScale, s)
		maxMin = max(maxMin, -m)
	}
	d := maxScale / 63
	dmin := maxMin / 63
	putF16(b, d)
	putF16(b[2:], dmin)
	d = F16ToF32(F32ToF16(d))
	dmin = F16ToF32(F32ToF16(dmin))
	var sc, mn [8]int
	for j := 0; j < 8; j++ {
		if d > 0 {
			sc[j] = clampInt(int(math.Round(float64(scales[j]/d))), 0, 63)
		}
		if dmin > 0 {
			mn[j] = clampInt(int(math.Round(float64(mins[j]/dmin))), 0, 63)
		}
	}
	s := b[4:16]
	clear(s)
	for j := 0; j < 8; j++ {
		if j < 4 {
			s[j] |= byte(sc[j])
			s[j+4] |= byte(mn[j])
		} else {
			s[j+4] = byte(sc[j]&0xf) | byte(mn[j]&0xf)<<4
			s[j-4] |= byte(sc[j]>>4) << 6
			s[j] |= byte(mn[j]>>4) << 6
		}
	}
	qs := b[16:144]
	var q [256]uint8
	for j := 0; j < 8; j++ {
		ds := d * float32(sc[j])
		dm := dmin * float32(mn[j])
		for l := 0; l < 32; l++ {
			if ds > 0 {
				q[32*j+l] = uint8(clampInt(int(math.Round(float64((x[32*j+l]+dm)/ds))), 0, 15))
			}
		}
	}
	for c := 0; c < 4; c++ {
		for l := 0; l < 32; l++ {
			qs[32*c+l] = q[64*c+l] | q[64*c+32+l]<<4
		}
	}
}

// fitScale fits x ≈ s·q with q in [-nmax, nmax-1] minimizing the
// squared error: for 19 candidate inverse scales mapping the signed
// extreme near −nmax it rounds q and takes the least-squares scale
// Σxq/Σq² (error Σx² − (Σxq)²/Σq²), then refines the best by re-rounding
// against it while the error drops. It returns 0 for an all-zero input.
func fitScale(x []float32, nmax int) float32 {
	maxv, amax := signedMax(x)
	if amax == 0 {
		return 0
	}
	var bestS float64
	bestGain := -1.0 // (Σxq)²/Σq², maximized
	try := func(inv float32) bool {
		var sxl, sl2 float64
		for _, v := range x {
			qi := roundHalfUp(float32(v * inv))
			if qi < -nmax {
				qi = -nmax
			} else if qi > nmax-1 {
				qi = nmax - 1
			}
			l := float64(qi)
			sxl += l * float64(v)
			sl2 += l * l
		}
		if sl2 == 0 {
			return false
		}
		if g := sxl * sxl / sl2; g > bestGain {
			bestGain, bestS = g, sxl/sl2
			return true
		}
		return false
	}
	for k := -9; k <= 9; k++ {
		try(-(float32(nmax) + 0.1*float32(k)) / maxv)
	}
	for it := 0; it < 4 && bestS != 0; it++ {
		if !try(float32(1 / bestS)) {
			break
		}
	}
	return float32(bestS)
}

// quantQ6_K fits a signed scale per 16-element sub-block (fitScale),
// quantizes the sixteen scales to int8 against the super-block d, then
// rounds every element against its final scale to [-32, 31].
func quantQ6_K(b []byte, x []float32) {
	var scales [16]float32
	var smax, samax float32
	for j := 0; j < 16; j++ {
		scales[j] = fitScale(x[16*j:16*j+16], 32)
		if a := float32(math.Abs(float64(scales[j]))); a > samax {
			samax, smax = a, scales[j]
		}
	}
	d := smax / -128
	putF16(b[208:], d)
	d = F16ToF32(F32ToF16(d))
	var q [256]int
	for j := 0; j < 16; j++ {
		sc := 0
		if d != 0 {
			sc = clampInt(int(math.Round(float64(scales[j]/d))), -128, 127)
		}
		b[192+j] = byte(int8(sc))
		ds := d * float32(sc)
		for l := 0; l < 16; l++ {
			if ds != 0 {
				q[16*j+l] = clampInt(int(math.Round(float64(x[16*j+l]/ds))), -32, 31)
			}
		}
	}
	for n := 0; n < 2; n++ {
		ql := b[64*n : 64*n+64]
		qh := b[128+32*n : 128+32*n+32]
		for l := 0; l < 32; l++ {
			q1 := byte(q[128*n+l] + 32)
			q2 := byte(q[128*n+l+32] + 32)
			q3 := byte(q[128*n+l+64] + 32)
			q4 := byte(q[128*n+l+96] + 32)
			ql[l] = q1&0xf | (q3&0xf)<<4
			ql[l+32] = q2&0xf | (q4&0xf)<<4
			qh[l] = q1>>4 | (q2>>4)<<2 | (q3>>4)<<4 | (q4>>4)<<6
		}
	}
}

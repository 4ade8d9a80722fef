package gguf

import "math"

// nearestInt rounds v to the nearest integer, halves to even (ggml's
// nearest_int for |v| < 2²²).
func nearestInt(v float32) int { return int(math.RoundToEven(float64(v))) }

// weightedScaleMin fits x ≈ s·q − m with q ∈ [0, nmax], minimizing the
// w-weighted squared error, the way llama-quantize fits the sub-blocks
// of Q5_K without an importance matrix: the grid spanning [min(x, 0),
// max(x)] is the first candidate; then for nstep+1 inverse scales
// (rmin + rdelta·k + nmax)/(max − min) it rounds q and solves the
// weighted 2×2 least-squares problem for (s, m) (s alone with m pinned at
// 0 when the fit wants a positive offset), keeping the candidate with the
// smallest error; after an improvement the candidates' grids start at the
// new offset. q receives the chosen quants; it returns s and m (m ≥ 0
// is subtracted). Every product is rounded to float32 on its own so the
// result does not depend on fused multiply-adds.
func weightedScaleMin(x, w []float32, q []uint8, nmax int, rmin, rdelta float32, nstep int) (s, m float32) {
	lo, hi := x[0], x[0]
	sw := w[0]
	sx := float32(w[0] * x[0])
	for i := 1; i < len(x); i++ {
		lo, hi = min(lo, x[i]), max(hi, x[i])
		sw += w[i]
		sx += float32(w[i] * x[i])
	}
	lo = min(lo, 0)
	if hi == lo {
		clear(q)
		return 0, -lo
	}
	quant := func(iscale, off float32, i int) uint8 {
		return uint8(clampInt(nearestInt(float32(iscale*(x[i]-off))), 0, nmax))
	}
	errOf := func(scale, off float32, l []uint8) float32 {
		var e float32
		for i := range x {
			d := float32(float32(scale*float32(l[i]))+off) - x[i]
			e += float32(w[i] * float32(d*d))
		}
		return e
	}
	iscale := float32(nmax) / (hi - lo)
	scale, off := 1/iscale, lo
	for i := range x {
		q[i] = quant(iscale, lo, i)
	}
	bestE := errOf(scale, off, q)
	var aux [256]uint8
	la := aux[:len(x)]
	for k := 0; k <= nstep; k++ {
		// The grid of later candidates starts at the best offset so far
		// (llama-quantize's search moves it the same way).
		is := float32(float32(rmin+float32(rdelta*float32(k)))+float32(nmax)) / (hi - off)
		var sl, sl2, sxl float32
		for i := range x {
			la[i] = quant(is, off, i)
			l := float32(la[i])
			wl := float32(w[i] * l)
			sl += wl
			sl2 += float32(wl * l)
			sxl += float32(wl * x[i])
		}
		det := float32(sw*sl2) - float32(sl*sl)
		if det <= 0 {
			continue
		}
		ts := (float32(sw*sxl) - float32(sx*sl)) / det
		tm := (float32(sl2*sx) - float32(sl*sxl)) / det
		if tm > 0 {
			tm = 0
			ts = sxl / sl2
		}
		if e := errOf(ts, tm, la); e < bestE {
			copy(q, la)
			bestE, scale, off = e, ts, tm
		}
	}
	return scale, -off
}

// quantQ5_K fits each 32-element sub-block with weightedScaleMin (weights
// rms(x)+|x|, 16 candidates around 31/(max−min)), stores the eight scales
// and mins as 6-bit multiples of d = max scale/63 and dmin = max min/63,
// then rounds every element against its final scale and min to [0, 31].
func quantQ5_K(b []byte, x []float32) {
	var scales, mins [8]float32
	var w [32]float32
	var all [256]uint8
	var maxScale, maxMin float32
	for j := 0; j < 8; j++ {
		xb := x[32*j : 32*j+32]
		var s2 float32
		for _, v := range xb {
			s2 += float32(v * v)
		}
		av := float32(math.Sqrt(float64(s2 / 32)))
		for l, v := range xb {
			w[l] = av + float32(math.Abs(float64(v)))
		}
		scales[j], mins[j] = weightedScaleMin(xb, w[:], all[32*j:32*j+32], 31, -0.5, 0.1, 15)
		maxScale = max(maxScale, scales[j])
		maxMin = max(maxMin, mins[j])
	}
	var is, im float32
	if maxScale > 0 {
		is = 63 / maxScale
	}
	if maxMin > 0 {
		im = 63 / maxMin
	}
	s := b[4:16]
	clear(s)
	for j := 0; j < 8; j++ {
		ls := byte(min(63, uint8(nearestInt(float32(is*scales[j])))))
		lm := byte(min(63, uint8(nearestInt(float32(im*mins[j])))))
		if j < 4 {
			s[j] = ls
			s[j+4] = lm
		} else {
			s[j+4] = ls&0xf | (lm&0xf)<<4
			s[j-4] |= (ls >> 4) << 6
			s[j] |= (lm >> 4) << 6
		}
	}
	putF16(b, maxScale/63)
	putF16(b[2:], maxMin/63)
	d, dmin := f16(b), f16(b[2:])
	// A sub-block whose final scale is 0 keeps the quants of its fit.
	for j := 0; j < 8; j++ {
		sc, m := scaleMinK4(j, s)
		ds := d * float32(sc)
		if ds == 0 {
			continue
		}
		dm := dmin * float32(m)
		for l := 0; l < 32; l++ {
			all[32*j+l] = uint8(clampInt(nearestInt((x[32*j+l]+dm)/ds), 0, 31))
		}
	}
	qh := b[16:48]
	qs := b[48:176]
	clear(qh)
	for c := 0; c < 4; c++ {
		for l := 0; l < 32; l++ {
			lo, hi := all[64*c+l], all[64*c+32+l]
			qh[l] |= (lo>>4)<<(2*c) | (hi>>4)<<(2*c+1)
			qs[32*c+l] = lo&0xf | (hi&0xf)<<4
		}
	}
}

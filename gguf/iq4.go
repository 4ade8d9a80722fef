package gguf

import (
	"encoding/binary"
	"math"
)

// iq4Grid is the non-linear 4-bit grid of IQ4_NL and IQ4_XS: a quant
// index i stands for scale·iq4Grid[i]. Read only.
var iq4Grid = [16]int8{-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113}

// IQ4NLValues returns the non-linear grid of IQ4_NL and IQ4_XS: quant
// index i decodes to scale·IQ4NLValues()[i].
func IQ4NLValues() [16]int8 { return iq4Grid }

// IQ4_NL: f16 d; u8 qs[16]. Low nibbles index elements 0..15, high
// nibbles 16..31.
func dequantIQ4_NL(y []float32, b []byte) {
	d := f16(b)
	qs := b[2:18]
	for j := 0; j < 16; j++ {
		y[j] = d * float32(iq4Grid[qs[j]&0xf])
		y[j+16] = d * float32(iq4Grid[qs[j]>>4])
	}
}

// IQ4XSScale returns the signed 6-bit scale (−32..31) of sub-block ib of
// an IQ4_XS block: low nibble from scales_l (b[4:8]), high two bits from
// the u16 scales_h (b[2:4]).
func IQ4XSScale(b []byte, ib int) int {
	lo := int(b[4+ib/2]>>(4*uint(ib%2))) & 0xf
	hi := int(binary.LittleEndian.Uint16(b[2:])>>(2*uint(ib))) & 3
	return lo | hi<<4 - 32
}

// IQ4_XS: f16 d; u16 scales_h; u8 scales_l[4]; u8 qs[128]. Sub-block ib
// (32 elements) uses d·(scale−32) and the 16 bytes qs[16ib:], nibbles as
// in IQ4_NL.
func dequantIQ4_XS(y []float32, b []byte) {
	d := f16(b)
	qs := b[8:136]
	for ib := 0; ib < 8; ib++ {
		dl := d * float32(IQ4XSScale(b, ib))
		q := qs[16*ib : 16*ib+16]
		o := y[32*ib : 32*ib+32]
		for j := 0; j < 16; j++ {
			o[j] = dl * float32(iq4Grid[q[j]&0xf])
			o[j+16] = dl * float32(iq4Grid[q[j]>>4])
		}
	}
}

// nearestIndexIQ4 returns the index of the grid value nearest to v (the
// lower one on ties), by bisection over the sorted grid.
func nearestIndexIQ4(v float32) uint8 {
	g := &iq4Grid
	if v <= float32(g[0]) {
		return 0
	}
	if v >= float32(g[15]) {
		return 15
	}
	lo, hi := 0, 15
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if v < float32(g[mid]) {
			hi = mid
		} else {
			lo = mid
		}
	}
	if v-float32(g[hi-1]) < float32(g[hi])-v {
		return uint8(hi - 1)
	}
	return uint8(hi)
}

// iq4Tries is how far (in grid units) the inverse-scale search moves the
// extreme element away from the grid's end, each way.
const iq4Tries = 7

// iq4Scale fits x ≈ d·grid[L] for one 32-element sub-block, weighting
// each element by x² (ggml's choice without an importance matrix): it
// starts from d = max/−grid[0] for the signed extreme, takes the
// weighted least-squares scale for the rounding it gives, then tries the
// inverse scales (t + grid[0])/max for t in ±iq4Tries and keeps the
// least-squares scale of whichever rounding explains the most energy
// (Σwqx)²/Σwq². It returns 0 for a block with no magnitude.
func iq4Scale(x []float32) float32 {
	var amax, maxv float32
	for _, v := range x {
		if a := float32(math.Abs(float64(v))); a > amax {
			amax, maxv = a, v
		}
	}
	if amax < 1e-15 {
		return 0
	}
	g0 := float32(iq4Grid[0])
	sums := func(id float32) (sqx, sq2 float32) {
		for _, v := range x {
			q := float32(iq4Grid[nearestIndexIQ4(float32(id*v))])
			w := float32(v * v)
			sqx += float32(float32(w*q) * v)
			sq2 += float32(float32(w*q) * q)
		}
		return sqx, sq2
	}
	d := -maxv / g0
	sqx, sq2 := sums(1 / d)
	d = 0
	if sq2 > 0 {
		d = sqx / sq2
	}
	best := float32(d * sqx)
	for t := -iq4Tries; t <= iq4Tries; t++ {
		sqx, sq2 := sums((float32(t) + g0) / maxv)
		if sq2 > 0 && float32(sqx*sqx) > float32(best*sq2) {
			d = sqx / sq2
			best = float32(d * sqx)
		}
	}
	return d
}

// packIQ4 stores the grid indices of x/scale (0 scale: index of 0) as
// nibbles: element j in the low nibble of q[j], element 16+j in the high.
func packIQ4(q []byte, x []float32, scale float32) {
	var id float32
	if scale != 0 {
		id = 1 / scale
	}
	for j := 0; j < 16; j++ {
		lo := nearestIndexIQ4(float32(id * x[j]))
		hi := nearestIndexIQ4(float32(id * x[j+16]))
		q[j] = lo | hi<<4
	}
}

// quantIQ4_NL: the sub-block scale of iq4Scale stored as f16, indices
// rounded against the unrounded scale (as llama-quantize does).
func quantIQ4_NL(b []byte, x []float32) {
	d := iq4Scale(x)
	putF16(b, d)
	packIQ4(b[2:18], x, d)
}

// quantIQ4_XS: eight iq4Scale sub-block scales expressed as 6-bit
// multiples l ∈ [−32, 31] of d = −s/32, s the scale of largest
// magnitude; indices are rounded against d·l with d unrounded.
func quantIQ4_XS(b []byte, x []float32) {
	var scales [8]float32
	var smax, samax float32
	for ib := 0; ib < 8; ib++ {
		scales[ib] = iq4Scale(x[32*ib : 32*ib+32])
		if a := float32(math.Abs(float64(scales[ib]))); a > samax {
			samax, smax = a, scales[ib]
		}
	}
	d := -smax / 32
	putF16(b, d)
	var id float32
	if d != 0 {
		id = 1 / d
	}
	var sh uint16
	sl := b[4:8]
	clear(sl)
	for ib := 0; ib < 8; ib++ {
		l := clampInt(int(math.RoundToEven(float64(float32(id*scales[ib])))), -32, 31)
		packIQ4(b[8+16*ib:24+16*ib], x[32*ib:32*ib+32], float32(d*float32(l)))
		u := l + 32
		sl[ib/2] |= byte(u&0xf) << (4 * uint(ib%2))
		sh |= uint16(u>>4) << (2 * uint(ib))
	}
	binary.LittleEndian.PutUint16(b[2:], sh)
}

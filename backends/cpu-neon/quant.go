package cpuneon

import (
	"encoding/binary"
	"math"
)

// f16ToF32 converts an IEEE binary16 value to float32.
func f16ToF32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	man := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // inf or NaN
		return math.Float32frombits(sign | 0x7f800000 | man<<13)
	case exp == 0:
		if man == 0 {
			return math.Float32frombits(sign)
		}
		// subnormal: value = man · 2^-24
		f := float32(man) * (1.0 / (1 << 24))
		if sign != 0 {
			f = -f
		}
		return f
	}
	return math.Float32frombits(sign | (exp+112)<<23 | man<<13)
}

// f32ToF16 converts float32 to binary16 rounding to nearest even.
func f32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	man := b & 0x7fffff
	if exp == 0xff {
		if man != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		if e < -10 {
			return sign
		}
		man |= 0x800000
		shift := uint32(14 - e)
		h := man >> shift
		rem := man & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rem > half || (rem == half && h&1 == 1) {
			h++
		}
		return sign | uint16(h)
	}
	h := uint32(e)<<10 | man>>13
	rem := man & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && h&1 == 1) {
		h++ // may carry into the exponent, which is the correct result
	}
	return sign | uint16(h)
}

// roundHalfEven rounds v to the nearest integer, ties to even (the
// rounding of the FCVTNS instruction llama.cpp uses on arm64).
func roundHalfEven(v float32) int32 {
	return int32(math.RoundToEven(float64(v)))
}

// q8Act holds activation rows quantized to Q8_0 (blocks of 32) or Q8_K
// (blocks of 256 with 16-element sums).
type q8Act struct {
	qs    []int8
	d     []float32
	bsums []int32 // Q8_K only: sum of each 16 quants
}

// grow returns s resized to n elements, reusing its storage when possible.
func grow[T any](s []T, n int) []T {
	if cap(s) >= n {
		return s[:n]
	}
	return make([]T, n)
}

// quantizeQ8_0Go quantizes x (a multiple of 32 elements) like llama.cpp
// on arm64: d = amax/127 stored as f16, quants = round-half-even(x·(1/d)).
func quantizeQ8_0Go(qs []int8, ds []float32, x []float32) {
	for b := 0; b*32 < len(x); b++ {
		blk := x[b*32 : b*32+32]
		amax := absMaxGo(blk)
		d := amax / 127
		var id float32
		if d != 0 {
			id = 1 / d
		}
		ds[b] = f16ToF32(f32ToF16(d))
		q := qs[b*32 : b*32+32]
		for i, v := range blk {
			q[i] = int8(roundHalfEven(v * id))
		}
	}
}

// quantizeQ8_KGo quantizes x (a multiple of 256 elements) to Q8_K like
// llama.cpp: the signed value of largest magnitude maps to −127.
func quantizeQ8_KGo(qs []int8, ds []float32, bsums []int32, x []float32) {
	for b := 0; b*256 < len(x); b++ {
		blk := x[b*256 : b*256+256]
		var max, amax float32
		for _, v := range blk {
			a := v
			if a < 0 {
				a = -a
			}
			if a > amax {
				amax, max = a, v
			}
		}
		q := qs[b*256 : b*256+256]
		bs := bsums[b*16 : b*16+16]
		if amax == 0 {
			ds[b] = 0
			clear(q)
			clear(bs)
			continue
		}
		iscale := -127 / max
		for i, v := range blk {
			r := roundHalfEven(iscale * v)
			if r > 127 {
				r = 127
			}
			q[i] = int8(r)
		}
		for j := range bs {
			var s int32
			for _, v := range q[j*16 : j*16+16] {
				s += int32(v)
			}
			bs[j] = s
		}
		ds[b] = 1 / iscale
	}
}

// q4kScales decodes the 8 six-bit scales and mins of a Q4_K block.
func q4kScales(s []byte, sc, m *[8]int32) {
	for j := 0; j < 4; j++ {
		sc[j] = int32(s[j] & 63)
		m[j] = int32(s[j+4] & 63)
	}
	for j := 4; j < 8; j++ {
		sc[j] = int32(s[j+4]&0xf | (s[j-4]>>6)<<4)
		m[j] = int32(s[j+4]>>4 | (s[j]>>6)<<4)
	}
}

func le16(b []byte) uint16 { return binary.LittleEndian.Uint16(b) }

// roundF16Go sets dst[i] to src[i] rounded to binary16 precision.
func roundF16Go(dst, src []float32) {
	src = src[:len(dst)]
	for i, v := range src {
		dst[i] = f16ToF32(f32ToF16(v))
	}
}

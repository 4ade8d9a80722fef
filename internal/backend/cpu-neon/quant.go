package cpuneon

import (
	"encoding/binary"
	"math"

	"github.com/realmrt/realm/gguf"
)

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
		ds[b] = gguf.F16ToF32(gguf.F32ToF16(d))
		q := qs[b*32 : b*32+32]
		for i, v := range blk {
			q[i] = int8(roundHalfEven(v * id))
		}
	}
}

// quantizeQ8_KGo quantizes x (a multiple of 256 elements) to Q8_K with
// the scalar reference quantizer, gguf.QuantizeQ8KBlock (the model the
// SDOT-path quantQ8KAsm is tested against).
func quantizeQ8_KGo(qs []int8, ds []float32, bsums []int32, x []float32) {
	var bs [16]int16
	for b := 0; b*256 < len(x); b++ {
		ds[b] = gguf.QuantizeQ8KBlock(qs[b*256:], bs[:], x[b*256:])
		for j, s := range bs {
			bsums[b*16+j] = int32(s)
		}
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
		dst[i] = gguf.F16ToF32(gguf.F32ToF16(v))
	}
}

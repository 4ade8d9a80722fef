package gguf

import (
	"encoding/binary"
	"math"
)

// F32Bytes returns v encoded as the data of a TypeF32 tensor: each
// value as little-endian IEEE 754 binary32 (the form of inline tensor
// data on the backend wire).
func F32Bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	putF32s(b, v)
	return b
}

// putF32s encodes src into dst (4·len(src) bytes) as little-endian f32.
func putF32s(dst []byte, src []float32) {
	for i, x := range src {
		binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(x))
	}
}

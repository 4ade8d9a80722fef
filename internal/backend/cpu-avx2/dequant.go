package cpuavx2

import (
	"fmt"

	"github.com/realmrt/realm/gguf"
)

// dequantRow expands one row of src (len(dst) elements of type t) into
// dst with gguf.Dequantize (GetRows and the types without SIMD kernels).
func dequantRow(dst []float32, src []byte, t gguf.Type) error {
	rb, err := t.RowBytes(int64(len(dst)))
	if err != nil {
		return err
	}
	if int64(len(src)) < rb {
		return fmt.Errorf("cpuavx2: %s row of %d elements needs %d bytes, have %d", t, len(dst), rb, len(src))
	}
	return gguf.Dequantize(dst, src[:rb], t)
}

// kScaleMin returns the 6-bit scale and min of sub-block j (0..7) from a
// K-quant's packed 12-byte scale array.
func kScaleMin(s []byte, j int) (sc, m uint8) {
	if j < 4 {
		return s[j] & 63, s[j+4] & 63
	}
	return s[j+4]&0xF | (s[j-4]>>6)<<4, s[j+4]>>4 | (s[j]>>6)<<4
}

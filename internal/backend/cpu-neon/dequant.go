package cpuneon

import (
	"fmt"

	"github.com/realmrt/realm/gguf"
)

// Types lists the weight types MatMul and GetRows accept: all of them
// (gguf.WeightTypes). F32, F16, Q4_0, Q8_0, Q4_K, Q5_K, Q6_K, IQ4_NL and
// IQ4_XS have NEON paths; the others are dequantized a row at a time.
func (k *Kernels) Types() []gguf.Type { return gguf.WeightTypes() }

// dequantRow converts one row of src (type t) to len(dst) f32 values:
// F16 with the NEON conversion, the rest with gguf.Dequantize.
func dequantRow(dst []float32, src []byte, t gguf.Type) error {
	rb, err := t.RowBytes(int64(len(dst)))
	if err != nil {
		return fmt.Errorf("cpuneon: %w", err)
	}
	if int64(len(src)) < rb {
		return fmt.Errorf("cpuneon: %s row of %d elements needs %d bytes, have %d", t, len(dst), rb, len(src))
	}
	if t == gguf.TypeF16 {
		f16RowToF32(dst, src)
		return nil
	}
	if err := gguf.Dequantize(dst, src[:rb], t); err != nil {
		return fmt.Errorf("cpuneon: %w", err)
	}
	return nil
}

// f16RowToF32Go converts little-endian binary16 values in src to dst.
func f16RowToF32Go(dst []float32, src []byte) {
	for i := range dst {
		dst[i] = gguf.F16ToF32(le16(src[2*i:]))
	}
}

// unpackQ4_0Go expands nb Q4_0 blocks of src to int8 quants (−8..7) and
// f32 scales.
func unpackQ4_0Go(q []int8, d []float32, src []byte) {
	for b := range d {
		blk := src[b*18:]
		d[b] = gguf.F16ToF32(le16(blk))
		o := q[b*32:]
		for j := 0; j < 16; j++ {
			o[j] = int8(blk[2+j]&0xf) - 8
			o[j+16] = int8(blk[2+j]>>4) - 8
		}
	}
}

// unpackQ8_0Go splits nb Q8_0 blocks of src into int8 quants and f32 scales.
func unpackQ8_0Go(q []int8, d []float32, src []byte) {
	for b := range d {
		blk := src[b*34:]
		d[b] = gguf.F16ToF32(le16(blk))
		for j := 0; j < 32; j++ {
			q[b*32+j] = int8(blk[2+j])
		}
	}
}

// unpackQ4KGo expands the 128 quant bytes of one Q4_K block (qs) to 256
// unsigned quants (0..15) in element order.
func unpackQ4KGo(q []int8, qs []byte) {
	for c := 0; c < 4; c++ {
		for l := 0; l < 32; l++ {
			v := qs[c*32+l]
			q[c*64+l] = int8(v & 0xf)
			q[c*64+32+l] = int8(v >> 4)
		}
	}
}

// unpackQ6KGo expands the 6-bit quants of one Q6_K block to 256 signed
// quants (−32..31) in element order.
func unpackQ6KGo(q []int8, blk []byte) {
	for h := 0; h < 2; h++ {
		ql := blk[64*h:]
		qh := blk[128+32*h:]
		o := q[128*h:]
		for l := 0; l < 32; l++ {
			o[l] = int8(ql[l]&0xf|(qh[l]&3)<<4) - 32
			o[l+32] = int8(ql[l+32]&0xf|((qh[l]>>2)&3)<<4) - 32
			o[l+64] = int8(ql[l]>>4|((qh[l]>>4)&3)<<4) - 32
			o[l+96] = int8(ql[l+32]>>4|((qh[l]>>6)&3)<<4) - 32
		}
	}
}

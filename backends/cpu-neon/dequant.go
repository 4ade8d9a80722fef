package cpuneon

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/realmrt/realm/gguf"
)

// Types lists the weight types MatMul and GetRows accept: every type the
// gguf package can decode except Q8_K (activations only). F32, F16, Q4_0,
// Q8_0, Q4_K and Q6_K have NEON paths; the others are dequantized.
func (k *Kernels) Types() []gguf.Type {
	var out []gguf.Type
	probe := make([]float32, 256)
	for _, t := range gguf.AllTypes() {
		n := t.BlockElems()
		if t == gguf.TypeQ8_K || n == 0 {
			continue
		}
		if err := gguf.Dequantize(probe[:n], make([]byte, t.BlockBytes()), t); err == nil {
			out = append(out, t)
		}
	}
	return out
}

// dequantRow converts one row of src (type t) to len(dst) f32 values.
func dequantRow(dst []float32, src []byte, t gguf.Type) error {
	n := len(dst)
	rb, err := t.RowBytes(int64(n))
	if err != nil {
		return fmt.Errorf("cpuneon: %w", err)
	}
	if int64(len(src)) < rb {
		return fmt.Errorf("cpuneon: %s row of %d elements needs %d bytes, have %d", t, n, rb, len(src))
	}
	switch t {
	case gguf.TypeF32:
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
		}
	case gguf.TypeF16:
		f16RowToF32(dst, src)
	case gguf.TypeBF16:
		for i := range dst {
			dst[i] = math.Float32frombits(uint32(le16(src[2*i:])) << 16)
		}
	case gguf.TypeQ4_0:
		for b := 0; b < n/32; b++ {
			blk := src[b*18:]
			d := gguf.F16ToF32(le16(blk))
			o := dst[b*32:]
			for j := 0; j < 16; j++ {
				q := blk[2+j]
				o[j] = d * float32(int32(q&0xf)-8)
				o[j+16] = d * float32(int32(q>>4)-8)
			}
		}
	case gguf.TypeQ4_1:
		for b := 0; b < n/32; b++ {
			blk := src[b*20:]
			d, m := gguf.F16ToF32(le16(blk)), gguf.F16ToF32(le16(blk[2:]))
			o := dst[b*32:]
			for j := 0; j < 16; j++ {
				q := blk[4+j]
				o[j] = float32(d*float32(q&0xf)) + m
				o[j+16] = float32(d*float32(q>>4)) + m
			}
		}
	case gguf.TypeQ5_0:
		for b := 0; b < n/32; b++ {
			blk := src[b*22:]
			d := gguf.F16ToF32(le16(blk))
			qh := binary.LittleEndian.Uint32(blk[2:])
			o := dst[b*32:]
			for j := 0; j < 16; j++ {
				q := blk[6+j]
				lo := int32(q&0xf) | int32((qh>>j)&1)<<4
				hi := int32(q>>4) | int32((qh>>(j+16))&1)<<4
				o[j] = d * float32(lo-16)
				o[j+16] = d * float32(hi-16)
			}
		}
	case gguf.TypeQ5_1:
		for b := 0; b < n/32; b++ {
			blk := src[b*24:]
			d, m := gguf.F16ToF32(le16(blk)), gguf.F16ToF32(le16(blk[2:]))
			qh := binary.LittleEndian.Uint32(blk[4:])
			o := dst[b*32:]
			for j := 0; j < 16; j++ {
				q := blk[8+j]
				lo := uint32(q&0xf) | ((qh>>j)&1)<<4
				hi := uint32(q>>4) | ((qh>>(j+16))&1)<<4
				o[j] = float32(d*float32(lo)) + m
				o[j+16] = float32(d*float32(hi)) + m
			}
		}
	case gguf.TypeQ8_0:
		for b := 0; b < n/32; b++ {
			blk := src[b*34:]
			d := gguf.F16ToF32(le16(blk))
			o := dst[b*32:]
			for j := 0; j < 32; j++ {
				o[j] = d * float32(int8(blk[2+j]))
			}
		}
	case gguf.TypeQ4_K:
		var sc, m [8]int32
		for b := 0; b < n/256; b++ {
			blk := src[b*144:]
			d, dmin := gguf.F16ToF32(le16(blk)), gguf.F16ToF32(le16(blk[2:]))
			q4kScales(blk[4:16], &sc, &m)
			qs := blk[16:144]
			o := dst[b*256:]
			for c := 0; c < 4; c++ {
				d1, m1 := d*float32(sc[2*c]), dmin*float32(m[2*c])
				d2, m2 := d*float32(sc[2*c+1]), dmin*float32(m[2*c+1])
				for l := 0; l < 32; l++ {
					q := qs[c*32+l]
					o[c*64+l] = float32(d1*float32(q&0xf)) - m1
					o[c*64+32+l] = float32(d2*float32(q>>4)) - m2
				}
			}
		}
	case gguf.TypeQ6_K:
		var q [256]int8
		for b := 0; b < n/256; b++ {
			blk := src[b*210:]
			unpackQ6KGo(q[:], blk)
			d := gguf.F16ToF32(le16(blk[208:]))
			o := dst[b*256:]
			for i := 0; i < 256; i++ {
				o[i] = d * float32(int8(blk[192+i/16])) * float32(q[i])
			}
		}
	default:
		if err := gguf.Dequantize(dst, src[:rb], t); err != nil {
			return fmt.Errorf("cpuneon: %w", err)
		}
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

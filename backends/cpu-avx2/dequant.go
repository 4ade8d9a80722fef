package cpuavx2

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/realmrt/realm/gguf"
)

// dequantRow expands one row of src (n elements of type t) into dst.
// It covers the types the engine meets in practice; others report an
// error.
func dequantRow(dst []float32, src []byte, t gguf.Type) error {
	n := len(dst)
	rb, err := t.RowBytes(int64(n))
	if err != nil {
		return err
	}
	if int64(len(src)) < rb {
		return fmt.Errorf("cpuavx2: %s row of %d elements needs %d bytes, have %d", t, n, rb, len(src))
	}
	switch t {
	case gguf.TypeF32:
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
		}
	case gguf.TypeF16:
		for i := range dst {
			dst[i] = f16ToF32(binary.LittleEndian.Uint16(src[2*i:]))
		}
	case gguf.TypeBF16:
		for i := range dst {
			dst[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(src[2*i:])) << 16)
		}
	case gguf.TypeQ4_0:
		for b := 0; b < n/32; b++ {
			blk := src[b*18:]
			d := f16ToF32(binary.LittleEndian.Uint16(blk))
			o := dst[b*32:]
			for j := 0; j < 16; j++ {
				q := blk[2+j]
				o[j] = d * float32(int(q&15)-8)
				o[j+16] = d * float32(int(q>>4)-8)
			}
		}
	case gguf.TypeQ4_1:
		for b := 0; b < n/32; b++ {
			blk := src[b*20:]
			d := f16ToF32(binary.LittleEndian.Uint16(blk))
			m := f16ToF32(binary.LittleEndian.Uint16(blk[2:]))
			o := dst[b*32:]
			for j := 0; j < 16; j++ {
				q := blk[4+j]
				o[j] = d*float32(q&15) + m
				o[j+16] = d*float32(q>>4) + m
			}
		}
	case gguf.TypeQ5_0, gguf.TypeQ5_1:
		bs, off := 22, 6
		if t == gguf.TypeQ5_1 {
			bs, off = 24, 8
		}
		for b := 0; b < n/32; b++ {
			blk := src[b*bs:]
			d := f16ToF32(binary.LittleEndian.Uint16(blk))
			qh := binary.LittleEndian.Uint32(blk[off-4:])
			o := dst[b*32:]
			for j := 0; j < 16; j++ {
				q := blk[off+j]
				lo := int(q&15) | int((qh>>j)&1)<<4
				hi := int(q>>4) | int((qh>>(j+16))&1)<<4
				if t == gguf.TypeQ5_0 {
					o[j] = d * float32(lo-16)
					o[j+16] = d * float32(hi-16)
				} else {
					m := f16ToF32(binary.LittleEndian.Uint16(blk[2:]))
					o[j] = d*float32(lo) + m
					o[j+16] = d*float32(hi) + m
				}
			}
		}
	case gguf.TypeQ8_0:
		for b := 0; b < n/32; b++ {
			blk := src[b*34:]
			d := f16ToF32(binary.LittleEndian.Uint16(blk))
			o := dst[b*32:]
			for j := 0; j < 32; j++ {
				o[j] = d * float32(int8(blk[2+j]))
			}
		}
	case gguf.TypeQ4_K, gguf.TypeQ5_K:
		bs := 144
		if t == gguf.TypeQ5_K {
			bs = 176
		}
		for b := 0; b < n/256; b++ {
			blk := src[b*bs:]
			d := f16ToF32(binary.LittleEndian.Uint16(blk))
			dmin := f16ToF32(binary.LittleEndian.Uint16(blk[2:]))
			sc := blk[4:16]
			qs := blk[16:]
			var qh []byte
			if t == gguf.TypeQ5_K {
				qh, qs = blk[16:48], blk[48:]
			}
			o := dst[b*256:]
			for j := 0; j < 8; j++ {
				s, m := kScaleMin(sc, j)
				c := j / 2
				for l := 0; l < 32; l++ {
					q := int(qs[32*c+l])
					if j%2 == 0 {
						q &= 15
					} else {
						q >>= 4
					}
					if qh != nil {
						q |= int((qh[l]>>j)&1) << 4
					}
					o[32*j+l] = d*float32(s)*float32(q) - dmin*float32(m)
				}
			}
		}
	case gguf.TypeQ6_K:
		for b := 0; b < n/256; b++ {
			blk := src[b*210:]
			d := f16ToF32(binary.LittleEndian.Uint16(blk[208:]))
			o := dst[b*256:]
			for h := 0; h < 2; h++ {
				ql := blk[64*h:]
				qh := blk[128+32*h:]
				sc := blk[192+8*h:]
				oh := o[128*h:]
				for l := 0; l < 32; l++ {
					is := l / 16
					q1 := int(ql[l]&15|(qh[l]&3)<<4) - 32
					q2 := int(ql[l+32]&15|((qh[l]>>2)&3)<<4) - 32
					q3 := int(ql[l]>>4|((qh[l]>>4)&3)<<4) - 32
					q4 := int(ql[l+32]>>4|((qh[l]>>6)&3)<<4) - 32
					oh[l] = d * float32(int8(sc[is])) * float32(q1)
					oh[l+32] = d * float32(int8(sc[is+2])) * float32(q2)
					oh[l+64] = d * float32(int8(sc[is+4])) * float32(q3)
					oh[l+96] = d * float32(int8(sc[is+6])) * float32(q4)
				}
			}
		}
	default:
		return fmt.Errorf("cpuavx2: cannot dequantize %s", t)
	}
	return nil
}

// kScaleMin returns the 6-bit scale and min of sub-block j (0..7) from a
// K-quant's packed 12-byte scale array.
func kScaleMin(s []byte, j int) (sc, m uint8) {
	if j < 4 {
		return s[j] & 63, s[j+4] & 63
	}
	return s[j+4]&0xF | (s[j-4]>>6)<<4, s[j+4]>>4 | (s[j]>>6)<<4
}

// dequantTypes lists the weight types dequantRow handles.
func dequantTypes() []gguf.Type {
	return []gguf.Type{gguf.TypeF32, gguf.TypeF16, gguf.TypeBF16, gguf.TypeQ4_0,
		gguf.TypeQ4_1, gguf.TypeQ5_0, gguf.TypeQ5_1, gguf.TypeQ8_0, gguf.TypeQ4_K, gguf.TypeQ5_K, gguf.TypeQ6_K}
}

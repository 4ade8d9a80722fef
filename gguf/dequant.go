package gguf

import (
	"encoding/binary"
	"fmt"
	"math"
)

// checkSizes verifies that src holds exactly the encoding of n elements
// of type t.
func checkSizes(n int, nbytes int, t Type, op string) error {
	tr, ok := t.traits()
	if !ok {
		return fmt.Errorf("gguf: %s: unsupported tensor type id %d", op, uint32(t))
	}
	if n%tr.blockElems != 0 {
		return fmt.Errorf("gguf: %s %s: %d elements is not a multiple of the block size %d", op, tr.name, n, tr.blockElems)
	}
	want := n / tr.blockElems * tr.blockBytes
	if nbytes != want {
		return fmt.Errorf("gguf: %s %s: %d elements need %d bytes, got %d", op, tr.name, n, want, nbytes)
	}
	return nil
}

func f16(b []byte) float32 { return F16ToF32(binary.LittleEndian.Uint16(b)) }

// Dequantize decodes len(dst) elements of type t from src, which must be
// exactly their encoded size.
func Dequantize(dst []float32, src []byte, t Type) error {
	if err := checkSizes(len(dst), len(src), t, "dequantize"); err != nil {
		return err
	}
	switch t {
	case TypeF32:
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
		}
	case TypeF16:
		for i := range dst {
			dst[i] = F16ToF32(binary.LittleEndian.Uint16(src[2*i:]))
		}
	case TypeBF16:
		for i := range dst {
			dst[i] = BF16ToF32(binary.LittleEndian.Uint16(src[2*i:]))
		}
	default:
		bs, be := t.BlockBytes(), t.BlockElems()
		fn := blockDecoder(t)
		for i := 0; i < len(dst)/be; i++ {
			fn(dst[i*be:(i+1)*be], src[i*bs:(i+1)*bs])
		}
	}
	return nil
}

// blockDecoder returns the decoder of one block of a block-quantized type.
func blockDecoder(t Type) func(y []float32, b []byte) {
	switch t {
	case TypeQ4_0:
		return dequantQ4_0
	case TypeQ4_1:
		return dequantQ4_1
	case TypeQ5_0:
		return dequantQ5_0
	case TypeQ5_1:
		return dequantQ5_1
	case TypeQ8_0:
		return dequantQ8_0
	case TypeQ2_K:
		return dequantQ2_K
	case TypeQ3_K:
		return dequantQ3_K
	case TypeQ4_K:
		return dequantQ4_K
	case TypeQ5_K:
		return dequantQ5_K
	case TypeQ6_K:
		return dequantQ6_K
	case TypeQ8_K:
		return dequantQ8_K
	case TypeIQ4_NL:
		return dequantIQ4_NL
	case TypeIQ4_XS:
		return dequantIQ4_XS
	}
	return nil
}

// Q4_0: f16 d; u8 qs[16]. Low nibbles are elements 0..15, high 16..31.
func dequantQ4_0(y []float32, b []byte) {
	d := f16(b)
	qs := b[2:18]
	for j := 0; j < 16; j++ {
		y[j] = d * float32(int(qs[j]&0xf)-8)
		y[j+16] = d * float32(int(qs[j]>>4)-8)
	}
}

// Q4_1: f16 d; f16 m; u8 qs[16]. x = d*q + m.
func dequantQ4_1(y []float32, b []byte) {
	d, m := f16(b), f16(b[2:])
	qs := b[4:20]
	for j := 0; j < 16; j++ {
		y[j] = d*float32(qs[j]&0xf) + m
		y[j+16] = d*float32(qs[j]>>4) + m
	}
}

// Q5_0: f16 d; u32 qh; u8 qs[16]. Bit j of qh is the fifth bit of
// element j. x = d*(q - 16).
func dequantQ5_0(y []float32, b []byte) {
	d := f16(b)
	qh := binary.LittleEndian.Uint32(b[2:])
	qs := b[6:22]
	for j := 0; j < 16; j++ {
		h0 := int((qh>>j)&1) << 4
		h1 := int((qh>>(j+16))&1) << 4
		y[j] = d * float32(int(qs[j]&0xf)|h0-16)
		y[j+16] = d * float32(int(qs[j]>>4)|h1-16)
	}
}

// Q5_1: f16 d; f16 m; u32 qh; u8 qs[16]. x = d*q + m.
func dequantQ5_1(y []float32, b []byte) {
	d, m := f16(b), f16(b[2:])
	qh := binary.LittleEndian.Uint32(b[4:])
	qs := b[8:24]
	for j := 0; j < 16; j++ {
		h0 := int((qh>>j)&1) << 4
		h1 := int((qh>>(j+16))&1) << 4
		y[j] = d*float32(int(qs[j]&0xf)|h0) + m
		y[j+16] = d*float32(int(qs[j]>>4)|h1) + m
	}
}

// Q8_0: f16 d; i8 qs[32].
func dequantQ8_0(y []float32, b []byte) {
	d := f16(b)
	for j := 0; j < 32; j++ {
		y[j] = d * float32(int8(b[2+j]))
	}
}

// Q2_K: u8 scales[16] (low nibble scale, high nibble min); u8 qs[64];
// f16 d; f16 dmin. Each 128-element half uses 32 quant bytes at 4 shifts;
// every 16 elements take the next scale.
func dequantQ2_K(y []float32, b []byte) {
	scales := b[0:16]
	qs := b[16:80]
	d, dmin := f16(b[80:]), f16(b[82:])
	is, o := 0, 0
	for n := 0; n < 2; n++ {
		q := qs[32*n : 32*n+32]
		for shift := uint(0); shift < 8; shift += 2 {
			for h := 0; h < 2; h++ {
				sc := scales[is]
				is++
				dl := d * float32(sc&0xf)
				ml := dmin * float32(sc>>4)
				for l := 0; l < 16; l++ {
					y[o] = dl*float32((q[16*h+l]>>shift)&3) - ml
					o++
				}
			}
		}
	}
}

// q3kScales unpacks the sixteen 6-bit signed scales of a Q3_K block.
func q3kScales(s []byte) [16]int {
	var out [16]int
	for i := 0; i < 16; i++ {
		var lo byte
		if i < 8 {
			lo = s[i] & 0xf
		} else {
			lo = s[i-8] >> 4
		}
		hi := (s[8+i%4] >> (2 * uint(i/4))) & 3
		out[i] = int(lo|hi<<4) - 32
	}
	return out
}

// Q3_K: u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d. Quant = low 2 bits
// from qs minus 4 when the hmask bit is clear.
func dequantQ3_K(y []float32, b []byte) {
	hm := b[0:32]
	qs := b[32:96]
	sc := q3kScales(b[96:108])
	d := f16(b[108:])
	is, o := 0, 0
	m := byte(1)
	for n := 0; n < 2; n++ {
		q := qs[32*n : 32*n+32]
		for shift := uint(0); shift < 8; shift += 2 {
			for h := 0; h < 2; h++ {
				dl := d * float32(sc[is])
				is++
				for l := 0; l < 16; l++ {
					v := int((q[16*h+l] >> shift) & 3)
					if hm[16*h+l]&m == 0 {
						v -= 4
					}
					y[o] = dl * float32(v)
					o++
				}
			}
			m <<= 1
		}
	}
}

// scaleMinK4 returns the 6-bit scale and min of sub-block j of a Q4_K or
// Q5_K block from its 12 packed bytes.
func scaleMinK4(j int, s []byte) (sc, m byte) {
	if j < 4 {
		return s[j] & 63, s[j+4] & 63
	}
	sc = s[j+4]&0xf | (s[j-4]>>6)<<4
	m = s[j+4]>>4 | (s[j]>>6)<<4
	return sc, m
}

// Q4_K: f16 d; f16 dmin; u8 scales[12]; u8 qs[128].
func dequantQ4_K(y []float32, b []byte) {
	d, dmin := f16(b), f16(b[2:])
	s := b[4:16]
	qs := b[16:144]
	for c := 0; c < 4; c++ {
		sc1, m1 := scaleMinK4(2*c, s)
		sc2, m2 := scaleMinK4(2*c+1, s)
		d1, dm1 := d*float32(sc1), dmin*float32(m1)
		d2, dm2 := d*float32(sc2), dmin*float32(m2)
		q := qs[32*c : 32*c+32]
		for l := 0; l < 32; l++ {
			y[64*c+l] = d1*float32(q[l]&0xf) - dm1
			y[64*c+32+l] = d2*float32(q[l]>>4) - dm2
		}
	}
}

// Q5_K: f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]. The fifth
// bit of element l of sub-block j is bit j of qh[l].
func dequantQ5_K(y []float32, b []byte) {
	d, dmin := f16(b), f16(b[2:])
	s := b[4:16]
	qh := b[16:48]
	qs := b[48:176]
	for c := 0; c < 4; c++ {
		sc1, m1 := scaleMinK4(2*c, s)
		sc2, m2 := scaleMinK4(2*c+1, s)
		d1, dm1 := d*float32(sc1), dmin*float32(m1)
		d2, dm2 := d*float32(sc2), dmin*float32(m2)
		q := qs[32*c : 32*c+32]
		u1, u2 := byte(1)<<(2*c), byte(2)<<(2*c)
		for l := 0; l < 32; l++ {
			lo := int(q[l] & 0xf)
			if qh[l]&u1 != 0 {
				lo += 16
			}
			hi := int(q[l] >> 4)
			if qh[l]&u2 != 0 {
				hi += 16
			}
			y[64*c+l] = d1*float32(lo) - dm1
			y[64*c+32+l] = d2*float32(hi) - dm2
		}
	}
}

// Q6_K: u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d.
func dequantQ6_K(y []float32, b []byte) {
	d := f16(b[208:])
	for n := 0; n < 2; n++ {
		ql := b[64*n : 64*n+64]
		qh := b[128+32*n : 128+32*n+32]
		sc := b[192+8*n : 192+8*n+8]
		out := y[128*n : 128*n+128]
		for l := 0; l < 32; l++ {
			is := l / 16
			q1 := int(ql[l]&0xf|(qh[l]&3)<<4) - 32
			q2 := int(ql[l+32]&0xf|((qh[l]>>2)&3)<<4) - 32
			q3 := int(ql[l]>>4|((qh[l]>>4)&3)<<4) - 32
			q4 := int(ql[l+32]>>4|((qh[l]>>6)&3)<<4) - 32
			out[l] = d * float32(int8(sc[is])) * float32(q1)
			out[l+32] = d * float32(int8(sc[is+2])) * float32(q2)
			out[l+64] = d * float32(int8(sc[is+4])) * float32(q3)
			out[l+96] = d * float32(int8(sc[is+6])) * float32(q4)
		}
	}
}

// Q8_K: f32 d; i8 qs[256]; i16 bsums[16].
func dequantQ8_K(y []float32, b []byte) {
	d := math.Float32frombits(binary.LittleEndian.Uint32(b))
	for j := 0; j < 256; j++ {
		y[j] = d * float32(int8(b[4+j]))
	}
}

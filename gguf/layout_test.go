package gguf

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
)

// elementFormulas give, per type, the value of element e of one block,
// written element by element straight from the format description
// (independently of the block loops in dequant.go).
var elementFormulas = map[Type]func(b []byte, e int) float64{
	TypeQ4_1: func(b []byte, e int) float64 {
		q := b[4+e%16] & 0xf
		if e >= 16 {
			q = b[4+e%16] >> 4
		}
		return h(b[0:])*float64(q) + h(b[2:])
	},
	TypeQ5_0: func(b []byte, e int) float64 {
		qh := binary.LittleEndian.Uint32(b[2:])
		q := int(b[6+e%16] & 0xf)
		if e >= 16 {
			q = int(b[6+e%16] >> 4)
		}
		q |= int(qh>>e&1) << 4
		return h(b) * float64(q-16)
	},
	TypeQ5_1: func(b []byte, e int) float64 {
		qh := binary.LittleEndian.Uint32(b[4:])
		q := int(b[8+e%16] & 0xf)
		if e >= 16 {
			q = int(b[8+e%16] >> 4)
		}
		q |= int(qh>>e&1) << 4
		return h(b)*float64(q) + h(b[2:])
	},
	TypeQ2_K: func(b []byte, e int) float64 {
		n, r := e/128, e%128
		j, l := r/32, r%32
		q := (b[16+32*n+l] >> (2 * j)) & 3
		sc := b[8*n+2*j+l/16]
		return h(b[80:])*float64(sc&15)*float64(q) - h(b[82:])*float64(sc>>4)
	},
	TypeQ3_K: func(b []byte, e int) float64 {
		n, r := e/128, e%128
		j, l := r/32, r%32
		q := int((b[32+32*n+l] >> (2 * j)) & 3)
		if b[l]>>(4*n+j)&1 == 0 {
			q -= 4
		}
		is := 8*n + 2*j + l/16
		// 6-bit scale: low 4 bits in scales[0..7] (low nibble for
		// is < 8, high nibble of is-8 otherwise), high 2 bits in
		// scales[8 + is%4] at bit 2*(is/4).
		s := b[96:108]
		lo := int(s[is%8])
		if is < 8 {
			lo &= 0xf
		} else {
			lo >>= 4
		}
		hi := int(s[8+is%4]>>(2*(is/4))) & 3
		return h(b[108:]) * float64(lo|hi<<4-32) * float64(q)
	},
	TypeQ4_K: func(b []byte, e int) float64 {
		j, l := e/32, e%32
		q := b[16+32*(j/2)+l]
		if j%2 == 0 {
			q &= 0xf
		} else {
			q >>= 4
		}
		sc, m := scaleMinSpec(j, b[4:16])
		return h(b)*float64(sc)*float64(q) - h(b[2:])*float64(m)
	},
	TypeQ5_K: func(b []byte, e int) float64 {
		j, l := e/32, e%32
		q := int(b[48+32*(j/2)+l])
		if j%2 == 0 {
			q &= 0xf
		} else {
			q >>= 4
		}
		q |= int(b[16+l]>>j&1) << 4
		sc, m := scaleMinSpec(j, b[4:16])
		return h(b)*float64(sc)*float64(q) - h(b[2:])*float64(m)
	},
	TypeQ6_K: func(b []byte, e int) float64 {
		n, r := e/128, e%128
		quarter, l := r/32, r%32 // element l + 32*quarter of half n
		var lo, hi int
		switch quarter {
		case 0:
			lo, hi = int(b[64*n+l]&0xf), int(b[128+32*n+l])&3
		case 1:
			lo, hi = int(b[64*n+l+32]&0xf), int(b[128+32*n+l]>>2)&3
		case 2:
			lo, hi = int(b[64*n+l]>>4), int(b[128+32*n+l]>>4)&3
		case 3:
			lo, hi = int(b[64*n+l+32]>>4), int(b[128+32*n+l]>>6)&3
		}
		sc := int8(b[192+e/16])
		return h(b[208:]) * float64(sc) * float64(lo|hi<<4-32)
	},
	TypeQ8_K: func(b []byte, e int) float64 {
		return float64(math.Float32frombits(binary.LittleEndian.Uint32(b))) * float64(int8(b[4+e]))
	},
}

// scaleMinSpec is the FORMATS.md Q4_K scale/min unpacking.
func scaleMinSpec(j int, s []byte) (int, int) {
	if j < 4 {
		return int(s[j] & 63), int(s[j+4] & 63)
	}
	return int(s[j+4]&0xf | (s[j-4]>>6)<<4), int(s[j+4]>>4 | (s[j]>>6)<<4)
}

func h(b []byte) float64 { return float64(F16ToF32(binary.LittleEndian.Uint16(b))) }

// scaleFields lists the f16 (or f32 for Q8_K) scale offsets of each type,
// which the test fills with finite values.
var scaleFields = map[Type][]int{
	TypeQ4_1: {0, 2}, TypeQ5_0: {0}, TypeQ5_1: {0, 2}, TypeQ2_K: {80, 82},
	TypeQ3_K: {108}, TypeQ4_K: {0, 2}, TypeQ5_K: {0, 2}, TypeQ6_K: {208},
}

func TestDequantizeLayouts(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for typ, formula := range elementFormulas {
		t.Run(typ.String(), func(t *testing.T) {
			be, bb := typ.BlockElems(), typ.BlockBytes()
			const nb = 50
			src := make([]byte, nb*bb)
			for i := range src {
				src[i] = byte(r.Uint32())
			}
			for k := 0; k < nb; k++ {
				blk := src[k*bb:]
				for _, off := range scaleFields[typ] {
					binary.LittleEndian.PutUint16(blk[off:], F32ToF16(float32(r.NormFloat64())))
				}
				if typ == TypeQ8_K {
					binary.LittleEndian.PutUint32(blk, math.Float32bits(float32(r.NormFloat64())))
				}
			}
			dst := make([]float32, nb*be)
			if err := Dequantize(dst, src, typ); err != nil {
				t.Fatal(err)
			}
			for k := 0; k < nb; k++ {
				for e := 0; e < be; e++ {
					want := formula(src[k*bb:(k+1)*bb], e)
					got := float64(dst[k*be+e])
					if math.Abs(got-want) > 1e-5*(1+math.Abs(want)) {
						t.Fatalf("block %d element %d: got %g want %g", k, e, got, want)
					}
				}
			}
		})
	}
}

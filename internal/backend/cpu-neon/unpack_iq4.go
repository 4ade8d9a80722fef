package cpuneon

import "github.com/realmrt/realm/gguf"

// unpackIQ4 expands a row of IQ4_NL or IQ4_XS blocks (src) to int8 grid
// values (gguf.IQ4NLValues, −127..113) and one f32 scale per 32
// elements, the shape of unpacked Q8_0 blocks, so the rows multiply Q8_0
// activations through dotQ8Blocks: IQ4_NL's scale is its d, an IQ4_XS
// sub-block's is d·(scale−32).
func unpackIQ4(q []int8, d []float32, src []byte, t gguf.Type) {
	grid := gguf.IQ4NLValues()
	nib := func(q []int8, qs []byte) {
		for j := 0; j < 16; j++ {
			q[j] = grid[qs[j]&0xf]
			q[j+16] = grid[qs[j]>>4]
		}
	}
	if t == gguf.TypeIQ4_NL {
		for b := range d {
			blk := src[18*b : 18*b+18]
			d[b] = gguf.F16ToF32(le16(blk))
			nib(q[32*b:32*b+32], blk[2:18])
		}
		return
	}
	for s := 0; s < len(d)/8; s++ {
		blk := src[136*s : 136*s+136]
		dd := gguf.F16ToF32(le16(blk))
		for ib := 0; ib < 8; ib++ {
			d[8*s+ib] = dd * float32(gguf.IQ4XSScale(blk, ib))
			nib(q[256*s+32*ib:256*s+32*ib+32], blk[8+16*ib:24+16*ib])
		}
	}
}

// unpackQ5K expands a row of Q5_K blocks (src) to unsigned quants
// (0..31) in element order; the scales and mins are Q4_K's.
func unpackQ5K(q []int8, src []byte) {
	for s := 0; s < len(q)/256; s++ {
		blk := src[176*s : 176*s+176]
		qh, qs := blk[16:48], blk[48:176]
		o := q[256*s : 256*s+256]
		for c := 0; c < 4; c++ {
			lo, hi := byte(1)<<(2*c), byte(2)<<(2*c)
			for l := 0; l < 32; l++ {
				v := qs[32*c+l]
				a, b := int8(v&0xf), int8(v>>4)
				if qh[l]&lo != 0 {
					a += 16
				}
				if qh[l]&hi != 0 {
					b += 16
				}
				o[64*c+l], o[64*c+32+l] = a, b
			}
		}
	}
}

package cpuavx2

import (
	"encoding/binary"
	"math"

	"github.com/realmrt/realm/gguf"
)

// q8Acts holds activation rows quantized to Q8_0 blocks (the partner of
// Q4_0 and Q8_0 weights) in a split layout: the quants of row b are
// qs[b*cols:(b+1)*cols], block i of row b has scale d[b*nb+i] (the f16
// value widened to f32) and quant sum s[b*nb+i].
type q8Acts struct {
	cols, nb int
	qs       []int8
	d        []float32
	s        []int32
	// Expanded forms for the 512-bit Q4_0 tile, filled by expand: per
	// block 8 int32 (s, then zeros) and 8 copies of d.
	cvec []int32
	dvec []float32
	qsu  []uint8 // quants + 128, for the 512-bit Q8_0 tile
	// expanded reports whether cvec, dvec and qsu hold the current
	// rows (filled on first use: the packed-weight kernels need none).
	expanded bool
	// AMX layout of the first amxGroups·16 rows (packAMX; 0: not packed).
	amxB      []int8
	amxD      []float32
	amxGroups int
	// Per group of 16 rows and block, the rows' scales and corrections
	// for the packed-weight AMX kernel (packP16; p16Groups 0: not
	// filled).
	p16D      []float32
	p16C      []int32
	p16Groups int
	p16Shift  int
}

// expand fills cvec, dvec and qsu for rows lo..hi−1.
func (a *q8Acts) expand(lo, hi int) {
	for i, q := range a.qs[lo*a.cols : hi*a.cols] {
		a.qsu[lo*a.cols+i] = uint8(q) ^ 0x80
	}
	for i := lo * a.nb; i < hi*a.nb; i++ {
		c := a.cvec[8*i : 8*i+8]
		clear(c)
		c[0] = a.s[i]
		d := a.dvec[8*i : 8*i+8]
		for j := range d {
			d[j] = a.d[i]
		}
	}
}

// q8KActs holds activation rows quantized to Q8_K super-blocks (the
// partner of Q4_K and Q6_K weights): quants qs[b*cols:], one f32 scale
// per 256 elements and the sum of each 16 quants in bsums.
type q8KActs struct {
	cols, nb int
	qs       []int8
	d        []float32
	bsums    []int16
	// AMX layout of the first amxGroups·16 rows (packAMX; 0: not
	// packed): per sub-block of 32 the quants as for q8Acts, the scale
	// and the scale times the sub-block's quant sum.
	amxB      []int8
	amxD      []float32
	amxT      []float32
	amxGroups int
	// The same for blocks of 16 (Q6_K): quants and scales.
	amxB16      []int8
	amxD16      []float32
	amxGroups16 int
	// meta has the quants' layout: per super-block its 16 bsums at byte
	// 0 and its scale at byte 32 (for the 512-bit Q4_K tile).
	meta []byte
}

// expand fills meta for rows lo..hi−1.
func (a *q8KActs) expand(lo, hi int) {
	for b := lo; b < hi; b++ {
		for i := 0; i < a.nb; i++ {
			m := a.meta[b*a.cols+i*256:]
			for j, v := range a.bsums[(b*a.nb+i)*16:][:16] {
				binary.LittleEndian.PutUint16(m[2*j:], uint16(v))
			}
			binary.LittleEndian.PutUint32(m[32:], math.Float32bits(a.d[b*a.nb+i]))
		}
	}
}

// grow returns s resized to n elements, reallocated (zeroed) only when
// its capacity is too small; the contents are otherwise kept.
func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// reset sizes a for batch rows of cols elements.
func (a *q8Acts) reset(cols, batch int) {
	a.cols, a.nb = cols, cols/32
	a.amxGroups, a.p16Groups = 0, 0
	a.qs = grow(a.qs, cols*batch)
	a.d = grow(a.d, a.nb*batch)
	a.s = grow(a.s, a.nb*batch)
	a.cvec = grow(a.cvec, 8*a.nb*batch)
	a.expanded = false
	a.dvec = grow(a.dvec, 8*a.nb*batch)
	if cap(a.qsu) < cols*batch {
		a.qsu = make([]uint8, cols*batch)
	}
	a.qsu = a.qsu[:cols*batch]
}

// quantizeRow quantizes row b from x (cols elements) the way llama.cpp
// does on x86: d = amax/127 rounded to f16, quants x·(127/amax) rounded
// half to even.
func (a *q8Acts) quantizeRow(b int, x []float32) {
	qs := a.qs[b*a.cols : (b+1)*a.cols]
	for i := 0; i < a.nb; i++ {
		blk := x[i*32 : i*32+32]
		amax := absMax(blk)
		d := amax / 127
		id := float32(0)
		if amax != 0 {
			id = 127 / amax
		}
		a.d[b*a.nb+i] = gguf.F16ToF32(gguf.F32ToF16(d))
		a.s[b*a.nb+i] = -8 * roundQuant(qs[i*32:i*32+32], blk, id)
	}
}

// reset sizes a for batch rows of cols elements (cols a multiple of 256).
func (a *q8KActs) reset(cols, batch int) {
	a.cols, a.nb = cols, cols/256
	a.amxGroups, a.amxGroups16 = 0, 0
	a.qs = grow(a.qs, cols*batch)
	a.d = grow(a.d, a.nb*batch)
	a.bsums = grow(a.bsums, a.nb*16*batch)
	if cap(a.meta) < cols*batch {
		a.meta = make([]byte, cols*batch)
	}
	a.meta = a.meta[:cols*batch]
}

// quantizeRow quantizes row b from x into Q8_K super-blocks with the
// scalar reference quantizer, gguf.QuantizeQ8KBlock (the model the
// assembly quantQ8K is tested against).
func (a *q8KActs) quantizeRow(b int, x []float32) {
	qs := a.qs[b*a.cols : (b+1)*a.cols]
	for i := 0; i < a.nb; i++ {
		k := b*a.nb + i
		a.d[k] = gguf.QuantizeQ8KBlock(qs[i*256:], a.bsums[k*16:], x[i*256:])
	}
}

// absMax returns max |v| over x.
func absMax(x []float32) float32 {
	var m float32
	for _, v := range x {
		if av := float32(math.Abs(float64(v))); av > m {
			m = av
		}
	}
	return m
}

// roundQuant stores round-half-even(x[i]·id) into q and returns the sum.
func roundQuant(q []int8, x []float32, id float32) int32 {
	var s int32
	for i, v := range x {
		r := int8(math.RoundToEven(float64(v * id)))
		q[i] = r
		s += int32(r)
	}
	return s
}

//go:build amd64

package cpuavx2

import (
	"github.com/klauspost/cpuid/v2"

	"github.com/realmrt/realm/gguf"
	"github.com/realmrt/realm/internal/engine"
)

// amxRows is the tile height: weight rows and activation rows per tile.
const amxRows = 16

// hasAMX reports whether the CPU has the AMX int8 tiles and the OS lets
// this process use them.
func hasAMX() bool {
	return cpuid.CPU.Supports(cpuid.AMXTILE, cpuid.AMXINT8, cpuid.AVX512F) && amxPermit()
}

// amxConfig is the LDTILECFG block for amxQ8Tile: palette 1; tmm0 16
// rows × 64 bytes (C, int32), tmm1 16 × 32 (A, weights), tmm2 8 × 64 (B,
// activations in VNNI layout).
func amxConfig() [64]byte {
	var c [64]byte
	c[0] = 1
	set := func(t, rows, colsb int) {
		c[16+2*t] = byte(colsb)
		c[16+2*t+1] = byte(colsb >> 8)
		c[48+t] = byte(rows)
	}
	set(0, 16, 64)
	set(1, 16, 32)
	set(2, 8, 64)
	return c
}

// amxConfig16 is the LDTILECFG block for amxK16Tile: tmm0 16 × 64 (C),
// tmm1 16 × 16 (A), tmm2 4 × 64 (B).
func amxConfig16() [64]byte {
	var c [64]byte
	c[0] = 1
	set := func(t, rows, colsb int) {
		c[16+2*t] = byte(colsb)
		c[16+2*t+1] = byte(colsb >> 8)
		c[48+t] = byte(rows)
	}
	set(0, 16, 64)
	set(1, 16, 16)
	set(2, 4, 64)
	return c
}

// amxScratch is one worker's buffers for the AMX kernel.
type amxScratch struct {
	wd    []float32 // weight scales of the current tile, [nb][16]
	wm    []float32 // Q4_K mins of the current tile, [nb][16]
	wq    []byte    // unpacked Q4_0 quants of the current tile, [nb][16][32]
	c     [amxRows * amxRows]int32
	out   [amxRows * amxRows]float32
	cfg   [64]byte // amxConfig
	cfg16 [64]byte // amxConfig16
	init  bool
}

// amxFor returns worker's AMX scratch with its tile configurations
// filled in.
func (k *Kernels) amxFor(worker int) *amxScratch {
	s := k.amx[worker]
	if !s.init {
		s.cfg, s.cfg16 = amxConfig(), amxConfig16()
		s.init = true
	}
	return s
}

// storeTransposed writes a tile result held as s.out[m*16+n] (weight row
// r0+m, activation row 16g+n) into out (activation rows of rows outputs).
func (s *amxScratch) storeTransposed(out []float32, rows, r0, g int) {
	for n := 0; n < amxRows; n++ {
		o := out[(g*amxRows+n)*rows+r0:][:amxRows]
		for m := range o {
			o[m] = s.out[m*amxRows+n]
		}
	}
}

// packAMXQuants writes groups·16 rows of quants (cols each, row-major
// in qs) in the B-tile layout for blocks of kb (32 or 16): per group of
// 16 rows and block, kb/4 rows of 64 bytes with B[k/4][4n+k%4] = quant
// k of row n.
func packAMXQuants(dst, qs []int8, cols, groups, kb int) {
	nb := cols / kb
	for g := 0; g < groups; g++ {
		for n := 0; n < amxRows; n++ {
			row := qs[(g*amxRows+n)*cols:][:cols]
			for i := 0; i < nb; i++ {
				d := dst[(g*nb+i)*16*kb:][:16*kb]
				src := row[i*kb : i*kb+kb]
				for k4 := 0; k4 < kb/4; k4++ {
					copy(d[k4*64+4*n:k4*64+4*n+4], src[4*k4:4*k4+4])
				}
			}
		}
	}
}

// packAMX16 lays out activation rows 0..groups·16−1 of a (Q8_K) for the
// 16-element tile kernel (Q6_K): quants per block of 16 and the rows'
// scales per block.
func (a *q8KActs) packAMX16(groups int) {
	cols, nbK := a.cols, a.nb
	nb := cols / 16
	a.amxB16 = grow(a.amxB16, groups*nb*256)
	a.amxD16 = grow(a.amxD16, groups*nb*16)
	packAMXQuants(a.amxB16, a.qs, cols, groups, 16)
	for g := 0; g < groups; g++ {
		for n := 0; n < amxRows; n++ {
			r := g*amxRows + n
			for s := 0; s < nb; s++ {
				a.amxD16[(g*nb+s)*16+n] = a.d[r*nbK+s/16]
			}
		}
	}
	a.amxGroups16 = groups
}

// matQ6KAMX multiplies Q6_K weights (rows a multiple of 16) by the first
// groups·16 activation rows of k.q8k with AMX tiles over blocks of 16
// (one int8 scale each): each tile of 16 weight rows is unpacked to
// int8 q−32 with f32 scales d·sc, then used for every group.
func (k *Kernels) matQ6KAMX(out []float32, w *engine.Weight, rb, groups int) {
	rows, nbK := w.Rows, w.Cols/256
	nb := nbK * 16
	if k.q8k.amxGroups16 != groups {
		k.q8k.packAMX16(groups)
	}
	a, data := &k.q8k, w.Data
	k.pool.forChunks(rows/amxRows, 1, 0, func(worker, lo, hi int) {
		s := k.amxFor(worker)
		s.wd = grow(s.wd, nb*amxRows)
		s.wq = grow(s.wq, nb*256)
		for t := lo; t < hi; t++ {
			r0 := t * amxRows
			for m := 0; m < amxRows; m++ {
				row := data[(r0+m)*rb:][:rb]
				for i := 0; i < nbK; i++ {
					blk := row[i*210 : i*210+210]
					d := gguf.F16ToF32(uint16(blk[208]) | uint16(blk[209])<<8)
					for j := 0; j < 16; j++ {
						s.wd[(16*i+j)*amxRows+m] = d * float32(int8(blk[192+j]))
					}
				}
				unpackQ6K(&s.wq[m*16], &row[0], nbK)
			}
			for g := 0; g < groups; g++ {
				amxK16Tile(&s.cfg16[0], &s.wq[0], &a.amxB16[g*nb*256], &a.amxD16[g*nb*16], &s.wd[0], nb, &s.c[0], &s.out[0])
				s.storeTransposed(out, rows, r0, g)
			}
		}
	})
}

// packAMX lays out activation rows 0..groups·16−1 of a (Q8_K) for the
// tile kernel: quants per block of 32 as packAMXQuants, per block the
// 16 rows' scales (amxD) and scales times quant sums (amxT).
func (a *q8KActs) packAMX(groups int) {
	cols, nbK := a.cols, a.nb
	nb := cols / 32
	a.amxB = grow(a.amxB, groups*nb*512)
	a.amxD = grow(a.amxD, groups*nb*16)
	a.amxT = grow(a.amxT, groups*nb*16)
	packAMXQuants(a.amxB, a.qs, cols, groups, 32)
	for g := 0; g < groups; g++ {
		for n := 0; n < amxRows; n++ {
			r := g*amxRows + n
			for s := 0; s < nb; s++ {
				d := a.d[r*nbK+s/8]
				bs := a.bsums[r*nbK*16+2*s:]
				a.amxD[(g*nb+s)*16+n] = d
				a.amxT[(g*nb+s)*16+n] = d * float32(int32(bs[0])+int32(bs[1]))
			}
		}
	}
	a.amxGroups = groups
}

// matQ4KAMX multiplies Q4_K weights (rows a multiple of 16) by the first
// groups·16 activation rows of k.q8k with AMX tiles: each tile of 16
// weight rows is unpacked to bytes 0..15 per sub-block of 32 with f32
// scales d·sc and mins dmin·m, then used for every group.
func (k *Kernels) matQ4KAMX(out []float32, w *engine.Weight, rb, groups int) {
	rows, nbK := w.Rows, w.Cols/256
	nb := nbK * 8
	if k.q8k.amxGroups != groups {
		k.q8k.packAMX(groups)
	}
	a, data := &k.q8k, w.Data
	k.pool.forChunks(rows/amxRows, 1, 0, func(worker, lo, hi int) {
		s := k.amxFor(worker)
		s.wd = grow(s.wd, nb*amxRows)
		s.wm = grow(s.wm, nb*amxRows)
		s.wq = grow(s.wq, nb*512)
		for t := lo; t < hi; t++ {
			r0 := t * amxRows
			for m := 0; m < amxRows; m++ {
				row := data[(r0+m)*rb:][:rb]
				for i := 0; i < nbK; i++ {
					blk := row[i*144 : i*144+16]
					d := gguf.F16ToF32(uint16(blk[0]) | uint16(blk[1])<<8)
					dmin := gguf.F16ToF32(uint16(blk[2]) | uint16(blk[3])<<8)
					for j := 0; j < 8; j++ {
						sc, mn := kScaleMin(blk[4:16], j)
						s.wd[(8*i+j)*amxRows+m] = d * float32(sc)
						s.wm[(8*i+j)*amxRows+m] = dmin * float32(mn)
					}
				}
				unpackQ4K(&s.wq[m*32], &row[0], nbK)
			}
			for g := 0; g < groups; g++ {
				amxQ4KTile(&s.cfg[0], &s.wq[0], 32, 512, &a.amxB[g*nb*512], &a.amxD[g*nb*16], &s.wd[0], nb, &s.c[0], &s.out[0], &s.wm[0], &a.amxT[g*nb*16])
				s.storeTransposed(out, rows, r0, g)
			}
		}
	})
}

// packAMX lays out activation rows 0..groups·16−1 of a for the tile
// kernel: per group of 16 rows and block, the 32×16 quants as 8 rows of
// 64 bytes (B[k/4][4n+k%4]) and the 16 scales.
func (a *q8Acts) packAMX(groups int) {
	nb := a.nb
	a.amxB = grow(a.amxB, groups*nb*512)
	a.amxD = grow(a.amxD, groups*nb*16)
	packAMXQuants(a.amxB, a.qs, a.cols, groups, 32)
	for g := 0; g < groups; g++ {
		for n := 0; n < amxRows; n++ {
			d := a.d[(g*amxRows+n)*nb:][:nb]
			for i, v := range d {
				a.amxD[(g*nb+i)*16+n] = v
			}
		}
	}
	a.amxGroups = groups
}

// matQ8AMX multiplies Q8_0 or Q4_0 weights (rows a multiple of 16) by
// the first groups·16 activation rows of k.q8 with AMX tiles. Q8_0
// quants are read in place; Q4_0 rows are unpacked to int8 one tile (16
// rows) at a time into the worker's scratch, then used for every group.
func (k *Kernels) matQ8AMX(out []float32, w *engine.Weight, rb, groups int) {
	rows, nb := w.Rows, w.Cols/32
	if k.q8.amxGroups != groups {
		k.q8.packAMX(groups)
	}
	q4 := w.Type == gguf.TypeQ4_0
	bb := w.Type.BlockBytes()
	a, data := &k.q8, w.Data
	k.pool.forChunks(rows/amxRows, 1, 0, func(worker, lo, hi int) {
		s := k.amxFor(worker)
		s.wd = grow(s.wd, nb*amxRows)
		if q4 {
			s.wq = grow(s.wq, nb*512)
		}
		for t := lo; t < hi; t++ {
			r0 := t * amxRows
			for m := 0; m < amxRows; m++ {
				row := data[(r0+m)*rb:]
				cvtF16Strided(&s.wd[m], 4*amxRows, &row[0], bb, nb)
				if q4 {
					unpackQ4_0(&s.wq[m*32], &row[0], nb)
				}
			}
			wp, stride, step := &data[r0*rb+2], rb, bb
			if q4 {
				wp, stride, step = &s.wq[0], 32, 512
			}
			for g := 0; g < groups; g++ {
				amxQ8Tile(&s.cfg[0], wp, stride, step, &a.amxB[g*nb*512], &a.amxD[g*nb*16], &s.wd[0], nb, &s.c[0], &s.out[0])
				s.storeTransposed(out, rows, r0, g)
			}
		}
	})
}

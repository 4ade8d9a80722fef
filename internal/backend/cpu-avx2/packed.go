//go:build amd64

package cpuavx2

import (
	"encoding/binary"
	"fmt"
	"unsafe"

	"github.com/realmrt/realm/gguf"
	"github.com/realmrt/realm/internal/engine"
)

// layoutP16 marks (engine.Weight.Layout) Q4_0/Q8_0 weights stored in the
// packed layout of packRows: rows are taken in groups of 16; a group of
// nb blocks holds first the 16 rows' f16 scales of each block (nb × 32
// bytes, row n of block i at 32i+2n), then each block's quants as
// chunks of 64 bytes, 4 bytes of each row (chunk c, row n: bytes
// 4c..4c+3 of the row's quants; Q8_0 quants stored as unsigned q+128).
// A group takes exactly the bytes its 16 rows take in the GGUF layout;
// rows past the last whole group stay in the GGUF layout, in place.
//
// The layout lets the matrix–vector kernels (dotQ4_0P16, dotQ8_0P16)
// multiply 16 rows at once with one VPDPBUSD per 4 weights of every row
// and the activations broadcast from memory, instead of one row at a
// time with horizontal sums and a scale conversion per block and row.
//
// Q4_K weights (packRowsQ4K) are packed per group of 16 rows and
// super-block of 256 weights: the group's super-block i (16 × 144 bytes,
// at i·2304 in the group) holds the 16 rows' f16 d (bytes 0..31, row n
// at 2n) and dmin (32..63), their 12 GGUF scale bytes (byte k of row n
// at 64+16k+n), then the quants as 32 chunks of 64 bytes (chunk c, row
// n at 256+64c+4n: quant bytes 4c..4c+3 of the row). Again exactly the
// bytes of the GGUF layout; the kernels (dotQ4KP16, dotQ4KP16x4) unpack
// the 6-bit scales and mins of 16 rows at once.
//
// Q6_K weights (packRowsQ6K): per group and super-block (16 × 210 bytes
// at i·3360) the 16 rows' f16 d (row n at 2n), the int8 scales in pairs
// (scales 2k and 2k+1 of row n at 32+32k+2n), then per sub-block j of 16
// weights three 64-byte vectors P, Q, R (row n at 288+192j+64v+4n) whose
// bytes hold the 6-bit quants of weights 16j+b, 16j+4+b and 16j+8+b in
// bits 0..5 and the quant of weight 16j+12+b two bits in each of their
// bits 6..7 (P the low two): the same bytes as the GGUF layout, and each
// 4 weights of 16 rows are one 64-byte vector after at most two selects
// (dotQ6KP16, dotQ6KP16x4).
const layoutP16 = 1

// packGroup is the number of rows that the packed layout interleaves.
const packGroup = 16

// packable reports whether w can be stored in the packed layout.
func packable(w *engine.Weight) bool {
	blk := 32
	switch w.Type {
	case gguf.TypeQ4_0, gguf.TypeQ8_0:
	case gguf.TypeQ4_K, gguf.TypeQ6_K:
		blk = 256
	default:
		return false
	}
	return w.Layout == 0 && w.Rows >= packGroup && w.Cols > 0 && w.Cols%blk == 0 && len(w.Data) == w.Rows*w.RowBytes()
}

// packs reports whether PrepareWeights stores w in the packed layout:
// a packable weight with the VNNI kernels, except Q4_K and Q6_K where
// the AMX tiles (matQ4KAMX, matQ6KAMX) read the GGUF layout.
func (k *Kernels) packs(w *engine.Weight) bool {
	kq := w.Type == gguf.TypeQ4_K || w.Type == gguf.TypeQ6_K
	return k.repack && packable(w) && (!kq || k.amx == nil)
}

// packParams returns the block size in bytes, the quant bytes per
// block and the value XORed into each quant byte for w's type.
func packParams(t gguf.Type) (bb, qb int, flip uint32) {
	if t == gguf.TypeQ8_0 {
		return 34, 32, 0x80808080
	}
	return 18, 16, 0
}

// packRows writes src (w's rows in the GGUF layout) into dst (the same
// length) in the packed layout. It runs once per weight at load; the
// inner loop goes block by block over the group's 16 rows so that the
// destination is written in order (unaligned 4-byte moves through
// unsafe: 2.4–3.2× the speed of the bounds-checked form, 4–5.4 GB/s
// on one core; BenchmarkPackRows).
func packRows(dst, src []byte, t gguf.Type, rows, cols int) {
	switch t {
	case gguf.TypeQ4_K:
		packRowsQ4K(dst, src, rows, cols)
		return
	case gguf.TypeQ6_K:
		packRowsQ6K(dst, src, rows, cols)
		return
	}
	bb, qb, flip := packParams(t)
	nb := cols / 32
	rb := nb * bb
	full := rows / packGroup * packGroup
	if len(dst) < rows*rb || len(src) < rows*rb {
		panic(fmt.Sprintf("cpuavx2: packRows: %d and %d bytes for %d rows of %d", len(dst), len(src), rows, rb))
	}
	for g := 0; g < full; g += packGroup {
		sp := unsafe.Pointer(&src[g*rb])
		dp := unsafe.Pointer(&dst[g*rb])
		qp := unsafe.Add(dp, nb*32)
		for i := 0; i < nb; i++ {
			for n := 0; n < packGroup; n++ {
				blk := unsafe.Add(sp, n*rb+i*bb)
				*(*uint16)(unsafe.Add(dp, 32*i+2*n)) = *(*uint16)(blk)
				for c := 0; c < qb/4; c++ {
					*(*uint32)(unsafe.Add(qp, 64*c+4*n)) = *(*uint32)(unsafe.Add(blk, 2+4*c)) ^ flip
				}
			}
			qp = unsafe.Add(qp, 16*qb)
		}
	}
	copy(dst[full*rb:rows*rb], src[full*rb:rows*rb])
}

// packedRow writes row r of the packed weight w into dst (one row of
// w.RowBytes() bytes) in the GGUF layout and returns it.
func packedRow(dst []byte, w *engine.Weight, r int) []byte {
	switch w.Type {
	case gguf.TypeQ4_K:
		return packedRowQ4K(dst, w, r)
	case gguf.TypeQ6_K:
		return packedRowQ6K(dst, w, r)
	}
	bb, qb, flip := packParams(w.Type)
	nb := w.Cols / 32
	rb := nb * bb
	dst = dst[:rb]
	g := r / packGroup * packGroup
	if g+packGroup > w.Rows {
		return w.Data[r*rb : (r+1)*rb]
	}
	src := w.Data[g*rb : (g+packGroup)*rb]
	sc, q := src[:nb*32], src[nb*32:]
	n := r - g
	for i := 0; i < nb; i++ {
		blk := dst[i*bb : (i+1)*bb]
		blk[0], blk[1] = sc[32*i+2*n], sc[32*i+2*n+1]
		qs := q[i*16*qb : (i+1)*16*qb]
		for c := 0; c < qb/4; c++ {
			v := binary.LittleEndian.Uint32(qs[64*c+4*n:]) ^ flip
			binary.LittleEndian.PutUint32(blk[2+4*c:], v)
		}
	}
	return dst
}

// matP16 multiplies a packed Q4_0/Q8_0 weight by the batch activation
// rows in k.q8: whole groups of 16 rows through the AMX tiles where
// available, the rest with the AVX-512 kernels.
func (k *Kernels) matP16(out []float32, w *engine.Weight, rb, batch int) {
	b0 := 0
	if k.amx != nil && batch >= amxRows && w.Rows%packGroup == 0 {
		b0 = batch / amxRows * amxRows
		k.matP16AMX(out, w, rb, b0/amxRows)
	}
	k.matPacked(out, w, rb, b0, batch)
}

// matPacked multiplies a packed Q4_0/Q8_0 weight by activation rows
// b0..batch−1 of k.q8: per group of 16 weight rows, 4 activation rows at
// a time (dotQ4_0P16x4), then one at a time. Rows past the last whole
// group (in the GGUF layout) use the one-row VNNI kernels.
func (k *Kernels) matPacked(out []float32, w *engine.Weight, rb, b0, batch int) {
	if b0 >= batch {
		return
	}
	rows, cols, nb := w.Rows, w.Cols, w.Cols/32
	groups := rows / packGroup
	dot, dot4 := dotQ4_0P16, dotQ4_0P16x4
	if w.Type == gguf.TypeQ8_0 {
		dot, dot4 = dotQ8_0P16, dotQ8_0P16x4
	}
	a, data := &k.q8, w.Data
	gb := packGroup * rb
	// Generation streams the weight once: long chunks (see rowChunk).
	// Batches reuse each group from cache: one group per work item.
	chunk := 1
	if batch-b0 < 4 {
		chunk = max((k.rowChunk(rows, 1)+packGroup-1)/packGroup, 1)
	}
	k.pool.forChunks(groups, chunk, 0, func(_, lo, hi int) {
		for g := lo; g < hi; g++ {
			wg := &data[g*gb]
			b := b0
			for ; b+4 <= batch; b += 4 {
				dot4(wg, nb, &a.qs[b*cols], cols, &a.s[b*nb], &a.d[b*nb], 4*nb, &out[b*rows+g*packGroup], 4*rows)
			}
			for ; b < batch; b++ {
				dot(wg, nb, &a.qs[b*cols], &a.s[b*nb], &a.d[b*nb], &out[b*rows+g*packGroup])
			}
		}
	})
	for r := groups * packGroup; r < rows; r++ {
		for b := b0; b < batch; b++ {
			qs, cn, dx := &a.qs[b*cols], &a.s[b*nb], &a.d[b*nb]
			if w.Type == gguf.TypeQ8_0 {
				out[b*rows+r] = dotQ8_0VNNI(&data[r*rb], qs, dx, nb)
			} else {
				out[b*rows+r] = dotQ4_0VNNIU(&data[r*rb], qs, dx, cn, nb)
			}
		}
	}
}

// matP16AMX multiplies a packed Q4_0/Q8_0 weight (rows a multiple of
// 16) by the first groups·16 activation rows of k.q8 with AMX tiles,
// the weights as the B operand: a packed Q8_0 group is already in the B
// tile layout and is read in place; a Q4_0 group's nibbles are split
// into the worker's scratch once and used for every activation group.
func (k *Kernels) matP16AMX(out []float32, w *engine.Weight, rb, groups int) {
	rows, cols, nb := w.Rows, w.Cols, w.Cols/32
	a := &k.q8
	shift := 0
	if w.Type == gguf.TypeQ8_0 {
		shift = 4
	}
	a.packP16(groups, shift)
	q4 := w.Type == gguf.TypeQ4_0
	gb := packGroup * rb
	k.pool.forChunks(rows/packGroup, 1, 0, func(worker, lo, hi int) {
		s := k.amxFor(worker)
		if q4 {
			s.wq = grow(s.wq, nb*512)
		}
		for t := lo; t < hi; t++ {
			grp := w.Data[t*gb : (t+1)*gb]
			wq := &grp[nb*32]
			if q4 {
				unpackP16Q4(&s.wq[0], wq, nb)
				wq = &s.wq[0]
			}
			for g := 0; g < groups; g++ {
				amxP16Tile(&s.cfg[0], wq, &a.qs[g*amxRows*cols], cols, &grp[0], &a.p16D[g*nb*amxRows], &a.p16C[g*nb*amxRows], nb, &s.c[0], &s.out[0])
				for m := 0; m < amxRows; m++ {
					copy(out[(g*amxRows+m)*rows+t*packGroup:][:packGroup], s.out[m*amxRows:(m+1)*amxRows])
				}
			}
		}
	})
}

// packP16 fills p16D and p16C for the first groups·16 rows: per group
// and block, the 16 rows' scales and corrections (the unsigned weight
// offset, 8 or 128, times minus the quant sum: a.s << shift, a.s being
// −8·Σq). Q, K and V (and gate and up) share one input: kept until the
// activations or the shift change.
func (a *q8Acts) packP16(groups, shift int) {
	if a.p16Groups == groups && a.p16Shift == shift {
		return
	}
	nb := a.nb
	n := groups * amxRows * nb
	a.p16D = grow(a.p16D, n)
	a.p16C = grow(a.p16C, n)
	for g := 0; g < groups; g++ {
		for m := 0; m < amxRows; m++ {
			r := g*amxRows + m
			d, c := a.d[r*nb:(r+1)*nb], a.s[r*nb:(r+1)*nb]
			for i := range d {
				a.p16D[(g*nb+i)*amxRows+m] = d[i]
				a.p16C[(g*nb+i)*amxRows+m] = c[i] << shift
			}
		}
	}
	a.p16Groups, a.p16Shift = groups, shift
}

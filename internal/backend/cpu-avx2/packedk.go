//go:build amd64

package cpuavx2

import (
	"fmt"
	"unsafe"

	"github.com/realmrt/realm/internal/engine"
)

// Q4_K super-block geometry: 256 weights in 144 bytes (f16 d and dmin,
// 12 scale bytes, 128 quant bytes); a packed group's super-block takes
// 16 × 144 bytes (see layoutP16).
const (
	q4kBlock   = 144
	q4kScales  = 4
	q4kQuants  = 16
	q4kPScales = 64
	q4kPQuants = 256
	q4kPBlock  = packGroup * q4kBlock
)

// packRowsQ4K is packRows for Q4_K weights (cols a multiple of 256).
func packRowsQ4K(dst, src []byte, rows, cols int) {
	nb := cols / 256
	rb := nb * q4kBlock
	full := rows / packGroup * packGroup
	if len(dst) < rows*rb || len(src) < rows*rb {
		panic(fmt.Sprintf("cpuavx2: packRows: %d and %d bytes for %d rows of %d", len(dst), len(src), rows, rb))
	}
	for g := 0; g < full; g += packGroup {
		sp := unsafe.Pointer(&src[g*rb])
		dp := unsafe.Pointer(&dst[g*rb])
		for i := 0; i < nb; i++ {
			for n := 0; n < packGroup; n++ {
				blk := unsafe.Add(sp, n*rb+i*q4kBlock)
				*(*uint16)(unsafe.Add(dp, 2*n)) = *(*uint16)(blk)
				*(*uint16)(unsafe.Add(dp, 32+2*n)) = *(*uint16)(unsafe.Add(blk, 2))
				for j := 0; j < 12; j++ {
					*(*byte)(unsafe.Add(dp, q4kPScales+16*j+n)) = *(*byte)(unsafe.Add(blk, q4kScales+j))
				}
				for c := 0; c < 32; c++ {
					*(*uint32)(unsafe.Add(dp, q4kPQuants+64*c+4*n)) = *(*uint32)(unsafe.Add(blk, q4kQuants+4*c))
				}
			}
			dp = unsafe.Add(dp, q4kPBlock)
		}
	}
	copy(dst[full*rb:rows*rb], src[full*rb:rows*rb])
}

// packedRowQ4K is packedRow for a packed Q4_K weight.
func packedRowQ4K(dst []byte, w *engine.Weight, r int) []byte {
	nb := w.Cols / 256
	rb := nb * q4kBlock
	g := r / packGroup * packGroup
	if g+packGroup > w.Rows {
		return w.Data[r*rb : (r+1)*rb]
	}
	dst = dst[:rb]
	src := w.Data[g*rb : (g+packGroup)*rb]
	n := r - g
	for i := 0; i < nb; i++ {
		p := src[i*q4kPBlock : (i+1)*q4kPBlock]
		blk := dst[i*q4kBlock : (i+1)*q4kBlock]
		blk[0], blk[1] = p[2*n], p[2*n+1]
		blk[2], blk[3] = p[32+2*n], p[32+2*n+1]
		for j := 0; j < 12; j++ {
			blk[q4kScales+j] = p[q4kPScales+16*j+n]
		}
		for c := 0; c < 32; c++ {
			copy(blk[q4kQuants+4*c:q4kQuants+4*c+4], p[q4kPQuants+64*c+4*n:])
		}
	}
	return dst
}

// matPackedQ4K multiplies a packed Q4_K weight by the batch activation
// rows in k.q8k: per group of 16 weight rows, 4 activation rows at a
// time (dotQ4KP16x4), then one at a time (dotQ4KP16). Rows past the
// last whole group (in the GGUF layout) use dotQ4K.
func (k *Kernels) matPackedQ4K(out []float32, w *engine.Weight, rb, batch int) {
	rows, cols, nb := w.Rows, w.Cols, w.Cols/256
	groups := rows / packGroup
	a, data := &k.q8k, w.Data
	gb := packGroup * rb
	// As matPacked: long chunks for generation, one group per work item
	// for batches.
	chunk := 1
	if batch < 4 {
		chunk = max((k.rowChunk(rows, 1)+packGroup-1)/packGroup, 1)
	}
	k.pool.forChunks(groups, chunk, 0, func(_, lo, hi int) {
		for g := lo; g < hi; g++ {
			wg := &data[g*gb]
			b := 0
			for ; b+4 <= batch; b += 4 {
				dotQ4KP16x4(wg, nb, &a.qs[b*cols], cols, &a.d[b*nb], 4*nb, &a.bsums[b*nb*16], 32*nb, &out[b*rows+g*packGroup], 4*rows)
			}
			for ; b < batch; b++ {
				dotQ4KP16(wg, nb, &a.qs[b*cols], &a.d[b*nb], &a.bsums[b*nb*16], &out[b*rows+g*packGroup])
			}
		}
	})
	for r := groups * packGroup; r < rows; r++ {
		for b := 0; b < batch; b++ {
			out[b*rows+r] = dotQ4K(&data[r*rb], &a.qs[b*cols], &a.d[b*nb], &a.bsums[b*nb*16], nb)
		}
	}
}

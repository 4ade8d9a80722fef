package cpuneon

import (
	"fmt"
	"unsafe"

	"github.com/realmrt/realm/gguf"
	"github.com/realmrt/realm/internal/engine"
)

// scratch is one worker's reusable buffers.
type scratch struct {
	q   []int8    // unpacked weight quants of one row
	d   []float32 // per-block weight scales of one row
	f   []float32 // one dequantized/converted weight row
	dot []int32   // per-16 integer dot products of a weight row with up to 4 activation rows
	sc  []int32   // decoded K-quant sub-block scales (and mins) of one row
	_   [64]byte  // keep workers' headers on separate cache lines
}

// buffers returns the scratch of worker w, sized for rows of cols elements.
func (k *Kernels) buffers(w, cols int) *scratch {
	s := &k.scratch[w]
	s.q = grow(s.q, cols)
	s.d = grow(s.d, cols/32+1)
	s.f = grow(s.f, cols)
	s.dot = grow(s.dot, 4*(cols/16))
	s.sc = grow(s.sc, cols/16*2)
	return s
}

// MatMul computes out[b*w.Rows+r] = Σ_k w[r][k]·x[b*w.Cols+k]. Q4_0,
// Q8_0, IQ4_NL and IQ4_XS weights multiply Q8_0-quantized activations,
// Q4_K, Q5_K and Q6_K weights Q8_K-quantized ones, F16 weights f16-rounded ones (as llama.cpp does);
// F32 weights use the activations as they are, and other types are
// dequantized row by row. It panics when the slices are too short for
// the shapes, which is a bug in the caller.
func (k *Kernels) MatMul(out []float32, w *engine.Weight, x []float32, batch int) {
	if batch <= 0 || w.Rows <= 0 {
		return
	}
	rb := w.RowBytes()
	if rb == 0 && w.Cols > 0 {
		panic(fmt.Sprintf("cpuneon: MatMul %s: %s rows of %d elements are not supported", w.Name, w.Type, w.Cols))
	}
	if len(w.Data) < w.Rows*rb || len(x) < batch*w.Cols || len(out) < batch*w.Rows {
		panic(fmt.Sprintf("cpuneon: MatMul %s: short slices (data %d < %d·%d, x %d < %d·%d or out %d < %d·%d)",
			w.Name, len(w.Data), w.Rows, rb, len(x), batch, w.Cols, len(out), batch, w.Rows))
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	cols := w.Cols
	switch w.Type {
	case gguf.TypeF32:
		wf := unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(w.Data))), w.Rows*cols)
		k.parallelRows(w.Rows, cols, func(s *scratch, lo, hi int) {
			for r := lo; r < hi; r++ {
				k.rowF32(out, wf[r*cols:(r+1)*cols], x, r, w.Rows, batch)
			}
			k.count(simdF32Path, (hi-lo)*batch)
		})
	case gguf.TypeF16:
		xh := k.roundF16(x[:batch*cols])
		k.parallelRows(w.Rows, cols, func(s *scratch, lo, hi int) {
			for r := lo; r < hi; r++ {
				f16RowToF32(s.f, w.Data[r*rb:(r+1)*rb])
				k.rowF32(out, s.f, xh, r, w.Rows, batch)
			}
			k.count(simdF16Path, (hi-lo)*batch)
		})
	case gguf.TypeQ4_0, gguf.TypeQ8_0, gguf.TypeIQ4_NL, gguf.TypeIQ4_XS:
		a := k.quantizeActs(x, batch, cols, false)
		nb := cols / 32
		k.parallelRows(w.Rows, cols, func(s *scratch, lo, hi int) {
			for r := lo; r < hi; r++ {
				row := w.Data[r*rb : (r+1)*rb]
				switch w.Type {
				case gguf.TypeQ4_0:
					unpackQ4_0(s.q, s.d[:nb], row)
				case gguf.TypeQ8_0:
					unpackQ8_0(s.q, s.d[:nb], row)
				default:
					unpackIQ4(s.q, s.d[:nb], row, w.Type)
				}
				b := 0
				var o4 [4]float32
				for ; b+4 <= batch; b += 4 { // 1×4 tile: one weight load, four activation rows
					dotQ8Blocks4(&o4, s.q, s.d[:nb], a.qs[b*cols:(b+4)*cols], a.d[b*nb:(b+4)*nb], k.dot)
					for i, v := range o4 {
						out[(b+i)*w.Rows+r] = v
					}
				}
				for ; b < batch; b++ {
					out[b*w.Rows+r] = dotQ8Blocks(s.q, s.d[:nb], a.qs[b*cols:(b+1)*cols], a.d[b*nb:(b+1)*nb], k.dot)
				}
			}
			k.count(intPath(k.dot), (hi-lo)*batch)
		})
	case gguf.TypeQ4_K, gguf.TypeQ5_K:
		// Q5_K is Q4_K with 5-bit quants: the same scales, mins and
		// integer kernels once unpacked (31·127 still fits SMULL's int16).
		a := k.quantizeActs(x, batch, cols, true)
		nb := cols / 256
		bb := w.Type.BlockBytes()
		k.parallelRows(w.Rows, cols, func(s *scratch, lo, hi int) {
			var sc, m [8]int32
			for r := lo; r < hi; r++ {
				row := w.Data[r*rb : (r+1)*rb]
				if w.Type == gguf.TypeQ5_K {
					unpackQ5K(s.q, row)
				} else {
					unpackQ4K(s.q, row)
				}
				for i := 0; i < nb; i++ {
					blk := row[i*bb:]
					s.d[2*i], s.d[2*i+1] = gguf.F16ToF32(le16(blk)), gguf.F16ToF32(le16(blk[2:]))
					q4kScales(blk[4:16], &sc, &m)
					copy(s.sc[16*i:], sc[:])
					copy(s.sc[16*i+8:], m[:])
				}
				k.batchInt(s, a, out, r, w.Rows, batch, cols, func(dt []int32, b int) float32 {
					return combineQ4K(dt, s, a, b, nb)
				}, func(b int) float32 {
					return dotQ4K(s.q, a.qs[b*cols:(b+1)*cols], s.sc[:16*nb], s.d[:2*nb], a.d[b*nb:(b+1)*nb], a.bsums[b*nb*16:(b+1)*nb*16], k.dot)
				})
			}
			k.count(intPath(k.dot), (hi-lo)*batch)
		})
	case gguf.TypeQ6_K:
		a := k.quantizeActs(x, batch, cols, true)
		nb := cols / 256
		k.parallelRows(w.Rows, cols, func(s *scratch, lo, hi int) {
			for r := lo; r < hi; r++ {
				row := w.Data[r*rb : (r+1)*rb]
				unpackQ6K(s.q, row)
				for i := 0; i < nb; i++ {
					blk := row[i*210:]
					s.d[i] = gguf.F16ToF32(le16(blk[208:]))
					for j := 0; j < 16; j++ {
						s.sc[16*i+j] = int32(int8(blk[192+j]))
					}
				}
				k.batchInt(s, a, out, r, w.Rows, batch, cols, func(dt []int32, b int) float32 {
					return combineQ6K(dt, s, a, b, nb)
				}, func(b int) float32 {
					return dotQ6K(s.q, a.qs[b*cols:(b+1)*cols], s.sc[:16*nb], s.d[:nb], a.d[b*nb:(b+1)*nb], k.dot)
				})
			}
			k.count(intPath(k.dot), (hi-lo)*batch)
		})
	default:
		k.parallelRows(w.Rows, cols, func(s *scratch, lo, hi int) {
			for r := lo; r < hi; r++ {
				if err := dequantRow(s.f, w.Data[r*rb:(r+1)*rb], w.Type); err != nil {
					panic(fmt.Sprintf("cpuneon: MatMul %s: %v", w.Name, err))
				}
				k.rowF32(out, s.f, x, r, w.Rows, batch)
			}
			k.count(PathDequant, (hi-lo)*batch)
		})
	}
}

// batchInt computes output row r for all batch rows from the unpacked
// K-quant weight row in s.q: per-16 integer dots four activation rows at
// a time (one pass over the weight row per 1×4 tile), then combine
// applies the block scales for activation row b; the remaining rows (all
// of them for batch < 4, e.g. every decode step) use single, the fused
// one-row kernel.
func (k *Kernels) batchInt(s *scratch, a *q8Act, out []float32, r, rows, batch, cols int, combine func(dt []int32, b int) float32, single func(b int) float32) {
	n16 := cols / 16
	b := 0
	for ; b+4 <= batch; b += 4 {
		dotI8x16x4(s.q, a.qs[b*cols:(b+4)*cols], s.dot[:4*n16], k.dot)
		for i := 0; i < 4; i++ {
			out[(b+i)*rows+r] = combine(s.dot[i*n16:(i+1)*n16], b+i)
		}
	}
	for ; b < batch; b++ {
		out[b*rows+r] = single(b)
	}
}

// combineQ4K applies the Q4_K scales and mins (decoded into s.d and s.sc)
// to the per-16 dots dt of activation row b.
func combineQ4K(dt []int32, s *scratch, a *q8Act, b, nb int) float32 {
	var sum float32
	for i := 0; i < nb; i++ {
		d16 := dt[16*i : 16*i+16]
		bs := a.bsums[(b*nb+i)*16 : (b*nb+i)*16+16]
		scs := s.sc[16*i : 16*i+16]
		var sumi, mins int32
		for j := 0; j < 8; j++ {
			sumi += scs[j] * (d16[2*j] + d16[2*j+1])
			mins += scs[8+j] * (bs[2*j] + bs[2*j+1])
		}
		yd := a.d[b*nb+i]
		sum += (s.d[2*i]*yd)*float32(sumi) - (s.d[2*i+1]*yd)*float32(mins)
	}
	return sum
}

// combineQ6K applies the Q6_K scales (decoded into s.d and s.sc) to the
// per-16 dots dt of activation row b.
func combineQ6K(dt []int32, s *scratch, a *q8Act, b, nb int) float32 {
	var sum float32
	for i := 0; i < nb; i++ {
		d16 := dt[16*i : 16*i+16]
		scs := s.sc[16*i : 16*i+16]
		var sumi int32
		for j := 0; j < 16; j++ {
			sumi += scs[j] * d16[j]
		}
		sum += (s.d[i] * a.d[b*nb+i]) * float32(sumi)
	}
	return sum
}

// rowF32 computes one output row r for all batch rows against the f32
// weight row wr, four activation rows per pass over wr.
func (k *Kernels) rowF32(out, wr, x []float32, r, rows, batch int) {
	cols := len(wr)
	b := 0
	var o4 [4]float32
	for ; b+4 <= batch; b += 4 {
		dotF32x4(&o4, wr, x[b*cols:(b+4)*cols], cols)
		for i, v := range o4 {
			out[(b+i)*rows+r] = v
		}
	}
	for ; b < batch; b++ {
		out[b*rows+r] = dotF32(wr, x[b*cols:(b+1)*cols])
	}
}

// parallelRows splits rows among the workers, each with its scratch.
func (k *Kernels) parallelRows(rows, cols int, fn func(s *scratch, lo, hi int)) {
	min := 1
	if cols < 1024 {
		min = 4
	}
	for w := range k.scratch {
		k.buffers(w, cols)
	}
	k.pool.parallel(rows, k.pool.chunkFor(rows, min), func(w, lo, hi int) {
		fn(&k.scratch[w], lo, hi)
	})
}

// roundF16 returns x with every element rounded to binary16 precision
// (llama.cpp converts the activations of an F16 matmul to f16).
func (k *Kernels) roundF16(x []float32) []float32 {
	k.xh = grow(k.xh, len(x))
	roundF16(k.xh, x)
	return k.xh
}

// quantizeActs quantizes batch rows of cols activations to Q8_0 (kq
// false) or Q8_K (kq true) into the kernels' activation buffer.
func (k *Kernels) quantizeActs(x []float32, batch, cols int, kq bool) *q8Act {
	a := &k.act
	a.qs = grow(a.qs, batch*cols)
	bl := 32
	if kq {
		bl = 256
		a.bsums = grow(a.bsums, batch*cols/16)
	}
	a.d = grow(a.d, batch*cols/bl)
	k.pool.parallel(batch, 1, func(_, lo, hi int) {
		for b := lo; b < hi; b++ {
			xr := x[b*cols : (b+1)*cols]
			q := a.qs[b*cols : (b+1)*cols]
			d := a.d[b*cols/bl : (b+1)*cols/bl]
			if kq {
				quantizeQ8_K(q, d, a.bsums[b*cols/16:(b+1)*cols/16], xr)
			} else {
				quantizeQ8_0(q, d, xr)
			}
		}
	})
	return a
}

// GetRows dequantizes rows ids[i] of w into out[i*w.Cols:(i+1)*w.Cols].
// It panics on an out-of-range id or an unsupported type (a caller bug).
func (k *Kernels) GetRows(out []float32, w *engine.Weight, ids []int32) {
	rb := w.RowBytes()
	for i, id := range ids {
		if id < 0 || int(id) >= w.Rows {
			panic(fmt.Sprintf("cpuneon: GetRows %s: row %d out of range [0,%d)", w.Name, id, w.Rows))
		}
		if err := dequantRow(out[i*w.Cols:(i+1)*w.Cols], w.Data[int(id)*rb:(int(id)+1)*rb], w.Type); err != nil {
			panic(fmt.Sprintf("cpuneon: GetRows %s: %v", w.Name, err))
		}
	}
}

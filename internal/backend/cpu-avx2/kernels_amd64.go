//go:build amd64

package cpuavx2

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"sync"
	"unsafe"

	"github.com/realmrt/realm/gguf"
	"github.com/realmrt/realm/internal/engine"
)

// Kernels is the AVX2 kernel set. Its methods may be called from
// several goroutines; calls are serialized internally (each one already
// uses every thread of the pool).
type Kernels struct {
	engine.GoExt // the element-wise extended ops

	pool *pool
	vnni bool
	amx  []*amxScratch // per worker; nil without AMX

	mu     sync.Mutex // serializes operations; guards the scratch below
	q8     q8Acts
	q8k    q8KActs
	q8src  []float32   // the activations k.q8 holds, to skip requantizing
	q8ksrc []float32   // the activations k.q8k holds
	xf     []float32   // f16-rounded activations
	rowBuf [][]float32 // per-worker dequantized weight row
	scores [][]float32 // per-worker attention scores
	ropeC  []float32
	ropeS  []float32
	iq4p   []byte      // IQ4_XS activations in the 8-row VNNI layout (packIQ4XS8)
	huge   hugeAdvisor // transparent huge pages for mapped weights

	noWeightCopy bool // Options.NoWeightCopy
	repack       bool // PrepareWeights packs Q4_0/Q8_0, Q4_K/Q6_K (VNNI, !Options.NoRepack; see packs)
}

var (
	_ engine.Kernels = (*Kernels)(nil)
	_ engine.Closer  = (*Kernels)(nil)
)

// New returns the AVX2 kernels running on threads threads (≤ 0: one per
// CPU). It fails on a CPU without AVX2, FMA and F16C.
func New(threads int) (engine.Kernels, error) {
	return NewWithOptions(Options{Threads: threads})
}

// NewWithOptions is New with all options.
func NewWithOptions(opts Options) (engine.Kernels, error) {
	if !Supported() {
		return nil, errors.New("cpuavx2: this CPU lacks AVX2, FMA or F16C")
	}
	n := threadCount(opts.Threads)
	k := &Kernels{
		pool:   newPool(n),
		vnni:   hasVNNI() && !opts.DisableVNNI,
		rowBuf: make([][]float32, n),
		scores: make([][]float32, n),

		noWeightCopy: opts.NoWeightCopy,
	}
	k.repack = k.vnni && !opts.NoRepack
	if k.vnni && !opts.DisableAMX && hasAMX() {
		k.amx = make([]*amxScratch, n)
		for i := range k.amx {
			k.amx[i] = new(amxScratch)
		}
	}
	return k, nil
}

// Threads returns the number of threads the kernels use.
func (k *Kernels) Threads() int { return k.pool.n }

// UsesAMX reports whether the AMX tile kernels are in use.
func (k *Kernels) UsesAMX() bool { return k.amx != nil }

// UsesVNNI reports whether the AVX512-VNNI variants are in use.
func (k *Kernels) UsesVNNI() bool { return k.vnni }

// Close stops the thread pool. Kernels still work after Close, on the
// calling goroutine only.
func (k *Kernels) Close() error {
	k.pool.close()
	return nil
}

// Types lists the weight types MatMul and GetRows accept.
func (k *Kernels) Types() []gguf.Type { return gguf.WeightTypes() }

// NativeTypes lists the weight types with SIMD matmul kernels; the
// others are dequantized a row at a time.
func (k *Kernels) NativeTypes() []gguf.Type {
	return []gguf.Type{gguf.TypeF32, gguf.TypeF16, gguf.TypeQ4_0, gguf.TypeQ8_0, gguf.TypeQ4_K, gguf.TypeQ5_K, gguf.TypeQ6_K,
		gguf.TypeIQ4_NL, gguf.TypeIQ4_XS}
}

func f32p(b []byte) *float32 { return (*float32)(unsafe.Pointer(unsafe.SliceData(b))) }
func u16p(b []byte) *uint16  { return (*uint16)(unsafe.Pointer(unsafe.SliceData(b))) }

// rowChunk picks how many weight rows one work item covers. For one
// activation row (generation, bound by streaming the weights) a few
// long chunks per thread: each chunk's start is a prefetch miss, and
// longer runs stream faster (measured: 4 chunks per thread 25.3 GB/s,
// 8–16 per thread 24.6, 64 per thread 21.7 on 2 threads); dynamic
// hand-out still evens out a thread that falls behind. On a busy
// machine more, shorter chunks (pool.chunksPerThread): the others then
// wait at most one short chunk for a thread descheduled inside it.
func (k *Kernels) rowChunk(rows, batch int) int {
	if batch > 1 {
		return 16
	}
	c := k.pool.chunksPerThread() * k.pool.n
	return max((rows+c-1)/c, 4)
}

// MatMul computes out[b*w.Rows+r] = Σ_k w[r][k]·x[b*w.Cols+k].
func (k *Kernels) MatMul(out []float32, w *engine.Weight, x []float32, batch int) {
	rows, cols := w.Rows, w.Cols
	if batch <= 0 || rows <= 0 {
		return
	}
	out = out[:batch*rows]
	if cols <= 0 {
		clear(out)
		return
	}
	x = x[:batch*cols]
	rb := w.RowBytes()
	if rb <= 0 || len(w.Data) < rows*rb {
		panic(fmt.Sprintf("cpuavx2: weight %q: %d bytes for %d rows of %d %s", w.Name, len(w.Data), rows, cols, w.Type))
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.huge.advise(w.Data)
	switch w.Type {
	case gguf.TypeQ4_0, gguf.TypeQ8_0:
		k.quantQ8(x, cols, batch)
		if w.Layout == layoutP16 {
			k.matP16(out, w, rb, batch)
			return
		}
		k.matQ8(out, w, rb, batch)
	case gguf.TypeQ4_K, gguf.TypeQ6_K:
		k.quantQ8K(x, cols, batch)
		if w.Layout == layoutP16 {
			if w.Type == gguf.TypeQ4_K {
				k.matPackedQ4K(out, w, rb, batch)
			} else {
				k.matPackedQ6K(out, w, rb, batch)
			}
			return
		}
		k.matQ8K(out, w, rb, batch)
	case gguf.TypeQ5_K, gguf.TypeIQ4_XS:
		k.quantQ8K(x, cols, batch)
		k.matQ8KRows(out, w, rb, batch, w.Type == gguf.TypeQ5_K)
	case gguf.TypeIQ4_NL:
		k.quantQ8(x, cols, batch)
		k.matIQ4NL(out, w, rb, batch)
	case gguf.TypeF32:
		k.matF(out, w, rb, x, batch, false)
	case gguf.TypeF16:
		k.xf = grow(k.xf, len(x))
		k.roundF16(k.xf, x)
		k.matF(out, w, rb, k.xf, batch, true)
	default:
		k.matFallback(out, w, rb, x, batch)
	}
}

// roundF16 stores x rounded to f16 (and back) into dst.
func (k *Kernels) roundF16(dst, x []float32) {
	k.pool.forChunks(len(x), 1<<14, 1<<15, func(_, lo, hi int) {
		n := (hi - lo) &^ 7
		if n > 0 {
			roundF16(&dst[lo], &x[lo], n)
		}
		for i := lo + n; i < hi; i++ {
			dst[i] = gguf.F16ToF32(gguf.F32ToF16(x[i]))
		}
	})
}

// sameF32 reports whether a and b hold the same bits.
func sameF32(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	if len(a) == 0 {
		return true
	}
	ab := unsafe.Slice((*byte)(unsafe.Pointer(&a[0])), 4*len(a))
	bb := unsafe.Slice((*byte)(unsafe.Pointer(&b[0])), 4*len(b))
	return bytes.Equal(ab, bb)
}

// quantQ8 quantizes x (batch rows of cols) into k.q8, unless k.q8
// already holds exactly these activations (the engine multiplies one
// input by Q, K and V, and by gate and up, in a row).
func (k *Kernels) quantQ8(x []float32, cols, batch int) {
	if k.q8.cols == cols && sameF32(x, k.q8src) {
		return
	}
	k.q8src = append(k.q8src[:0], x...)
	k.q8.reset(cols, batch)
	a := &k.q8
	k.pool.forChunks(batch, 1, 8, func(_, lo, hi int) {
		for b := lo; b < hi; b++ {
			quantQ8_0(&x[b*cols], &a.qs[b*cols], &a.d[b*a.nb], &a.s[b*a.nb], a.nb)
		}
	})
}

// expandQ8 fills the expanded forms of k.q8's batch rows that the
// 512-bit kernels over GGUF-layout weights read, once per quantization.
func (k *Kernels) expandQ8(batch int) {
	a := &k.q8
	if a.expanded {
		return
	}
	k.pool.forChunks(batch, 1, 8, func(_, lo, hi int) { a.expand(lo, hi) })
	a.expanded = true
}

func (k *Kernels) quantQ8K(x []float32, cols, batch int) {
	if k.q8k.cols == cols && sameF32(x, k.q8ksrc) {
		return
	}
	k.q8ksrc = append(k.q8ksrc[:0], x...)
	k.q8k.reset(cols, batch)
	a := &k.q8k
	k.pool.forChunks(batch, 1, 8, func(_, lo, hi int) {
		for b := lo; b < hi; b++ {
			quantQ8K(&x[b*cols], &a.qs[b*cols], &a.d[b*a.nb], &a.bsums[b*a.nb*16], a.nb)
		}
		if batch >= 8 && k.vnni {
			a.expand(lo, hi)
		}
	})
}

// matQ8 multiplies Q4_0/Q8_0 weights by the Q8_0 activations in k.q8.
func (k *Kernels) matQ8(out []float32, w *engine.Weight, rb, batch int) {
	rows, cols, nb := w.Rows, w.Cols, w.Cols/32
	if k.vnni {
		k.expandQ8(batch)
	}
	// Whole groups of 16 activation rows go through the AMX tiles; the
	// rest (or everything, without AMX) through the AVX kernels.
	b0 := 0
	if k.amx != nil && batch >= amxRows && rows%amxRows == 0 {
		b0 = batch / amxRows * amxRows
		k.matQ8AMX(out, w, rb, b0/amxRows)
		if b0 == batch {
			return
		}
	}
	var dot1 func(w *byte, a *int8, ad *float32, nb int) float32
	var dot4 func(w *byte, a *int8, astride int, ad *float32, dstride int, nb int, out *float32)
	switch {
	case w.Type == gguf.TypeQ4_0 && k.vnni:
		k.matQ4_0VNNI(out, w, rb, b0, batch)
		return
	case w.Type == gguf.TypeQ4_0:
		dot1, dot4 = dotQ4_0, dotQ4_0x4
	case k.vnni:
		dot1, dot4 = dotQ8_0VNNI, dotQ8_0x4VNNI
	default:
		dot1, dot4 = dotQ8_0, dotQ8_0x4
	}
	qs, ad, data := k.q8.qs, k.q8.d, w.Data
	z := w.Type == gguf.TypeQ8_0 && k.vnni && nb%2 == 0
	k.pool.forChunks(rows, k.rowChunk(rows, batch), 0, func(_, lo, hi int) {
		var t [8]float32
		b := b0
		for ; z && b+8 <= batch; b += 8 {
			au, d := &k.q8.qsu[b*cols], &k.q8.dvec[b*nb*8]
			for r := lo; r < hi; r++ {
				dotQ8_0x8Z(&data[r*rb], au, d, cols, nb/2, &t[0])
				for i, v := range t {
					out[(b+i)*rows+r] = v
				}
			}
		}
		for ; b+4 <= batch; b += 4 {
			a, d := &qs[b*cols], &ad[b*nb]
			for r := lo; r < hi; r++ {
				dot4(&data[r*rb], a, cols, d, 4*nb, nb, &t[0])
				out[b*rows+r] = t[0]
				out[(b+1)*rows+r] = t[1]
				out[(b+2)*rows+r] = t[2]
				out[(b+3)*rows+r] = t[3]
			}
		}
		for ; b < batch; b++ {
			a, d := &qs[b*cols], &ad[b*nb]
			o := out[b*rows : (b+1)*rows]
			if z {
				au, dv := &k.q8.qsu[b*cols], &k.q8.dvec[b*nb*8]
				for r := lo; r < hi; r++ {
					o[r] = dotQ8_0Z1(&data[r*rb], au, dv, nb/2)
				}
				continue
			}
			for r := lo; r < hi; r++ {
				o[r] = dot1(&data[r*rb], a, d, nb)
			}
		}
	})
}

// matQ4_0VNNI is matQ8 for Q4_0 weights with the unsigned VNNI kernels,
// for activation rows b0..batch−1.
func (k *Kernels) matQ4_0VNNI(out []float32, w *engine.Weight, rb, b0, batch int) {
	rows, cols, nb := w.Rows, w.Cols, w.Cols/32
	qs, ad, ac, data := k.q8.qs, k.q8.d, k.q8.s, w.Data
	k.pool.forChunks(rows, k.rowChunk(rows, batch), 0, func(_, lo, hi int) {
		var t [8]float32
		b := b0
		if nb%2 == 0 {
			for ; b+8 <= batch; b += 8 {
				a, c, d := &qs[b*cols], &k.q8.cvec[b*nb*8], &k.q8.dvec[b*nb*8]
				for r := lo; r < hi; r++ {
					dotQ4_0x8Z(&data[r*rb], a, c, d, cols, nb/2, &t[0])
					for i, v := range t {
						out[(b+i)*rows+r] = v
					}
				}
			}
		}
		for ; b+4 <= batch; b += 4 {
			a, d, c := &qs[b*cols], &ad[b*nb], &ac[b*nb]
			for r := lo; r < hi; r++ {
				if nb%2 == 0 {
					dotQ4_0x4Z(&data[r*rb], a, &k.q8.cvec[b*nb*8], &k.q8.dvec[b*nb*8], cols, nb/2, &t[0])
				} else {
					dotQ4_0x4VNNIU(&data[r*rb], a, cols, d, c, 4*nb, nb, &t[0])
				}
				out[b*rows+r] = t[0]
				out[(b+1)*rows+r] = t[1]
				out[(b+2)*rows+r] = t[2]
				out[(b+3)*rows+r] = t[3]
			}
		}
		for ; b < batch; b++ {
			a, d, c := &qs[b*cols], &ad[b*nb], &ac[b*nb]
			o := out[b*rows : (b+1)*rows]
			if nb%2 == 0 {
				cv, dv := &k.q8.cvec[b*nb*8], &k.q8.dvec[b*nb*8]
				for r := lo; r < hi; r++ {
					o[r] = dotQ4_0Z1(&data[r*rb], a, cv, dv, nb/2)
				}
				continue
			}
			for r := lo; r < hi; r++ {
				o[r] = dotQ4_0VNNIU(&data[r*rb], a, d, c, nb)
			}
		}
	})
}

// matQ8K multiplies Q4_K/Q6_K weights by the Q8_K activations in k.q8k.
func (k *Kernels) matQ8K(out []float32, w *engine.Weight, rb, batch int) {
	rows, cols, nb := w.Rows, w.Cols, w.Cols/256
	dot1, dot4 := dotQ4K, dotQ4Kx4
	if w.Type == gguf.TypeQ6_K {
		dot1, dot4 = dotQ6K, dotQ6Kx4
	}
	b0 := 0
	if k.amx != nil && batch >= amxRows && rows%amxRows == 0 {
		b0 = batch / amxRows * amxRows
		if w.Type == gguf.TypeQ4_K {
			k.matQ4KAMX(out, w, rb, b0/amxRows)
		} else {
			k.matQ6KAMX(out, w, rb, b0/amxRows)
		}
		if b0 == batch {
			return
		}
	}
	qs, ad, bs, data := k.q8k.qs, k.q8k.d, k.q8k.bsums, w.Data
	z := w.Type == gguf.TypeQ4_K && k.vnni
	k.pool.forChunks(rows, k.rowChunk(rows, batch), 0, func(_, lo, hi int) {
		var t [8]float32
		b := b0
		for ; z && b+8 <= batch; b += 8 {
			a, m := &qs[b*cols], &k.q8k.meta[b*cols]
			for r := lo; r < hi; r++ {
				dotQ4Kx8Z(&data[r*rb], a, m, cols, nb, &t[0])
				for i, v := range t {
					out[(b+i)*rows+r] = v
				}
			}
		}
		for ; b+4 <= batch; b += 4 {
			a, d, s := &qs[b*cols], &ad[b*nb], &bs[b*nb*16]
			for r := lo; r < hi; r++ {
				dot4(&data[r*rb], a, cols, d, 4*nb, s, 32*nb, nb, &t[0])
				out[b*rows+r] = t[0]
				out[(b+1)*rows+r] = t[1]
				out[(b+2)*rows+r] = t[2]
				out[(b+3)*rows+r] = t[3]
			}
		}
		for ; b < batch; b++ {
			a, d, s := &qs[b*cols], &ad[b*nb], &bs[b*nb*16]
			o := out[b*rows : (b+1)*rows]
			for r := lo; r < hi; r++ {
				o[r] = dot1(&data[r*rb], a, d, s, nb)
			}
		}
	})
}

// matF multiplies F32 (or F16) weights by f32 activations. Each weight
// row is used for every activation row while it is in cache.
func (k *Kernels) matF(out []float32, w *engine.Weight, rb int, x []float32, batch int, half bool) {
	rows, cols, data := w.Rows, w.Cols, w.Data
	k.pool.forChunks(rows, k.rowChunk(rows, batch), 0, func(_, lo, hi int) {
		for r := lo; r < hi; r++ {
			row := data[r*rb : (r+1)*rb]
			for b := 0; b < batch; b++ {
				if half {
					out[b*rows+r] = dotF16(u16p(row), &x[b*cols], cols)
				} else {
					out[b*rows+r] = dotF32(f32p(row), &x[b*cols], cols)
				}
			}
		}
	})
}

// matFallback dequantizes each weight row to f32 and dots it with every
// activation row.
func (k *Kernels) matFallback(out []float32, w *engine.Weight, rb int, x []float32, batch int) {
	rows, cols := w.Rows, w.Cols
	for i := range k.rowBuf {
		k.rowBuf[i] = grow(k.rowBuf[i], cols)
	}
	k.pool.forChunks(rows, k.rowChunk(rows, batch), 0, func(worker, lo, hi int) {
		buf := k.rowBuf[worker]
		for r := lo; r < hi; r++ {
			if err := dequantRow(buf, w.Data[r*rb:(r+1)*rb], w.Type); err != nil {
				panic(fmt.Sprintf("cpuavx2: weight %q: %v", w.Name, err))
			}
			for b := 0; b < batch; b++ {
				out[b*rows+r] = dotF32(&buf[0], &x[b*cols], cols)
			}
		}
	})
}

// GetRows dequantizes rows ids[i] of w into out[i*w.Cols:(i+1)*w.Cols].
func (k *Kernels) GetRows(out []float32, w *engine.Weight, ids []int32) {
	cols := w.Cols
	if cols <= 0 {
		return
	}
	rb := w.RowBytes()
	var buf []byte
	if w.Layout == layoutP16 {
		buf = make([]byte, rb)
	}
	for i, id := range ids {
		if id < 0 || int(id) >= w.Rows {
			panic(fmt.Sprintf("cpuavx2: GetRows %q: row %d out of range [0,%d)", w.Name, id, w.Rows))
		}
		row := w.Data[int(id)*rb : (int(id)+1)*rb]
		if w.Layout == layoutP16 {
			row = packedRow(buf, w, int(id))
		}
		if err := dequantRow(out[i*cols:(i+1)*cols], row, w.Type); err != nil {
			panic(fmt.Sprintf("cpuavx2: GetRows %q: %v", w.Name, err))
		}
	}
}

// RMSNorm normalizes each row of n elements of x into out.
func (k *Kernels) RMSNorm(out, x, weight []float32, n int, eps float32) {
	if n <= 0 {
		return
	}
	nrows := len(x) / n
	if nrows == 0 {
		return
	}
	weight = weight[:n]
	out = out[:nrows*n]
	k.mu.Lock()
	defer k.mu.Unlock()
	k.pool.forChunks(nrows, 1, max(2, (1<<15)/n), func(_, lo, hi int) {
		for r := lo; r < hi; r++ {
			xr := x[r*n : (r+1)*n]
			ss := sumSq(&xr[0], n)
			scale := float32(1 / math.Sqrt(ss/float64(n)+float64(eps)))
			rmsScale(&out[r*n], &xr[0], &weight[0], scale, n)
		}
	})
}

// RoPE rotates adjacent pairs of the first nDims elements of each head.
func (k *Kernels) RoPE(x []float32, pos []int32, nHeads, headDim, nDims int, base float32) {
	if len(pos) == 0 || nHeads <= 0 || nDims < 2 {
		return
	}
	nDims &^= 1
	half := nDims / 2
	x = x[:len(pos)*nHeads*headDim]
	k.mu.Lock()
	defer k.mu.Unlock()
	k.ropeC = grow(k.ropeC, len(pos)*nDims)
	k.ropeS = grow(k.ropeS, len(pos)*nDims)
	inv := make([]float64, half)
	for i := range inv {
		inv[i] = math.Pow(float64(base), -2*float64(i)/float64(nDims))
	}
	vec := nDims &^ 7
	k.pool.forChunks(len(pos), 1, 8, func(_, lo, hi int) {
		for b := lo; b < hi; b++ {
			c := k.ropeC[b*nDims : (b+1)*nDims]
			s := k.ropeS[b*nDims : (b+1)*nDims]
			p := float64(pos[b])
			for i, f := range inv {
				sn, cs := math.Sincos(p * f)
				c[2*i], c[2*i+1] = float32(cs), float32(cs)
				s[2*i], s[2*i+1] = float32(-sn), float32(sn)
			}
			for h := 0; h < nHeads; h++ {
				v := x[(b*nHeads+h)*headDim:][:nDims]
				if vec > 0 {
					ropeRot(&v[0], &c[0], &s[0], vec)
				}
				for i := vec; i < nDims; i += 2 {
					x0, x1 := v[i], v[i+1]
					v[i] = x0*c[i] + x1*s[i]
					v[i+1] = x1*c[i+1] + x0*s[i+1]
				}
			}
		}
	})
}

// Softmax replaces each row of n elements of x by its softmax.
func (k *Kernels) Softmax(x []float32, n int) {
	if n <= 0 {
		return
	}
	nrows := len(x) / n
	if nrows == 0 {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.pool.forChunks(nrows, 1, max(2, (1<<15)/n), func(_, lo, hi int) {
		for r := lo; r < hi; r++ {
			softmaxRow(x[r*n : (r+1)*n])
		}
	})
}

// softmaxRow is the softmax of one row, in place.
func softmaxRow(r []float32) {
	n := len(r)
	m := maxF32(&r[0], n)
	if math.IsInf(float64(m), -1) || m != m {
		u := 1 / float32(n)
		if m != m {
			u = float32(math.NaN())
		}
		for i := range r {
			r[i] = u
		}
		return
	}
	vec := n &^ 7
	var sum float32
	if vec > 0 {
		sum = expShift(&r[0], vec, m)
	}
	for i := vec; i < n; i++ {
		e := float32(math.Exp(float64(r[i] - m)))
		r[i] = e
		sum += e
	}
	scaleF32(&r[0], &r[0], 1/sum, n)
}

// SiLUMul computes out[i] = silu(gate[i])·up[i].
func (k *Kernels) SiLUMul(out, gate, up []float32) {
	n := len(gate)
	if n == 0 {
		return
	}
	up, out = up[:n], out[:n]
	k.mu.Lock()
	defer k.mu.Unlock()
	k.pool.forChunks(n, 1<<13, 1<<14, func(_, lo, hi int) {
		vec := (hi - lo) &^ 7
		if vec > 0 {
			siluMul(&out[lo], &gate[lo], &up[lo], vec)
		}
		for i := lo + vec; i < hi; i++ {
			g := float64(gate[i])
			out[i] = float32(g/(1+math.Exp(-g))) * up[i]
		}
	})
}

// SiLU computes out[i] = silu(x[i]) (an optional op beside Kernels).
func (k *Kernels) SiLU(out, x []float32) {
	n := len(x)
	out = out[:n]
	for i, v := range x {
		g := float64(v)
		out[i] = float32(g / (1 + math.Exp(-g)))
	}
}

// Add computes out[i] = a[i] + b[i].
func (k *Kernels) Add(out, a, b []float32) {
	n := len(a)
	if n == 0 {
		return
	}
	b, out = b[:n], out[:n]
	addF32(&out[0], &a[0], &b[0], n)
}

// Mul computes out[i] = a[i] · b[i].
func (k *Kernels) Mul(out, a, b []float32) {
	n := len(a)
	if n == 0 {
		return
	}
	b, out = b[:n], out[:n]
	mulF32(&out[0], &a[0], &b[0], n)
}

// ExtOps lists the extended graph ops: GoExt's and the attention
// window and soft-capping, which Attention honours.
func (k *Kernels) ExtOps() []string {
	return append(k.GoExt.ExtOps(), engine.GOpAttnWindow, engine.GOpAttnSoftCap)
}

// Attention computes causal grouped-query attention; the (row, head)
// pairs are spread over the pool.
func (k *Kernels) Attention(out, q, k2, v []float32, p engine.AttentionParams) {
	d := p.HeadDim
	if p.Batch <= 0 || p.NHead <= 0 || d <= 0 {
		return
	}
	group := p.NHead / p.NHeadKV
	kvStride := p.NHeadKV * d
	n := p.StartPos + p.Batch
	q = q[:p.Batch*p.NHead*d]
	out = out[:p.Batch*p.NHead*d]
	k2 = k2[:n*kvStride]
	v = v[:n*kvStride]
	k.mu.Lock()
	defer k.mu.Unlock()
	for i := range k.scores {
		k.scores[i] = grow(k.scores[i], n)
	}
	tasks := p.Batch * p.NHead
	k.pool.forChunks(tasks, 1, 2, func(worker, lo, hi int) {
		sc := k.scores[worker]
		for t := lo; t < hi; t++ {
			b, h := t/p.NHead, t%p.NHead
			last := p.StartPos + b
			first := 0
			if p.Window > 0 {
				first = max(0, last-p.Window+1)
			}
			qh := &q[(b*p.NHead+h)*d]
			kvOff := (h / group) * d
			cnt := last + 1 - first
			for j := 0; j < cnt; j++ {
				sc[j] = dotF32(qh, &k2[(first+j)*kvStride+kvOff], d) * p.Scale
			}
			if p.SoftCap != 0 {
				for j := 0; j < cnt; j++ {
					sc[j] = float32(float64(p.SoftCap) * math.Tanh(float64(sc[j])/float64(p.SoftCap)))
				}
			}
			m := maxF32(&sc[0], cnt)
			vec := cnt &^ 7
			var sum float32
			if vec > 0 {
				sum = expShift(&sc[0], vec, m)
			}
			for j := vec; j < cnt; j++ {
				e := float32(math.Exp(float64(sc[j] - m)))
				sc[j] = e
				sum += e
			}
			inv := 1 / sum
			oh := out[(b*p.NHead+h)*d : (b*p.NHead+h+1)*d]
			clear(oh)
			for j := 0; j < cnt; j++ {
				axpyF32(&oh[0], &v[(first+j)*kvStride+kvOff], sc[j]*inv, d)
			}
		}
	})
}

// GELUMul computes gelu(gate)·up (GoExt's arithmetic) spread over the
// pool: a gemma feed-forward block's tanh calls are worth the threads.
func (k *Kernels) GELUMul(out, gate, up []float32) {
	n := len(gate)
	if n == 0 {
		return
	}
	up, out = up[:n], out[:n]
	k.mu.Lock()
	defer k.mu.Unlock()
	k.pool.forChunks(n, 1<<12, 1<<13, func(_, lo, hi int) {
		k.GoExt.GELUMul(out[lo:hi], gate[lo:hi], up[lo:hi])
	})
}

// SoftCap computes c·tanh(x/c) spread over the pool (gemma soft-caps
// every logit of a large vocabulary).
func (k *Kernels) SoftCap(out, x []float32, c float32) {
	n := len(x)
	if n == 0 {
		return
	}
	out = out[:n]
	k.mu.Lock()
	defer k.mu.Unlock()
	k.pool.forChunks(n, 1<<12, 1<<13, func(_, lo, hi int) {
		k.GoExt.SoftCap(out[lo:hi], x[lo:hi], c)
	})
}

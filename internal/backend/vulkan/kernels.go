//go:build cgo && vulkan_headers

package vulkan

import (
	"fmt"
	"math"
	"unsafe"

	"github.com/realmrt/realm/gguf"
	"github.com/realmrt/realm/internal/backend/reference"
	"github.com/realmrt/realm/internal/engine"
)

// Kernels runs each engine.Kernels operation on the device: inputs are
// copied into host-visible buffers, the shader runs in one command
// buffer, and the result is copied back. It serves TensorOp and the
// shader tests; the forward pass of a loaded model keeps its data on the
// device instead (see session.go). Errors panic (engine.Kernels has no
// error results); the engine turns a kernel panic into a call error.
type Kernels struct{ d *Device }

var _ engine.Kernels = (*Kernels)(nil)

// NewKernels returns the kernels of an opened device.
func NewKernels(d *Device) *Kernels { return &Kernels{d: d} }

// Types lists the weight types MatMul and GetRows accept.
func (k *Kernels) Types() []gguf.Type { return weightTypes() }

// scratch holds the temporary buffers of one kernel call and the copies
// to run after the submission.
type scratch struct {
	d     *Device
	bufs  []*buffer
	reads []func()
}

func (s *scratch) free() {
	for _, b := range s.bufs {
		s.d.vk.freeBuffer(b)
	}
}

// alloc returns a host-visible buffer of n bytes.
func (s *scratch) alloc(n int) *buffer {
	if uint64(n) > s.d.Info.MaxStorageRange {
		panic(fmt.Sprintf("vulkan: a %d-byte operand exceeds the device's %d-byte buffer limit", n, s.d.Info.MaxStorageRange))
	}
	b, err := s.d.vk.newBuffer(uint64(max(n, 16)+15)&^15, true)
	if err != nil {
		panic(err)
	}
	s.bufs = append(s.bufs, b)
	if b.mapped == nil {
		panic("vulkan: host buffer is not mapped")
	}
	return b
}

// floats views a mapped buffer as float32s.
func floats(b *buffer) []float32 {
	return unsafe.Slice((*float32)(unsafe.Pointer(&b.mapped[0])), len(b.mapped)/4)
}

// words views a mapped buffer as uint32s.
func words(b *buffer) []uint32 {
	return unsafe.Slice((*uint32)(unsafe.Pointer(&b.mapped[0])), len(b.mapped)/4)
}

// f32 returns a buffer holding v.
func (s *scratch) f32(v []float32) *buffer {
	b := s.alloc(4 * len(v))
	copy(floats(b), v)
	return b
}

// out returns a buffer of n floats that is copied into dst after the
// submission.
func (s *scratch) out(dst []float32) *buffer {
	b := s.alloc(4 * len(dst))
	s.reads = append(s.reads, func() { copy(dst, floats(b)) })
	return b
}

// weight places w in host-visible buffers, split at row boundaries.
func (s *scratch) weight(w *engine.Weight) *devWeight {
	name, ok := typeName(w.Type)
	if !ok {
		panic(fmt.Sprintf("vulkan: weight %q has type %v, which has no shader", w.Name, w.Type))
	}
	dw := &devWeight{name: w.Name, typ: w.Type, shader: name, rows: w.Rows, cols: w.Cols, rowBytes: w.RowBytes()}
	p := &planner{segCap: s.d.segCap}
	pl, err := p.place(w.Rows, dw.rowBytes)
	if err != nil {
		panic(err)
	}
	bufs := make([]*buffer, len(p.sizes))
	for i, n := range p.sizes {
		bufs[i] = s.alloc(int(n))
	}
	for _, q := range pl {
		src := w.Data[q.row0*dw.rowBytes : (q.row0+q.rows)*dw.rowBytes]
		copy(bufs[q.buf].mapped[q.off:], src)
		dw.segs = append(dw.segs, segment{buf: bufs[q.buf], off: q.off, row0: q.row0, rows: q.rows})
	}
	return dw
}

// do runs record in one command buffer and then the read-backs.
func (k *Kernels) do(record func(s *scratch) error) {
	d := k.d
	d.mu.Lock()
	defer d.mu.Unlock()
	s := &scratch{d: d}
	defer s.free()
	if err := d.begin(); err != nil {
		panic(err)
	}
	if err := record(s); err != nil {
		_ = d.submit()
		panic(err)
	}
	if err := d.submit(); err != nil {
		panic(err)
	}
	for _, r := range s.reads {
		r()
	}
}

// MatMul implements engine.Kernels.
func (k *Kernels) MatMul(out []float32, w *engine.Weight, x []float32, batch int) {
	k.do(func(s *scratch) error {
		return s.d.opMatMul(s.weight(w), s.f32(x[:batch*w.Cols]), 0, s.out(out[:batch*w.Rows]), 0, batch)
	})
}

// GetRows implements engine.Kernels.
func (k *Kernels) GetRows(out []float32, w *engine.Weight, ids []int32) {
	k.do(func(s *scratch) error {
		ib := s.alloc(4 * len(ids))
		iw := words(ib)
		for i, id := range ids {
			iw[i] = uint32(id)
		}
		return s.d.opGetRows(s.weight(w), ib, 0, len(ids), s.out(out[:len(ids)*w.Cols]), 0)
	})
}

// RMSNorm implements engine.Kernels.
func (k *Kernels) RMSNorm(out, x, weight []float32, n int, eps float32) {
	if n <= 0 || len(x) < n {
		return
	}
	rows := len(x) / n
	k.do(func(s *scratch) error {
		return s.d.opRMSNorm(s.f32(x[:rows*n]), 0, s.f32(weight[:n]), 0, s.out(out[:rows*n]), 0, n, rows, eps)
	})
}

// RoPE implements engine.Kernels.
func (k *Kernels) RoPE(x []float32, pos []int32, nHeads, headDim, nDims int, base float32) {
	n := len(pos) * nHeads * headDim
	if n == 0 || nDims < 2 {
		return
	}
	k.do(func(s *scratch) error {
		xb := s.f32(x[:n])
		s.reads = append(s.reads, func() { copy(x[:n], floats(xb)) })
		return s.d.opRoPE(xb, 0, s.f32(ropeTable(pos, nDims, base)), 0, len(pos), nHeads, headDim, nDims/2, false)
	})
}

// Softmax implements engine.Kernels.
func (k *Kernels) Softmax(x []float32, n int) {
	if n <= 0 || len(x) < n {
		return
	}
	rows := len(x) / n
	k.do(func(s *scratch) error {
		xb := s.f32(x[:rows*n])
		s.reads = append(s.reads, func() { copy(x[:rows*n], floats(xb)) })
		return s.d.opSoftmax(xb, 0, n, rows)
	})
}

// binary runs one element-wise operation.
func (k *Kernels) binary(op int, out, a, b []float32) {
	n := len(a)
	if n == 0 {
		return
	}
	k.do(func(s *scratch) error {
		return s.d.opBinary(op, s.f32(a), 0, s.f32(b[:n]), 0, s.out(out[:n]), 0, n)
	})
}

// SiLUMul implements engine.Kernels.
func (k *Kernels) SiLUMul(out, gate, up []float32) { k.binary(binSiLUMul, out, gate, up) }

// Add implements engine.Kernels.
func (k *Kernels) Add(out, a, b []float32) { k.binary(binAdd, out, a, b) }

// Mul implements engine.Kernels.
func (k *Kernels) Mul(out, a, b []float32) { k.binary(binMul, out, a, b) }

// Attention implements engine.Kernels (f32 k and v).
func (k *Kernels) Attention(out, q, kc, vc []float32, p engine.AttentionParams) {
	nq := p.Batch * p.NHead * p.HeadDim
	nkv := (p.StartPos + p.Batch) * p.NHeadKV * p.HeadDim
	if nq == 0 {
		return
	}
	k.do(func(s *scratch) error {
		a := attnArgs{nHead: p.NHead, nHeadKV: p.NHeadKV, headDim: p.HeadDim, startPos: p.StartPos, batch: p.Batch, scale: p.Scale,
			window: p.Window, softCap: p.SoftCap}
		return s.d.opAttention(a, s.f32(q[:nq]), 0, s.f32(kc[:nkv]), s.f32(vc[:nkv]), s.out(out[:nq]), 0)
	})
}

// selfTest multiplies small F32 and Q4_0 matrices on the device and
// compares with the reference kernels.
func selfTest(d *Device) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	const cols, rows, batch = 64, 5, 2
	vals := make([]float32, cols*rows)
	for i := range vals {
		vals[i] = float32(math.Sin(float64(i)*0.37)) * 2
	}
	x := make([]float32, cols*batch)
	for i := range x {
		x[i] = float32(math.Cos(float64(i) * 0.11))
	}
	k, ref := NewKernels(d), reference.New()
	for _, t := range []gguf.Type{gguf.TypeF32, gguf.TypeQ4_0} {
		rb, _ := t.RowBytes(cols)
		data := make([]byte, int(rb)*rows)
		if err := gguf.Quantize(data, vals, t); err != nil {
			return err
		}
		w := &engine.Weight{Name: "selftest", Type: t, Rows: rows, Cols: cols, Data: data}
		got := make([]float32, rows*batch)
		want := make([]float32, rows*batch)
		k.MatMul(got, w, x, batch)
		ref.MatMul(want, w, x, batch)
		for i := range got {
			if !(math.Abs(float64(got[i]-want[i])) <= 1e-3*(1+math.Abs(float64(want[i])))) {
				return fmt.Errorf("%v matmul element %d = %g, want %g", t, i, got[i], want[i])
			}
		}
	}
	return nil
}

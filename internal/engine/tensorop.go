package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/gguf"
)

// maxOpElems caps the elements of any TensorOp operand or result.
const maxOpElems = 1 << 28

// operand is a resolved TensorOp input.
type operand struct {
	w     *Weight // the data as a matrix of Shape[0] columns
	shape []int
	n     int // elements
}

// heldModel is a model read-locked for the duration of one op.
type heldModel struct {
	lm      *loadedModel
	release func()
}

// badArg returns an ErrInvalidArgument-wrapped error for op.
func badArg(op, format string, args ...any) error {
	return fmt.Errorf("engine: %s: %w: %s", op, backends.ErrInvalidArgument, fmt.Sprintf(format, args...))
}

// resolve turns a TensorRef into an operand: a weight of a loaded model
// (held read-locked until the op's release runs) or inline data whose
// size is checked against its type and shape.
func (b *backend) resolve(op string, i int, r backends.TensorRef, locked map[backends.ModelID]heldModel) (*operand, error) {
	if r.Name != "" {
		if r.Data != nil {
			return nil, badArg(op, "input %d names weight %q and also carries data", i, r.Name)
		}
		h, ok := locked[r.Model]
		if !ok {
			lm, release, err := b.reg.Model(r.Model)
			if err != nil {
				return nil, fmt.Errorf("engine: %s: input %d: %w", op, i, err)
			}
			h = heldModel{lm, release}
			locked[r.Model] = h
		}
		lm := h.lm
		w, ok := lm.m.Weight(r.Name)
		if !ok {
			return nil, fmt.Errorf("engine: %s: input %d: weight %q: %w", op, i, r.Name, backends.ErrNotFound)
		}
		if !b.ok[w.Type] {
			return nil, fmt.Errorf("engine: %s: weight %q has type %v: %w", op, r.Name, w.Type, backends.ErrUnsupported)
		}
		shape := lm.info.TensorShapes[r.Name]
		return &operand{w: w, shape: shape, n: w.Rows * w.Cols}, nil
	}
	if len(r.Shape) == 0 || len(r.Shape) > gguf.MaxDims {
		return nil, badArg(op, "input %d has %d dimensions (want 1 to %d)", i, len(r.Shape), gguf.MaxDims)
	}
	n := 1
	for _, d := range r.Shape {
		if d <= 0 || d > maxOpElems || n > maxOpElems/d {
			return nil, badArg(op, "input %d has shape %v (dimensions must be positive, at most %d elements)", i, r.Shape, maxOpElems)
		}
		n *= d
	}
	if !r.Type.Known() || !b.ok[r.Type] {
		return nil, fmt.Errorf("engine: %s: input %d has type %v: %w", op, i, r.Type, backends.ErrUnsupported)
	}
	rb, err := r.Type.RowBytes(int64(r.Shape[0]))
	if err != nil {
		return nil, badArg(op, "input %d: %v", i, err)
	}
	rows := n / r.Shape[0]
	if int64(len(r.Data)) != rb*int64(rows) {
		return nil, badArg(op, "input %d: %d bytes of data, want %d for %v %v", i, len(r.Data), rb*int64(rows), r.Type, r.Shape)
	}
	w := &Weight{Name: fmt.Sprintf("input%d", i), Type: r.Type, Rows: rows, Cols: r.Shape[0], Data: r.Data}
	return &operand{w: w, shape: append([]int(nil), r.Shape...), n: n}, nil
}

// guardLen is the number of guard elements on each side of every buffer
// a TensorOp hands to a kernel.
const guardLen = 16

// guardBits is the bit pattern of a guard element (a NaN no arithmetic
// produces).
const guardBits = 0x7fa5a5a5

// guards allocates the buffers of one TensorOp with guard regions on both
// sides, so that a kernel writing outside its slices (assembly has no
// bounds checks) is caught instead of silently corrupting memory.
type guards struct{ bufs [][]float32 }

// alloc returns a zeroed slice of n elements (capacity n) framed by guards.
func (g *guards) alloc(n int) []float32 {
	buf := make([]float32, n+2*guardLen)
	for i := 0; i < guardLen; i++ {
		buf[i] = math.Float32frombits(guardBits)
		buf[n+guardLen+i] = math.Float32frombits(guardBits)
	}
	g.bufs = append(g.bufs, buf)
	return buf[guardLen : guardLen+n : guardLen+n]
}

// check reports the first overwritten guard element.
func (g *guards) check(op string) error {
	for bi, buf := range g.bufs {
		n := len(buf) - 2*guardLen
		for i := 0; i < guardLen; i++ {
			if math.Float32bits(buf[i]) != guardBits {
				return fmt.Errorf("engine: %s: kernel wrote %d elements before buffer %d: %w", op, guardLen-i, bi, errKernelFault)
			}
			if math.Float32bits(buf[n+guardLen+i]) != guardBits {
				return fmt.Errorf("engine: %s: kernel wrote past the end of buffer %d (element %d of %d): %w", op, bi, n+i, n, errKernelFault)
			}
		}
	}
	return nil
}

// errKernelFault marks a kernel that broke its contract.
var errKernelFault = errors.New("kernel wrote outside its buffers")

// f32 returns the operand's elements as f32 (dequantized when needed) in
// a guarded buffer.
func (b *backend) f32(g *guards, o *operand) []float32 {
	out := g.alloc(o.n)
	ids := make([]int32, o.w.Rows)
	for i := range ids {
		ids[i] = int32(i)
	}
	b.k.GetRows(out, o.w, ids)
	return out
}

// TensorOp runs one kernel operation with full validation of its inputs.
func (b *backend) TensorOp(ctx context.Context, req backends.TensorOpRequest) (res *backends.TensorOpResult, err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	op := req.Op
	nIn, ok := backends.OpInputs(op)
	if !ok {
		return nil, fmt.Errorf("engine: tensor op %q: %w", op, backends.ErrUnsupported)
	}
	if len(req.Inputs) != nIn {
		return nil, badArg(op, "%d inputs, want %d", len(req.Inputs), nIn)
	}
	locked := make(map[backends.ModelID]heldModel)
	defer func() {
		for _, h := range locked {
			h.release()
		}
	}()
	in := make([]*operand, nIn)
	for i, r := range req.Inputs {
		if in[i], err = b.resolve(op, i, r, locked); err != nil {
			return nil, err
		}
	}
	// Every input but the weight matrix of matmul and get_rows is
	// converted to f32 in full: bound what a large weight would cost.
	for i, o := range in {
		if i == 0 && (op == backends.OpMatMul || op == backends.OpGetRows) {
			continue
		}
		if o.n > maxOpElems {
			return nil, badArg(op, "input %d has %d elements (at most %d)", i, o.n, maxOpElems)
		}
	}
	g := &guards{}
	defer func() {
		if err == nil {
			if gerr := g.check(op); gerr != nil {
				res, err = nil, gerr
			}
		}
	}()
	defer recoverKernel(&err)
	p := req.Params
	switch op {
	case backends.OpMatMul:
		w, x := in[0], in[1]
		if len(w.shape) != 2 {
			return nil, badArg(op, "weight has shape %v, want [cols rows]", w.shape)
		}
		if len(x.shape) > 2 || x.shape[0] != w.w.Cols {
			return nil, badArg(op, "x has shape %v, want [%d batch]", x.shape, w.w.Cols)
		}
		batch := x.n / w.w.Cols
		if w.w.Rows > maxOpElems/batch {
			return nil, badArg(op, "result of %d×%d elements exceeds %d", w.w.Rows, batch, maxOpElems)
		}
		out := g.alloc(w.w.Rows * batch)
		b.k.MatMul(out, w.w, b.f32(g, x), batch)
		return &backends.TensorOpResult{Shape: []int{w.w.Rows, batch}, Data: out}, nil

	case backends.OpGetRows:
		w := in[0]
		if len(w.shape) != 2 {
			return nil, badArg(op, "weight has shape %v, want [cols rows]", w.shape)
		}
		if len(p.IDs) == 0 || len(p.IDs) > maxOpElems/w.w.Cols {
			return nil, badArg(op, "%d ids (want 1 to %d)", len(p.IDs), maxOpElems/w.w.Cols)
		}
		for i, id := range p.IDs {
			if id < 0 || int(id) >= w.w.Rows {
				return nil, badArg(op, "id %d (at %d) is out of range [0, %d)", id, i, w.w.Rows)
			}
		}
		out := g.alloc(len(p.IDs) * w.w.Cols)
		b.k.GetRows(out, w.w, p.IDs)
		return &backends.TensorOpResult{Shape: []int{w.w.Cols, len(p.IDs)}, Data: out}, nil

	case backends.OpRMSNorm:
		x, wt := in[0], in[1]
		n := x.shape[0]
		if wt.n != n {
			return nil, badArg(op, "weight has %d elements, want %d (x shape %v)", wt.n, n, x.shape)
		}
		if !(p.Eps >= 0) || math.IsInf(float64(p.Eps), 0) {
			return nil, badArg(op, "eps %g must be finite and ≥ 0", p.Eps)
		}
		out := g.alloc(x.n)
		b.k.RMSNorm(out, b.f32(g, x), b.f32(g, wt), n, p.Eps)
		return &backends.TensorOpResult{Shape: x.shape, Data: out}, nil

	case backends.OpRoPE:
		x := in[0]
		if len(x.shape) != 3 || x.shape[2] != len(p.Pos) {
			return nil, badArg(op, "x has shape %v, want [headDim nHeads %d]", x.shape, len(p.Pos))
		}
		headDim, nHeads := x.shape[0], x.shape[1]
		if p.NDims <= 0 || p.NDims > headDim || p.NDims%2 != 0 {
			return nil, badArg(op, "NDims %d must be even and in [2, %d]", p.NDims, headDim)
		}
		if !(p.Base > 0) || math.IsInf(float64(p.Base), 0) {
			return nil, badArg(op, "base %g must be finite and > 0", p.Base)
		}
		for i, pos := range p.Pos {
			if pos < 0 {
				return nil, badArg(op, "position %d (at %d) is negative", pos, i)
			}
		}
		out := b.f32(g, x)
		b.k.RoPE(out, p.Pos, nHeads, headDim, p.NDims, p.Base)
		return &backends.TensorOpResult{Shape: x.shape, Data: out}, nil

	case backends.OpSoftmax:
		x := in[0]
		out := b.f32(g, x)
		b.k.Softmax(out, x.shape[0])
		return &backends.TensorOpResult{Shape: x.shape, Data: out}, nil

	case backends.OpSiLU:
		x := in[0]
		ones := g.alloc(x.n)
		for i := range ones {
			ones[i] = 1
		}
		out := g.alloc(x.n)
		b.k.SiLUMul(out, b.f32(g, x), ones)
		return &backends.TensorOpResult{Shape: x.shape, Data: out}, nil

	case backends.OpSiLUMul, backends.OpAdd, backends.OpMul:
		a, c := in[0], in[1]
		if !slices.Equal(a.shape, c.shape) {
			return nil, badArg(op, "shapes %v and %v differ", a.shape, c.shape)
		}
		out := g.alloc(a.n)
		fa, fc := b.f32(g, a), b.f32(g, c)
		switch op {
		case backends.OpSiLUMul:
			b.k.SiLUMul(out, fa, fc)
		case backends.OpAdd:
			b.k.Add(out, fa, fc)
		default:
			b.k.Mul(out, fa, fc)
		}
		return &backends.TensorOpResult{Shape: a.shape, Data: out}, nil

	case backends.OpAttention:
		q, k, v := in[0], in[1], in[2]
		if p.NHead <= 0 || p.NHeadKV <= 0 || p.HeadDim <= 0 || p.NHead%p.NHeadKV != 0 {
			return nil, badArg(op, "NHead %d, NHeadKV %d, HeadDim %d: all must be positive and NHead a multiple of NHeadKV", p.NHead, p.NHeadKV, p.HeadDim)
		}
		if len(q.shape) != 3 || q.shape[0] != p.HeadDim || q.shape[1] != p.NHead {
			return nil, badArg(op, "q has shape %v, want [%d %d batch]", q.shape, p.HeadDim, p.NHead)
		}
		batch := q.shape[2]
		if len(k.shape) != 3 || k.shape[0] != p.HeadDim || k.shape[1] != p.NHeadKV {
			return nil, badArg(op, "k has shape %v, want [%d %d ctx]", k.shape, p.HeadDim, p.NHeadKV)
		}
		if !slices.Equal(k.shape, v.shape) {
			return nil, badArg(op, "k shape %v and v shape %v differ", k.shape, v.shape)
		}
		if p.StartPos < 0 || p.StartPos > k.shape[2]-batch {
			return nil, badArg(op, "StartPos %d + batch %d exceeds the %d cache rows", p.StartPos, batch, k.shape[2])
		}
		scale := p.Scale
		if scale == 0 {
			scale = float32(1 / math.Sqrt(float64(p.HeadDim)))
		}
		if math.IsNaN(float64(scale)) || math.IsInf(float64(scale), 0) {
			return nil, badArg(op, "scale %g is not finite", scale)
		}
		out := g.alloc(q.n)
		b.k.Attention(out, b.f32(g, q), b.f32(g, k), b.f32(g, v), AttentionParams{
			NHead: p.NHead, NHeadKV: p.NHeadKV, HeadDim: p.HeadDim,
			Batch: batch, StartPos: p.StartPos, Scale: scale,
		})
		return &backends.TensorOpResult{Shape: q.shape, Data: out}, nil
	}
	return nil, fmt.Errorf("engine: tensor op %q: %w", op, backends.ErrUnsupported)
}

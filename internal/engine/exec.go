package engine

import (
	"context"
	"fmt"
	"slices"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/gguf"
)

// KVStore gives attention the KV cache of each sequence of a batch.
type KVStore interface {
	// KV returns layer's key and value blocks of sequence seq, with
	// room for every position of the batch.
	KV(seq int32, layer int) (KVView, error)
}

// executor runs graphs on a Kernels set, reusing its buffers.
type executor struct {
	k    Kernels
	ext  ExtKernels // nil when k has no extended ops
	free map[int][][]float32
	// moe scratch, kept with the buffers
	moeRows []int32
	last    []int       // per tensor: index of its last reader
	bufs    [][]float32 // per tensor: its buffer while live
}

// newExecutor returns an executor over k.
func newExecutor(k Kernels) *executor {
	e := &executor{k: k, free: make(map[int][][]float32)}
	e.ext, _ = k.(ExtKernels)
	return e
}

// get returns a buffer of n floats (contents undefined).
func (e *executor) get(n int) []float32 {
	if l := e.free[n]; len(l) > 0 {
		b := l[len(l)-1]
		e.free[n] = l[:len(l)-1]
		return b
	}
	return make([]float32, n)
}

// put returns a buffer for reuse.
func (e *executor) put(b []float32) {
	e.free[len(b)] = append(e.free[len(b)], b)
}

// inPlace reports whether op may write its output over its first input.
func inPlace(op gop) bool { return op == gRoPE || op == gRoPEExt }

// run executes g and returns its output tensor (the logits, rows ×
// cols). ctx is checked between nodes.
func (e *executor) run(ctx context.Context, g *Graph, kv KVStore) ([]float32, error) {
	if g.out < 0 {
		return nil, fmt.Errorf("%w: graph has no output", backends.ErrInvalidArgument)
	}
	last := grow(e.last, len(g.shapes))
	e.last = last
	for i := range last {
		last[i] = -1
	}
	for i := range g.nodes {
		for _, t := range g.nodes[i].in {
			if t >= 0 {
				last[t] = i
			}
		}
	}
	last[g.out] = len(g.nodes)
	bufs := grow(e.bufs, len(g.shapes))
	e.bufs = bufs
	clear(bufs)
	res, err := e.runNodes(ctx, g, bufs, last, kv)
	for i, b := range bufs {
		if b != nil {
			e.put(b)
			bufs[i] = nil
		}
	}
	return res, err
}

// grow returns s resized to n elements (contents undefined).
func grow[T any](s []T, n int) []T {
	if cap(s) >= n {
		return s[:n]
	}
	return make([]T, n)
}

// runNodes runs the nodes of g; bufs and last are run's bookkeeping.
func (e *executor) runNodes(ctx context.Context, g *Graph, bufs [][]float32, last []int, kv KVStore) ([]float32, error) {
	for i := range g.nodes {
		if i%16 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		n := &g.nodes[i]
		s := g.shapes[n.out]
		var out []float32
		if inPlace(n.op) && last[n.in[0]] == i {
			out, bufs[n.in[0]] = bufs[n.in[0]], nil
		} else {
			out = e.get(s.rows * s.cols)
			if inPlace(n.op) {
				copy(out, bufs[n.in[0]])
			}
		}
		bufs[n.out] = out
		if err := e.exec(n, g, bufs, out, kv); err != nil {
			return nil, err
		}
		for _, t := range n.in {
			if t >= 0 && last[t] == i && bufs[t] != nil {
				e.put(bufs[t])
				bufs[t] = nil
			}
		}
	}
	res := bufs[g.out]
	bufs[g.out] = nil
	return res, nil
}

// exec runs one node.
func (e *executor) exec(n *node, g *Graph, bufs [][]float32, out []float32, kv KVStore) error {
	k := e.k
	in := func(j int) []float32 { return bufs[n.in[j]] }
	b := g.batch
	switch n.op {
	case gGetRows:
		k.GetRows(out, n.w, b.Tokens)
	case gRMSNorm:
		k.RMSNorm(out, in(0), n.vec, n.n, n.f)
	case gMatMul:
		k.MatMul(out, n.w, in(0), g.shapes[n.in[0]].rows)
	case gRoPE:
		k.RoPE(out, b.Pos, n.heads, n.rope.HeadDim, n.rope.NDims, n.rope.Base)
	case gRoPEExt:
		e.ext.RoPEExt(out, b.Pos, n.heads, n.rope)
	case gAttention:
		return e.attention(n, g, bufs, out, kv)
	case gSiLUMul:
		k.SiLUMul(out, in(0), in(1))
	case gGELUMul:
		e.ext.GELUMul(out, in(0), in(1))
	case gAdd:
		k.Add(out, in(0), in(1))
	case gAddRow:
		e.ext.AddRow(out, in(0), n.vec)
	case gScale:
		e.ext.Scale(out, in(0), n.f)
	case gSoftCap:
		e.ext.SoftCap(out, in(0), n.f)
	case gColumns:
		x, xs := in(0), g.shapes[n.in[0]]
		w := g.shapes[n.out].cols
		for r := 0; r < xs.rows; r++ {
			copy(out[r*w:(r+1)*w], x[r*xs.cols+n.n:])
		}
	case gSelectRows:
		x, c := in(0), g.shapes[n.in[0]].cols
		for i, r := range n.rows {
			copy(out[i*c:(i+1)*c], x[int(r)*c:(int(r)+1)*c])
		}
	case gMoE:
		e.moeFFN(n, g, in(0), out)
	case gLayerNorm, gGELU, gAddRows, gAttnFull, gPool:
		return e.encoderOp(n, g, bufs, out)
	default:
		return fmt.Errorf("%w: graph op %d", backends.ErrUnsupported, n.op)
	}
	return nil
}

// attention stores the batch's K and V rows into each sequence's cache
// (as f16, like llama.cpp's default cache) and attends each run of rows
// of one sequence over its blocks.
func (e *executor) attention(n *node, g *Graph, bufs [][]float32, out []float32, kv KVStore) error {
	a := n.att
	q, kr, vr := bufs[n.in[0]], bufs[n.in[1]], bufs[n.in[2]]
	qd := a.NHead * a.HeadDim
	kvd := a.NHeadKV * a.HeadDim
	b := g.batch
	fa, _ := e.k.(F16Attention)
	for r0 := 0; r0 < len(b.Seq); {
		r1 := r0 + 1
		for r1 < len(b.Seq) && b.Seq[r1] == b.Seq[r0] {
			r1++
		}
		view, err := kv.KV(b.Seq[r0], a.Layer)
		if err != nil {
			return err
		}
		start := int(b.Pos[r0])
		nr := r1 - r0
		for r := r0; r < r1; r++ {
			if int(b.Pos[r]) != start+r-r0 {
				return fmt.Errorf("%w: batch row %d of sequence %d has position %d, want %d (rows of a sequence must have consecutive positions)",
					backends.ErrInvalidArgument, r, b.Seq[r0], b.Pos[r], start+r-r0)
			}
		}
		if start < 0 || BlocksFor(start+nr) > len(view.K) || len(view.K) != len(view.V) {
			return fmt.Errorf("%w: positions %d..%d exceed the KV cache of sequence %d", backends.ErrInvalidArgument, start, start+nr-1, b.Seq[r0])
		}
		for i := range view.K[:BlocksFor(start+nr)] {
			if len(view.K[i]) != KVBlockSize*kvd || len(view.V[i]) != KVBlockSize*kvd {
				return fmt.Errorf("%w: KV block %d of sequence %d does not hold %d-wide rows", backends.ErrInvalidArgument, i, b.Seq[r0], kvd)
			}
		}
		for r := r0; r < r1; r++ {
			pos := start + r - r0
			blk, off := pos/KVBlockSize, (pos%KVBlockSize)*kvd
			dk, dv := view.K[blk][off:off+kvd], view.V[blk][off:off+kvd]
			sk, sv := kr[r*kvd:(r+1)*kvd], vr[r*kvd:(r+1)*kvd]
			if fa != nil {
				fa.ToF16(dk, sk)
				fa.ToF16(dv, sv)
			} else {
				toF16(dk, sk)
				toF16(dv, sv)
			}
		}
		p := AttentionParams{
			NHead: a.NHead, NHeadKV: a.NHeadKV, HeadDim: a.HeadDim,
			Batch: nr, StartPos: start, Scale: a.Scale, Window: a.Window, SoftCap: a.SoftCap,
		}
		if fa != nil {
			fa.AttentionF16(out[r0*qd:r1*qd], q[r0*qd:r1*qd], view, p)
		} else {
			e.attentionF32(out[r0*qd:r1*qd], q[r0*qd:r1*qd], view, p)
		}
		r0 = r1
	}
	return nil
}

// attentionF32 runs the kernels' f32 Attention over a copy of the
// blocks converted to f32 (for kernels without F16Attention).
func (e *executor) attentionF32(out, q []float32, view KVView, p AttentionParams) {
	kvd := p.NHeadKV * p.HeadDim
	n := p.StartPos + p.Batch
	kc, vc := e.get(n*kvd), e.get(n*kvd)
	for i := 0; i < n; i++ {
		blk, off := i/KVBlockSize, (i%KVBlockSize)*kvd
		for j := 0; j < kvd; j++ {
			kc[i*kvd+j] = gguf.F16ToF32(view.K[blk][off+j])
			vc[i*kvd+j] = gguf.F16ToF32(view.V[blk][off+j])
		}
	}
	e.k.Attention(out, q, kc, vc, p)
	e.put(kc)
	e.put(vc)
}

// toF16 stores src rounded to f16 in dst.
func toF16(dst []uint16, src []float32) {
	for i, v := range src {
		dst[i] = gguf.F32ToF16(v)
	}
}

// moeFFN runs a mixture-of-experts block: softmax over the router
// logits of each row, the TopK experts (optionally renormalized), and
// the weighted sum of their SwiGLU outputs in top-k order (as ggml sums
// them).
func (e *executor) moeFFN(n *node, g *Graph, x, out []float32) {
	m := n.moe
	k := e.k
	rows := g.shapes[n.in[0]].rows
	ne := len(m.Gate)
	logits := e.get(rows * ne)
	defer e.put(logits)
	k.MatMul(logits, m.Router, x, rows)
	k.Softmax(logits, ne)
	sel := make([]int, rows*m.TopK)
	wts := make([]float32, rows*m.TopK)
	idx := make([]int, ne)
	for r := 0; r < rows; r++ {
		p := logits[r*ne : (r+1)*ne]
		for i := range idx {
			idx[i] = i
		}
		slices.SortStableFunc(idx, func(a, b int) int {
			switch {
			case p[a] > p[b]:
				return -1
			case p[a] < p[b]:
				return 1
			}
			return 0
		})
		var sum float32
		for j := 0; j < m.TopK; j++ {
			sel[r*m.TopK+j] = idx[j]
			wts[r*m.TopK+j] = p[idx[j]]
			sum += p[idx[j]]
		}
		if m.NormTopK {
			for j := 0; j < m.TopK; j++ {
				wts[r*m.TopK+j] /= sum
			}
		}
	}
	// Expert outputs per (row, slot), then summed in slot order.
	eo := e.get(rows * m.TopK * m.NEmbd)
	defer e.put(eo)
	xe := e.get(rows * m.NEmbd)
	defer e.put(xe)
	gt, up, hid := e.get(rows*m.NFF), e.get(rows*m.NFF), e.get(rows*m.NFF)
	defer func() { e.put(gt); e.put(up); e.put(hid) }()
	ye := e.get(rows * m.NEmbd)
	defer e.put(ye)
	for ex := 0; ex < ne; ex++ {
		e.moeRows = e.moeRows[:0]
		for i, s := range sel {
			if s == ex {
				e.moeRows = append(e.moeRows, int32(i))
			}
		}
		c := len(e.moeRows)
		if c == 0 {
			continue
		}
		for i, rs := range e.moeRows {
			r := int(rs) / m.TopK
			copy(xe[i*m.NEmbd:(i+1)*m.NEmbd], x[r*m.NEmbd:])
		}
		k.MatMul(gt[:c*m.NFF], m.Gate[ex], xe[:c*m.NEmbd], c)
		k.MatMul(up[:c*m.NFF], m.Up[ex], xe[:c*m.NEmbd], c)
		k.SiLUMul(hid[:c*m.NFF], gt[:c*m.NFF], up[:c*m.NFF])
		k.MatMul(ye[:c*m.NEmbd], m.Down[ex], hid[:c*m.NFF], c)
		for i, rs := range e.moeRows {
			w := wts[rs]
			dst := eo[int(rs)*m.NEmbd : (int(rs)+1)*m.NEmbd]
			for j, v := range ye[i*m.NEmbd : (i+1)*m.NEmbd] {
				dst[j] = v * w
			}
		}
	}
	for r := 0; r < rows; r++ {
		o := out[r*m.NEmbd : (r+1)*m.NEmbd]
		copy(o, eo[r*m.TopK*m.NEmbd:])
		for j := 1; j < m.TopK; j++ {
			src := eo[(r*m.TopK+j)*m.NEmbd:]
			for i := range o {
				o[i] += src[i]
			}
		}
	}
}

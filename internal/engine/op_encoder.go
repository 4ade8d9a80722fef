package engine

import (
	"fmt"
	"math"
	"sync"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/gguf"
)

// The graph ops of encoder (embedding) models such as bert: LayerNorm,
// plain GELU, added embedding rows (positions, token types),
// non-causal attention inside each sequence of the batch without a KV
// cache, and pooling of each sequence into one row. GoExt implements
// them in portable Go, so every CPU backend has them; a backend whose
// ExtOps does not list them (vulkan) refuses an encoder model naming
// the op.
const (
	GOpLayerNorm = "layernorm"      // (x − mean)/sqrt(var + eps) per row
	GOpGELU      = "gelu"           // ggml_gelu (tanh approximation, f16 table)
	GOpAddRows   = "add_rows"       // x + rows of a weight picked by position or fixed
	GOpAttnFull  = "attention_full" // non-causal attention within each sequence
	GOpPool      = "pool"           // one row per sequence: mean, first or last row
)

// encoderOps are the ops of this file (GoExt lists them).
var encoderOps = [...]string{GOpLayerNorm, GOpGELU, GOpAddRows, GOpAttnFull, GOpPool}

// Encoder op codes (beyond graph.go's, which count up from 0).
const (
	gLayerNorm gop = 200 + iota
	gGELU
	gAddRows
	gAttnFull
	gPool
)

// Pooling types (GGUF NAME.pooling_type values, as llama.cpp numbers
// them).
const (
	PoolNone = 0
	PoolMean = 1
	PoolCLS  = 2
	PoolLast = 3
)

// poolingName is the backends.ModelInfo.Pooling of a pooling type.
func poolingName(p int) string {
	switch p {
	case PoolMean:
		return "mean"
	case PoolCLS:
		return "cls"
	case PoolLast:
		return "last"
	}
	return ""
}

// EncoderKernels are the encoder ops a Kernels set implements itself
// (GoExt does, portably).
type EncoderKernels interface {
	// LayerNorm normalizes each row of n elements of x to zero mean
	// and unit variance: out = (x − mean)/sqrt(var + eps).
	LayerNorm(out, x []float32, n int, eps float32)
	// GELU computes out[i] = gelu(x[i]) as ggml_gelu does on the CPU.
	GELU(out, x []float32)
}

// LayerNorm normalizes each row as ggml_norm: the mean and variance
// summed in float64, the result scaled in f32.
func (GoExt) LayerNorm(out, x []float32, n int, eps float32) {
	for r := 0; r+n <= len(x); r += n {
		xr, or := x[r:r+n], out[r:r+n]
		var sum float64
		for _, v := range xr {
			sum += float64(v)
		}
		mean := float32(sum / float64(n))
		var vs float64
		for i, v := range xr {
			d := v - mean
			or[i] = d
			vs += float64(d * d)
		}
		scale := float32(1 / math.Sqrt(float64(float32(vs/float64(n))+eps)))
		for i := range or {
			or[i] *= scale
		}
	}
}

// GELU is ggml's CPU gelu: 0 below −10, x above 10, else the tanh
// approximation looked up, as ggml does, in a table of f16 results
// indexed by the f16-rounded input.
func (GoExt) GELU(out, x []float32) {
	out = out[:len(x)]
	t := geluTable()
	for i, v := range x {
		switch {
		case v <= -10:
			out[i] = 0
		case v >= 10:
			out[i] = v
		default:
			out[i] = gguf.F16ToF32(t[gguf.F32ToF16(v)])
		}
	}
}

// geluTable is gelu of every f16 value, rounded to f16 (built once,
// read-only afterwards).
var geluTable = sync.OnceValue(func() *[1 << 16]uint16 {
	const c = 0.7978845608028654 // sqrt(2/π)
	var t [1 << 16]uint16
	for i := range t {
		h := float64(gguf.F16ToF32(uint16(i)))
		t[i] = gguf.F32ToF16(float32(0.5 * h * (1 + math.Tanh(c*h*(1+0.044715*h*h)))))
	}
	return &t
})

// LayerNorm normalizes every row of x (LayerNorm, not RMSNorm) and
// applies weight and bias (either may be nil).
func (g *Graph) LayerNorm(x Tensor, weight, bias []float32, eps float32) Tensor {
	s := g.shape(x)
	t := g.add(node{op: gLayerNorm, in: [3]Tensor{x, -1, -1}, n: s.cols, f: eps}, s.rows, s.cols, GOpLayerNorm)
	if weight != nil {
		t = g.add(node{op: gLayerNorm, in: [3]Tensor{t, -1, -1}, vec: weight, n: -1}, s.rows, s.cols, GOpLayerNorm)
	}
	return g.AddRow(t, bias)
}

// GELU returns gelu(x).
func (g *Graph) GELU(x Tensor) Tensor {
	s := g.shape(x)
	return g.add(node{op: gGELU, in: [3]Tensor{x, -1, -1}}, s.rows, s.cols, GOpGELU)
}

// AddPosRows adds to every row of x the row of w at the row's batch
// position (absolute position embeddings).
func (g *Graph) AddPosRows(x Tensor, w *Weight) Tensor {
	s := g.shape(x)
	return g.add(node{op: gAddRows, in: [3]Tensor{x, -1, -1}, w: w, n: -1}, s.rows, s.cols, GOpAddRows)
}

// AddFixedRow adds row r of w to every row of x (token type 0).
func (g *Graph) AddFixedRow(x Tensor, w *Weight, r int) Tensor {
	s := g.shape(x)
	return g.add(node{op: gAddRows, in: [3]Tensor{x, -1, -1}, w: w, n: r}, s.rows, s.cols, GOpAddRows)
}

// AttentionFull attends every row of q to every row of k and v of the
// same sequence (bidirectional, no KV cache); spec.Layer is unused.
func (g *Graph) AttentionFull(q, k, v Tensor, spec AttentionSpec) Tensor {
	s := g.shape(q)
	sp := spec
	return g.add(node{op: gAttnFull, in: [3]Tensor{q, k, v}, att: &sp}, s.rows, s.cols, GOpAttnFull)
}

// Pool reduces the rows of each sequence of the batch to one row (mode
// PoolMean, PoolCLS or PoolLast); the result has one row per sequence,
// in batch order.
func (g *Graph) Pool(x Tensor, mode int) Tensor {
	s := g.shape(x)
	return g.add(node{op: gPool, in: [3]Tensor{x, -1, -1}, n: mode}, seqCount(g.batch.Seq), s.cols, GOpPool)
}

// seqCount returns the number of runs of equal ids in seq.
func seqCount(seq []int32) int {
	n := 0
	for i := range seq {
		if i == 0 || seq[i] != seq[i-1] {
			n++
		}
	}
	return n
}

// encoderOp runs one node of this file's ops.
func (e *executor) encoderOp(n *node, g *Graph, bufs [][]float32, out []float32) error {
	x := bufs[n.in[0]]
	xs := g.shapes[n.in[0]]
	b := g.batch
	switch n.op {
	case gLayerNorm:
		ek, ok := e.k.(EncoderKernels)
		if !ok {
			return fmt.Errorf("%w: graph op %s", backends.ErrUnsupported, GOpLayerNorm)
		}
		if n.n < 0 { // weight
			for r := 0; r < xs.rows; r++ {
				xr, or := x[r*xs.cols:(r+1)*xs.cols], out[r*xs.cols:(r+1)*xs.cols]
				for i, w := range n.vec {
					or[i] = xr[i] * w
				}
			}
			return nil
		}
		ek.LayerNorm(out, x, n.n, n.f)
	case gGELU:
		ek, ok := e.k.(EncoderKernels)
		if !ok {
			return fmt.Errorf("%w: graph op %s", backends.ErrUnsupported, GOpGELU)
		}
		ek.GELU(out, x)
	case gAddRows:
		ids := make([]int32, xs.rows)
		if n.n < 0 {
			copy(ids, b.Pos)
		} else {
			for i := range ids {
				ids[i] = int32(n.n)
			}
		}
		for _, id := range ids {
			if id < 0 || int(id) >= n.w.Rows {
				return fmt.Errorf("%w: row %d of %s is out of range [0, %d) (position beyond the model's context?)", backends.ErrInvalidArgument, id, n.w.Name, n.w.Rows)
			}
		}
		e.k.GetRows(out, n.w, ids)
		e.k.Add(out, x, out)
	case gAttnFull:
		return e.attentionFull(n, g, bufs, out)
	case gPool:
		poolRows(out, x, xs.cols, b.Seq, n.n)
	default:
		return fmt.Errorf("%w: graph op %d", backends.ErrUnsupported, n.op)
	}
	return nil
}

// attentionFull is bidirectional grouped-query attention inside each
// run of rows of one sequence, on the kernels' MatMul over f32 copies of
// each head's K and Vᵀ: scores K·q·Scale, softmax, Vᵀ·p (f32 throughout,
// as llama.cpp's no-cache attention without flash attention).
func (e *executor) attentionFull(n *node, g *Graph, bufs [][]float32, out []float32) error {
	a := n.att
	q, kr, vr := bufs[n.in[0]], bufs[n.in[1]], bufs[n.in[2]]
	hd := a.HeadDim
	qd := a.NHead * hd
	kvd := a.NHeadKV * hd
	if a.NHeadKV <= 0 || a.NHead%a.NHeadKV != 0 {
		return fmt.Errorf("%w: %d query heads over %d kv heads", backends.ErrInvalidArgument, a.NHead, a.NHeadKV)
	}
	grp := a.NHead / a.NHeadKV
	seq := g.batch.Seq
	for r0 := 0; r0 < len(seq); {
		r1 := r0 + 1
		for r1 < len(seq) && seq[r1] == seq[r0] {
			r1++
		}
		nr := r1 - r0
		// Query rows go in blocks so that the scores stay within
		// maxScoreFloats however long the sequence.
		qb := max(1, min(nr, maxScoreFloats/nr))
		kh, vt, qh, oh, sc := e.get(nr*hd), e.get(hd*nr), e.get(qb*hd), e.get(qb*hd), e.get(qb*nr)
		for kvh := 0; kvh < a.NHeadKV; kvh++ {
			for j := 0; j < nr; j++ {
				src := (r0+j)*kvd + kvh*hd
				copy(kh[j*hd:(j+1)*hd], kr[src:src+hd])
				for d, v := range vr[src : src+hd] {
					vt[d*nr+j] = v
				}
			}
			kw := &Weight{Name: "attention.k", Type: gguf.TypeF32, Rows: nr, Cols: hd, Data: gguf.F32Bytes(kh)}
			vw := &Weight{Name: "attention.vt", Type: gguf.TypeF32, Rows: hd, Cols: nr, Data: gguf.F32Bytes(vt)}
			for h := kvh * grp; h < (kvh+1)*grp; h++ {
				for i0 := 0; i0 < nr; i0 += qb {
					m := min(qb, nr-i0)
					for i := 0; i < m; i++ {
						copy(qh[i*hd:(i+1)*hd], q[(r0+i0+i)*qd+h*hd:])
					}
					s := sc[:m*nr]
					e.k.MatMul(s, kw, qh[:m*hd], m)
					for i := range s {
						s[i] *= a.Scale
					}
					e.k.Softmax(s, nr)
					e.k.MatMul(oh[:m*hd], vw, s, m)
					for i := 0; i < m; i++ {
						copy(out[(r0+i0+i)*qd+h*hd:(r0+i0+i)*qd+(h+1)*hd], oh[i*hd:(i+1)*hd])
					}
				}
			}
		}
		e.put(kh)
		e.put(vt)
		e.put(qh)
		e.put(oh)
		e.put(sc)
		r0 = r1
	}
	return nil
}

// maxScoreFloats bounds the attention scores held at once (16 MiB).
const maxScoreFloats = 1 << 22

// poolRows writes one row of width c per run of equal seq ids of x:
// their mean, their first row or their last row.
func poolRows(out, x []float32, c int, seq []int32, mode int) {
	o := 0
	for r0 := 0; r0 < len(seq); {
		r1 := r0 + 1
		for r1 < len(seq) && seq[r1] == seq[r0] {
			r1++
		}
		dst := out[o*c : (o+1)*c]
		switch mode {
		case PoolCLS:
			copy(dst, x[r0*c:(r0+1)*c])
		case PoolLast:
			copy(dst, x[(r1-1)*c:r1*c])
		default:
			for i := range dst {
				var s float64
				for r := r0; r < r1; r++ {
					s += float64(x[r*c+i])
				}
				dst[i] = float32(s / float64(r1-r0))
			}
		}
		o++
		r0 = r1
	}
}

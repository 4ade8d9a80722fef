package engine

import "slices"

// A Graph is the forward pass of one batch of tokens as a list of ops
// over f32 tensors, emitted by an architecture builder (arch_*.go) and
// run by the executor (exec.go) on a backend's Kernels. Builders never
// see kernels and kernels never see builders: the graph is the only
// thing between them.
//
// Every tensor is a matrix of rows × cols f32 values, row-major; a row
// is usually one token of the batch. Nodes are in execution order; a
// node reads tensors written by earlier nodes.

// Graph op names. The base set is what every Kernels implements; the
// others need ExtKernels that list them in ExtOps.
const (
	GOpGetRows   = "get_rows"
	GOpRMSNorm   = "rmsnorm"
	GOpMatMul    = "matmul"
	GOpRoPE      = "rope"
	GOpAttention = "attention"
	GOpSiLUMul   = "silu_mul"
	GOpAdd       = "add"
	GOpSoftmax   = "softmax"

	GOpRoPEExt      = "rope_ext"          // NeoX pairs, frequency factors, scaled frequencies
	GOpAttnWindow   = "attention_window"  // sliding-window attention
	GOpAttnSoftCap  = "attention_softcap" // tanh soft-capping of attention scores
	GOpGELUMul      = "gelu_mul"
	GOpScale        = "scale"
	GOpSoftCap      = "softcap"
	GOpAddRow       = "add_row" // bias: one row added to every row
	GOpMoE          = "moe"     // mixture of experts (routing in the executor, experts on MatMul)
	GOpSelectRows   = "select_rows"
	GOpSplitColumns = "split_columns"
)

// baseOps are the graph ops every Kernels implements.
var baseOps = [...]string{GOpGetRows, GOpRMSNorm, GOpMatMul, GOpRoPE, GOpAttention,
	GOpSiLUMul, GOpAdd, GOpSoftmax, GOpMoE, GOpSelectRows, GOpSplitColumns}

// gop is a graph op code.
type gop uint8

const (
	gGetRows gop = iota
	gRMSNorm
	gMatMul
	gRoPE
	gRoPEExt
	gAttention
	gSiLUMul
	gGELUMul
	gAdd
	gAddRow
	gScale
	gSoftCap
	gMoE
	gSelectRows
	gColumns
)

// Tensor is a tensor of a Graph (an index into its tensor list).
type Tensor int32

// tensorShape is the shape of one graph tensor.
type tensorShape struct{ rows, cols int }

// node is one op of a Graph.
type node struct {
	op    gop
	out   Tensor
	in    [3]Tensor
	w     *Weight   // matmul, get_rows
	vec   []float32 // norm weight, bias row
	f     float32   // eps, scale, cap
	n     int       // norm width, column offset
	heads int       // rope: heads per row
	rope  *RoPEParams
	att   *AttentionSpec
	moe   *MoESpec
	rows  []int32 // select_rows
}

// AttentionSpec describes one attention node: the layer whose KV cache
// it uses and the attention parameters.
type AttentionSpec struct {
	Layer   int
	NHead   int
	NHeadKV int
	HeadDim int
	Scale   float32
	Window  int     // sliding window in positions (0: none)
	SoftCap float32 // score soft-capping (0: none)
}

// MoESpec is a mixture-of-experts feed-forward block: Router scores
// (rows = experts) pick the TopK experts of each token; their gate/up
// products go through SiLU·up and Down; the outputs are summed with the
// routing weights.
type MoESpec struct {
	Router     *Weight
	Gate, Up   []*Weight // one per expert
	Down       []*Weight
	TopK       int
	NormTopK   bool // renormalize the top-k weights to sum 1
	NFF        int
	NEmbd      int
	SoftmaxAll bool // softmax over all experts before top-k (else over the top-k only)
}

// Batch is the input of one forward pass: per token its id, position
// and sequence. Rows of one sequence must be contiguous and have
// consecutive positions; attention reads and writes each sequence's own
// KV view, so one graph can serve several sessions.
type Batch struct {
	Tokens []int32
	Pos    []int32
	Seq    []int32
	// All asks for the logits of every row; otherwise only of the last
	// row of each sequence.
	All bool
	// NCtx is the context size of the sequences (some architectures
	// pick rope factors by it).
	NCtx int
}

// Graph is a forward pass under construction or ready to run.
type Graph struct {
	batch  *Batch
	rows   int
	shapes []tensorShape
	nodes  []node
	out    Tensor // the logits
	needs  map[string]bool
}

// newGraph returns an empty graph for batch b.
func newGraph(b *Batch) *Graph {
	return &Graph{batch: b, rows: len(b.Tokens), out: -1, needs: make(map[string]bool)}
}

// Rows returns the number of rows (tokens) of the batch.
func (g *Graph) Rows() int { return g.rows }

// Batch returns the batch the graph is built for.
func (g *Graph) Batch() *Batch { return g.batch }

func (g *Graph) tensor(rows, cols int) Tensor {
	g.shapes = append(g.shapes, tensorShape{rows, cols})
	return Tensor(len(g.shapes) - 1)
}

func (g *Graph) add(n node, rows, cols int, op string) Tensor {
	n.out = g.tensor(rows, cols)
	g.needs[op] = true
	g.nodes = append(g.nodes, n)
	return n.out
}

func (g *Graph) shape(t Tensor) tensorShape { return g.shapes[t] }

// Embed looks up the rows of w for the batch's tokens.
func (g *Graph) Embed(w *Weight) Tensor {
	return g.add(node{op: gGetRows, w: w, in: [3]Tensor{-1, -1, -1}}, g.Rows(), w.Cols, GOpGetRows)
}

// RMSNorm normalizes every group of n elements of x (n = the row width
// for a whole-row norm, the head size for per-head norms) and multiplies
// by weight (n elements).
func (g *Graph) RMSNorm(x Tensor, weight []float32, n int, eps float32) Tensor {
	s := g.shape(x)
	return g.add(node{op: gRMSNorm, in: [3]Tensor{x, -1, -1}, vec: weight, n: n, f: eps}, s.rows, s.cols, GOpRMSNorm)
}

// MatMul multiplies every row of x by w (x's width must be w.Cols).
func (g *Graph) MatMul(w *Weight, x Tensor) Tensor {
	s := g.shape(x)
	return g.add(node{op: gMatMul, w: w, in: [3]Tensor{x, -1, -1}}, s.rows, w.Rows, GOpMatMul)
}

// AddRow adds row (x's width) to every row of x; nil row returns x.
func (g *Graph) AddRow(x Tensor, row []float32) Tensor {
	if row == nil {
		return x
	}
	s := g.shape(x)
	return g.add(node{op: gAddRow, in: [3]Tensor{x, -1, -1}, vec: row}, s.rows, s.cols, GOpAddRow)
}

// Linear is MatMul followed by an optional bias.
func (g *Graph) Linear(w *Weight, bias []float32, x Tensor) Tensor {
	return g.AddRow(g.MatMul(w, x), bias)
}

// Columns returns columns [off, off+n) of every row of x.
func (g *Graph) Columns(x Tensor, off, n int) Tensor {
	s := g.shape(x)
	return g.add(node{op: gColumns, in: [3]Tensor{x, -1, -1}, n: off}, s.rows, n, GOpSplitColumns)
}

// RoPE rotates x ([rows][heads·headDim]) by the batch positions. The
// plain llama rotation (adjacent pairs, no scaling) uses the base RoPE
// kernel; anything else needs rope_ext.
func (g *Graph) RoPE(x Tensor, heads int, p RoPEParams) Tensor {
	s := g.shape(x)
	if p.plain() {
		return g.add(node{op: gRoPE, in: [3]Tensor{x, -1, -1}, heads: heads, rope: &p}, s.rows, s.cols, GOpRoPE)
	}
	return g.add(node{op: gRoPEExt, in: [3]Tensor{x, -1, -1}, heads: heads, rope: &p}, s.rows, s.cols, GOpRoPEExt)
}

// Attention stores k and v (one row per token) into layer spec.Layer of
// each row's sequence KV view and attends q over that view (causal,
// optionally windowed and soft-capped).
func (g *Graph) Attention(q, k, v Tensor, spec AttentionSpec) Tensor {
	s := g.shape(q)
	sp := spec
	t := g.add(node{op: gAttention, in: [3]Tensor{q, k, v}, att: &sp}, s.rows, s.cols, GOpAttention)
	if spec.Window > 0 {
		g.needs[GOpAttnWindow] = true
	}
	if spec.SoftCap != 0 {
		g.needs[GOpAttnSoftCap] = true
	}
	return t
}

// SiLUMul returns silu(gate)·up.
func (g *Graph) SiLUMul(gate, up Tensor) Tensor {
	s := g.shape(gate)
	return g.add(node{op: gSiLUMul, in: [3]Tensor{gate, up, -1}}, s.rows, s.cols, GOpSiLUMul)
}

// GELUMul returns gelu(gate)·up (tanh approximation, as ggml_gelu).
func (g *Graph) GELUMul(gate, up Tensor) Tensor {
	s := g.shape(gate)
	return g.add(node{op: gGELUMul, in: [3]Tensor{gate, up, -1}}, s.rows, s.cols, GOpGELUMul)
}

// Add returns a+b.
func (g *Graph) Add(a, b Tensor) Tensor {
	s := g.shape(a)
	return g.add(node{op: gAdd, in: [3]Tensor{a, b, -1}}, s.rows, s.cols, GOpAdd)
}

// Scale returns x·f.
func (g *Graph) Scale(x Tensor, f float32) Tensor {
	s := g.shape(x)
	return g.add(node{op: gScale, in: [3]Tensor{x, -1, -1}, f: f}, s.rows, s.cols, GOpScale)
}

// SoftCap returns c·tanh(x/c).
func (g *Graph) SoftCap(x Tensor, c float32) Tensor {
	s := g.shape(x)
	return g.add(node{op: gSoftCap, in: [3]Tensor{x, -1, -1}, f: c}, s.rows, s.cols, GOpSoftCap)
}

// MoE runs a mixture-of-experts feed-forward block on x.
func (g *Graph) MoE(x Tensor, spec *MoESpec) Tensor {
	s := g.shape(x)
	return g.add(node{op: gMoE, in: [3]Tensor{x, -1, -1}, moe: spec}, s.rows, spec.NEmbd, GOpMoE)
}

// OutputRows keeps the rows of x whose logits the batch asks for (all
// rows, or the last row of each sequence).
func (g *Graph) OutputRows(x Tensor) Tensor {
	b := g.batch
	if b.All {
		return x
	}
	var rows []int32
	for i := range b.Seq {
		if i == len(b.Seq)-1 || b.Seq[i+1] != b.Seq[i] {
			rows = append(rows, int32(i))
		}
	}
	if len(rows) == len(b.Seq) {
		return x
	}
	s := g.shape(x)
	return g.add(node{op: gSelectRows, in: [3]Tensor{x, -1, -1}, rows: rows}, len(rows), s.cols, GOpSelectRows)
}

// SetOutput marks t as the logits of the pass.
func (g *Graph) SetOutput(t Tensor) { g.out = t }

// Ops lists the graph ops the graph uses, sorted.
func (g *Graph) Ops() []string {
	ops := make([]string, 0, len(g.needs))
	for op := range g.needs {
		ops = append(ops, op)
	}
	slices.Sort(ops)
	return ops
}

package engine

// Read-only access to a Graph for executors outside this package (the
// vulkan backend records the same graphs into command buffers). The
// graph stays the one thing between builders and backends: an executor
// walks Nodes in order, reads each node's parameters and allocates
// Shape(t) for every tensor it writes.

// name returns the GOp* name of op code o.
func (o gop) name() string {
	switch o {
	case gGetRows:
		return GOpGetRows
	case gRMSNorm:
		return GOpRMSNorm
	case gMatMul:
		return GOpMatMul
	case gRoPE:
		return GOpRoPE
	case gRoPEExt:
		return GOpRoPEExt
	case gAttention:
		return GOpAttention
	case gSiLUMul:
		return GOpSiLUMul
	case gGELUMul:
		return GOpGELUMul
	case gAdd:
		return GOpAdd
	case gAddRow:
		return GOpAddRow
	case gScale:
		return GOpScale
	case gSoftCap:
		return GOpSoftCap
	case gMoE:
		return GOpMoE
	case gSelectRows:
		return GOpSelectRows
	case gColumns:
		return GOpSplitColumns
	}
	return "unknown"
}

// Node is a read-only view of one op of a Graph. Which fields are set
// depends on Op:
//   - get_rows: Weight (rows looked up by the batch's tokens);
//   - rmsnorm: In[0], Vec (N elements), N (group width), F (eps);
//   - matmul: In[0], Weight;
//   - rope, rope_ext: In[0] (rotated; may be written in place), Heads, RoPE;
//   - attention: In[0..2] = q, k, v, Attn;
//   - silu_mul, gelu_mul, add: In[0], In[1];
//   - add_row: In[0], Vec (one row);
//   - scale, softcap: In[0], F;
//   - moe: In[0], MoE;
//   - select_rows: In[0], Rows;
//   - split_columns: In[0], N (first column; the width is Out's).
//
// Unused inputs are -1. Slices and pointers alias the model's weights
// and are the same on every graph of one model: executors may key
// device copies by them.
type Node struct {
	Op     string
	Out    Tensor
	In     [3]Tensor
	Weight *Weight
	Vec    []float32
	F      float32
	N      int
	Heads  int
	RoPE   *RoPEParams
	Attn   *AttentionSpec
	MoE    *MoESpec
	Rows   []int32
}

// NumNodes returns the number of nodes of g.
func (g *Graph) NumNodes() int { return len(g.nodes) }

// Node returns node i of g (0 ≤ i < NumNodes), in execution order.
func (g *Graph) Node(i int) Node {
	n := &g.nodes[i]
	return Node{Op: n.op.name(), Out: n.out, In: n.in, Weight: n.w, Vec: n.vec, F: n.f, N: n.n,
		Heads: n.heads, RoPE: n.rope, Attn: n.att, MoE: n.moe, Rows: n.rows}
}

// NumTensors returns the number of tensors of g.
func (g *Graph) NumTensors() int { return len(g.shapes) }

// Shape returns the rows and columns of tensor t.
func (g *Graph) Shape(t Tensor) (rows, cols int) {
	s := g.shapes[t]
	return s.rows, s.cols
}

// Output returns the tensor holding the logits (-1 before SetOutput).
func (g *Graph) Output() Tensor { return g.out }

// Graph builds the forward pass of batch b with the model's builder.
// Rows of one sequence must be contiguous with consecutive positions
// (see Batch); the caller checks token ids and positions.
func (m *Model) Graph(b *Batch) *Graph { return m.graph(b) }

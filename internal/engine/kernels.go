// Package engine runs transformer models on the CPU backends: an
// architecture builder per general.architecture (arch_*.go) turns a
// batch into a small op graph (graph.go), which the executor (exec.go)
// runs on the Kernels interface; each backend (reference, cpu-avx2,
// cpu-neon) supplies its own kernels.
package engine

import "github.com/realmrt/realm/gguf"

// Weight is a 2-D weight matrix in its GGUF block layout: Rows rows of
// Cols elements each; row r occupies Data[r*RowBytes : (r+1)*RowBytes]
// where RowBytes = Type.RowBytes(Cols). Data usually aliases the mapped
// model file and must be treated as read-only.
type Weight struct {
	Name string
	Type gguf.Type
	Rows int
	Cols int
	Data []byte
	// Layout is 0 for the GGUF block layout above. A WeightPreparer may
	// store Data in a layout of its own (of the same length) and mark it
	// with a non-zero Layout private to its Kernels: every method of
	// those Kernels that receives the weight then reads that layout.
	Layout uint8
}

// RowBytes returns the size of one row of w in bytes.
func (w *Weight) RowBytes() int {
	n, _ := w.Type.RowBytes(int64(w.Cols))
	return int(n)
}

// AttentionParams describes one causal grouped-query attention call.
type AttentionParams struct {
	NHead    int     // query heads
	NHeadKV  int     // key/value heads; NHead is a multiple of NHeadKV
	HeadDim  int     // elements per head
	Batch    int     // query rows
	StartPos int     // cache position of the first query row
	Scale    float32 // usually 1/sqrt(HeadDim)
	// Window, when positive, limits query row b to cache rows
	// StartPos+b-Window+1 .. StartPos+b (sliding-window attention).
	// Only kernels whose ExtOps list GOpAttnWindow honour it.
	Window int
	// SoftCap, when non-zero, replaces each scaled score s by
	// SoftCap·tanh(s/SoftCap) before the softmax. Only kernels whose
	// ExtOps list GOpAttnSoftCap honour it.
	SoftCap float32
}

// Kernels is the small set of operations the forward pass needs. All
// slices are f32, row-major, with rows contiguous. Implementations may
// use threads internally but must return only when the result is
// complete, and must not retain any slice after returning. They must
// write exactly the documented output elements and nothing else.
type Kernels interface {
	// MatMul computes out[b*w.Rows+r] = Σ_k w[r][k]·x[b*w.Cols+k] for
	// b < batch, r < w.Rows. It may quantize x the way llama.cpp does
	// for the weight type before an integer dot product.
	MatMul(out []float32, w *Weight, x []float32, batch int)

	// GetRows dequantizes rows ids[i] of w into out[i*w.Cols:(i+1)*w.Cols].
	GetRows(out []float32, w *Weight, ids []int32)

	// RMSNorm normalizes each row of n elements of x:
	// out = x / sqrt(mean(x²) + eps) * weight (weight has n elements).
	RMSNorm(out, x, weight []float32, n int, eps float32)

	// RoPE rotates, in place, x laid out [len(pos)][nHeads][headDim]:
	// for row b at position pos[b], each head's first nDims elements are
	// rotated in adjacent pairs (2i, 2i+1) by angle pos·base^(−2i/nDims)
	// (ggml's "normal" RoPE mode, the one llama models use).
	RoPE(x []float32, pos []int32, nHeads, headDim, nDims int, base float32)

	// Softmax replaces each row of n elements of x by its softmax.
	Softmax(x []float32, n int)

	// SiLUMul computes out[i] = silu(gate[i])·up[i], silu(v) = v/(1+e^−v).
	SiLUMul(out, gate, up []float32)

	// Add computes out[i] = a[i] + b[i].
	Add(out, a, b []float32)

	// Mul computes out[i] = a[i] · b[i].
	Mul(out, a, b []float32)

	// Attention computes causal grouped-query attention for one layer.
	// q is [Batch][NHead][HeadDim]; k and v are the layer's cache,
	// [ctx][NHeadKV][HeadDim] with at least StartPos+Batch rows filled;
	// query row b attends to cache rows 0..StartPos+b inclusive, and
	// query head h uses kv head h/(NHead/NHeadKV). out is
	// [Batch][NHead][HeadDim].
	Attention(out, q, k, v []float32, p AttentionParams)
}

// Closer is implemented by kernels that hold resources (thread pools).
type Closer interface {
	Close() error
}

// WeightPreparer is implemented by kernels that want to place the
// model's matrix weights in memory of their own (for example a copy in
// huge pages, which streams faster than the file mapping).
// The engine calls PrepareWeights once per loaded model, after the
// model is validated and before any kernel call uses it, with every
// matrix weight (each *Weight once). The preparer may give each Weight
// a new Data holding the same bytes, or the same bytes in a layout of
// its own marked by Weight.Layout; it must not change any other field.
//
// It does so only through p.Swap: it calls it exactly once when
// PrepareWeights succeeds, before returning or later from a goroutine
// of its own (work in the background, so that the model serves its
// first tokens from the file mapping instead of waiting for a copy),
// with an apply function (nil: nothing to place) that the engine runs
// while no pass uses the model's weights; apply sets the new Data and
// Layout. p.FirstPass is closed when the model's first forward pass
// ends: background work may wait for it, so as not to slow the first
// token down. Until then the weights stay as they were and the model
// counts as preparing (backends.Info.Preparing). extraBytes is the
// memory it holds beyond the file mapping (reported as
// ModelInfo.ExtraBytes). The engine calls release (if non-nil) exactly
// once, at unload, after no pass uses the model any more; release stops
// background work (swap is then not called, or returns at once) and
// frees the memory. An error fails the load; the preparer must then
// have released what it took, left every Data unchanged and not call
// swap.
type WeightPreparer interface {
	PrepareWeights(ws []*Weight, p Placement) (release func(), extraBytes uint64, err error)
}

// Placement is what the engine gives a WeightPreparer.
type Placement struct {
	// Swap runs apply (if non-nil) while no pass uses the weights, and
	// ends the model's preparing state.
	Swap func(apply func())
	// FirstPass is closed when the model's first forward pass ends (it
	// stays open if the model never runs one).
	FirstPass <-chan struct{}
}

// F16Attention is implemented by kernels that attend directly over the
// KV pool's f16 blocks; the engine converts the cache to f32 for the
// plain Attention of kernels without it.
type F16Attention interface {
	// ToF16 rounds src to the nearest f16 values (ties to even) and
	// stores their bits in dst (len(dst) == len(src)).
	ToF16(dst []uint16, src []float32)

	// AttentionF16 is Attention over a block table: kv.K[i] and kv.V[i]
	// hold cache positions i·KVBlockSize .. (i+1)·KVBlockSize-1, each
	// [KVBlockSize][NHeadKV][HeadDim] f16, with at least StartPos+Batch
	// positions filled. Query rows, heads, window and soft cap are as
	// for Attention.
	AttentionF16(out, q []float32, kv KVView, p AttentionParams)
}

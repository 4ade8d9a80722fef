// Package backends defines the contract between the Realm host and its
// compute backends: the Backend interface, the types that cross it, and
// (in the files beside this one) the go-plugin/gRPC transport that
// carries it to out-of-process plugins.
package backends

import (
	"context"
	"errors"

	"github.com/realmrt/realm/gguf"
)

// ModelID names a model loaded in one backend process.
type ModelID uint64

// SessionID names a session (a KV cache and position) in one backend process.
type SessionID uint64

// Backend is what the host needs from a compute backend. Every method
// honours ctx: cancellation and deadlines stop the work.
type Backend interface {
	// Info describes the backend.
	Info(ctx context.Context) (*Info, error)
	// LoadModel opens and maps the GGUF file at req.Path; the backend
	// owns that memory until UnloadModel.
	LoadModel(ctx context.Context, req LoadRequest) (*ModelInfo, error)
	// UnloadModel releases a model and closes its sessions.
	UnloadModel(ctx context.Context, id ModelID) error
	// OpenSession opens a session of up to nCtx positions on a model.
	OpenSession(ctx context.Context, id ModelID, nCtx int) (SessionID, error)
	// Decode appends tokens to a session and returns the logits of the
	// last position or a token sampled from them.
	Decode(ctx context.Context, req DecodeRequest) (*DecodeResult, error)
	// Truncate rewinds a session to its first n positions.
	Truncate(ctx context.Context, id SessionID, n int) error
	// CloseSession releases a session.
	CloseSession(ctx context.Context, id SessionID) error
	// TensorOp runs one kernel operation on the given inputs.
	TensorOp(ctx context.Context, req TensorOpRequest) (*TensorOpResult, error)
	// Embed runs an embedding model (one whose ModelInfo.Pooling is
	// set) over a batch of token sequences and returns one pooled vector
	// per sequence. A model that does not pool, or a backend that cannot
	// run it, fails with ErrUnsupported.
	Embed(ctx context.Context, req EmbedRequest) (*EmbedResult, error)
}

// Sentinel errors. The gRPC transport maps them to status codes and
// back, so callers use errors.Is on both sides of the plugin boundary.
var (
	ErrNotFound        = errors.New("not found")
	ErrInvalidArgument = errors.New("invalid argument")
	ErrContextFull     = errors.New("context full")
	ErrUnsupported     = errors.New("unsupported")
	ErrInvalidModel    = errors.New("invalid model file")
	ErrOutOfMemory     = errors.New("out of memory")
	// ErrBackendCrashed reports that the plugin process died (or stopped
	// answering) while the call was in flight or before it was made.
	ErrBackendCrashed = errors.New("backend crashed")
	// ErrStaleHandle reports a model or session id from a plugin process
	// that has since been restarted.
	ErrStaleHandle = errors.New("stale handle")
)

// Info describes a backend.
type Info struct {
	Name            string      `json:"name"`
	Version         string      `json:"version"`
	ProtocolVersion int         `json:"protocol_version"`
	Features        []string    `json:"features"` // CPU features the kernels were compiled for and use
	Types           []gguf.Type `json:"types"`    // weight types with native kernels
	// Ops lists the tensor ops TensorOp accepts, then (CPU engine and
	// vulkan) "graph.NAME" for each op of the model graph the backend
	// executes and "arch.NAME" for each general.architecture it runs.
	Ops     []string `json:"ops"`
	Devices []Device `json:"devices,omitempty"`
	Threads int      `json:"threads"`
	// KVPools describes the KV pool of each loaded model, for backends
	// with one (the CPU engine), at the time of the call.
	KVPools []KVPoolStats `json:"kv_pools,omitempty"`
	// Preparing lists the loaded models whose weights the backend is
	// still placing in memory of its own after the load returned (the
	// CPU engine copies them into huge pages in the background while the
	// model already serves from the file mapping): figures measured
	// before such a model leaves the list are not its steady speed.
	Preparing []ModelID `json:"preparing,omitempty"`
}

// KVPoolStats describes one model's KV pool: its memory and the
// counters of prefix reuse.
type KVPoolStats struct {
	Model ModelID `json:"model"`
	// Path is the model's file; the host's supervisor fills it in (it
	// does not cross the plugin boundary).
	Path           string `json:"path,omitempty"`
	BudgetBytes    uint64 `json:"budget_bytes"`    // the most the pool allocates
	AllocatedBytes uint64 `json:"allocated_bytes"` // allocated so far
	UsedBytes      uint64 `json:"used_bytes"`      // held by sessions
	CachedBytes    uint64 `json:"cached_bytes"`    // kept only for prefix reuse
	BlockTokens    int    `json:"block_tokens"`    // positions per block
	Hits           uint64 `json:"hits"`            // prefix blocks reused
	Misses         uint64 `json:"misses"`          // prompt blocks looked up and computed
	Evictions      uint64 `json:"evictions"`       // cached blocks taken back
}

// Device describes an accelerator a backend uses (empty for CPU backends).
type Device struct {
	Name        string `json:"name"`
	Kind        string `json:"kind"` // "discrete", "integrated", "cpu", ...
	Driver      string `json:"driver,omitempty"`
	MemoryBytes uint64 `json:"memory_bytes,omitempty"`
}

// LoadRequest asks a backend to load a model file.
type LoadRequest struct {
	Path string `json:"path"`
	// KVBudget is the most memory the backend gives the KV caches of
	// the model's sessions together, in bytes (0: the backend's
	// default). Backends with a shared KV pool size it from this.
	KVBudget uint64 `json:"kv_budget,omitempty"`
}

// ModelInfo describes a loaded model.
type ModelInfo struct {
	ID        ModelID `json:"id"`
	Arch      string  `json:"arch"`
	NCtxTrain int     `json:"n_ctx_train"`
	NVocab    int     `json:"n_vocab"`
	NEmbd     int     `json:"n_embd"`
	NLayer    int     `json:"n_layer"`
	NHead     int     `json:"n_head"`
	NHeadKV   int     `json:"n_head_kv"`
	NFF       int     `json:"n_ff"`
	// Pooling is how Embed pools the token vectors of a sequence
	// ("mean", "cls", "last"), empty for a model that does not embed.
	Pooling     string         `json:"pooling,omitempty"`
	TensorTypes map[string]int `json:"tensor_types"` // type name → tensor count
	WeightBytes uint64         `json:"weight_bytes"`
	ExtraBytes  uint64         `json:"extra_bytes"` // repacked copies, device buffers, ...
	// KVBudgetBytes is the KV pool the backend gave the model (0: no
	// shared pool).
	KVBudgetBytes uint64           `json:"kv_budget_bytes,omitempty"`
	TensorShapes  map[string][]int `json:"-"`
}

// Want selects what Decode returns.
type Want int

// Decode outputs.
const (
	WantLogits Want = iota // the logits of the last position
	WantSample             // a token sampled with DecodeRequest.Sample
	WantNone               // nothing (prefill only)
)

// DecodeRequest appends Tokens to a session.
type DecodeRequest struct {
	Session SessionID
	Tokens  []int32
	Want    Want
	Sample  SampleParams
}

// DecodeResult is the outcome of a Decode.
type DecodeResult struct {
	Logits []float32 // WantLogits: len = n_vocab
	Token  int32     // WantSample: the sampled token
	NPast  int       // session length after the call
}

// TensorRef is an input of a TensorOp: either a weight of a loaded model
// (Model and Name set, Data nil) or inline data of the given type and
// shape. Shape lists dimensions fastest-varying first, like GGUF.
type TensorRef struct {
	Model ModelID
	Name  string
	Type  gguf.Type
	Shape []int
	Data  []byte
}

// Tensor op names accepted by TensorOp.
const (
	OpMatMul    = "matmul"    // inputs: weight [cols, rows], x [cols, batch] f32 → [rows, batch]
	OpGetRows   = "get_rows"  // inputs: weight [cols, rows]; Params.IDs → [cols, len(IDs)]
	OpRMSNorm   = "rmsnorm"   // inputs: x [n, rows], weight [n]; Params.Eps
	OpRoPE      = "rope"      // inputs: x [headDim, nHeads, len(Pos)]; Params.Pos, NDims, Base
	OpSoftmax   = "softmax"   // inputs: x [n, rows]
	OpSiLUMul   = "silu_mul"  // inputs: gate, up (same shape)
	OpSiLU      = "silu"      // inputs: x
	OpAdd       = "add"       // inputs: a, b (same shape)
	OpMul       = "mul"       // inputs: a, b (same shape)
	OpAttention = "attention" // inputs: q [HeadDim, NHead, Batch], k, v [HeadDim, NHeadKV, ctx]; Params attention fields
)

// OpSpec is one tensor op: its name and how many inputs it takes.
type OpSpec struct {
	Name   string
	Inputs int
}

// OpSpecs lists every tensor op TensorOp knows, in a fixed order: the
// one list the host (core), the engine and the backends take their ops
// from.
func OpSpecs() []OpSpec {
	return []OpSpec{
		{OpMatMul, 2}, {OpGetRows, 1}, {OpRMSNorm, 2}, {OpRoPE, 1}, {OpSoftmax, 1},
		{OpSiLUMul, 2}, {OpSiLU, 1}, {OpAdd, 2}, {OpMul, 2}, {OpAttention, 3},
	}
}

// Ops lists the names of OpSpecs.
func Ops() []string {
	specs := OpSpecs()
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	return names
}

// OpInputs returns how many inputs op takes, and false for an op that
// is not one of OpSpecs.
func OpInputs(op string) (int, bool) {
	for _, s := range OpSpecs() {
		if s.Name == op {
			return s.Inputs, true
		}
	}
	return 0, false
}

// OpParams are the scalar parameters of a TensorOp.
type OpParams struct {
	Eps      float32
	IDs      []int32
	Pos      []int32
	NDims    int
	Base     float32
	NHead    int
	NHeadKV  int
	HeadDim  int
	StartPos int
	Scale    float32
}

// TensorOpRequest runs one operation.
type TensorOpRequest struct {
	Op     string
	Inputs []TensorRef
	Params OpParams
}

// TensorOpResult is an f32 tensor (shape fastest-varying first).
type TensorOpResult struct {
	Shape []int
	Data  []float32
}

// EmbedRequest asks for the pooled embeddings of Inputs (each a
// sequence of token ids, already tokenized with the model's special
// tokens) from one model.
type EmbedRequest struct {
	Model  ModelID
	Inputs [][]int32
	// Normalize scales each vector to unit Euclidean length.
	Normalize bool
}

// EmbedResult holds one vector of NEmbd elements per input, in order.
type EmbedResult struct {
	NEmbd      int
	Embeddings [][]float32
}

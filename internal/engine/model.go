package engine

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/gguf"
)

// Limits on hyperparameters, checked before anything is allocated from
// them (a hostile header must not make the engine allocate without
// bound).
const (
	maxLayers  = 1 << 12
	maxEmbd    = 1 << 20
	maxHeads   = 1 << 12
	maxCtxKey  = 1 << 24
	maxVocab   = 1 << 24
	maxHeadDim = 1 << 12
)

// HParams are the hyperparameters every architecture shares.
type HParams struct {
	Arch          string  // general.architecture
	NCtxTrain     int     // context_length
	NVocab        int     // rows of token_embd.weight
	NEmbd         int     // embedding_length
	NLayer        int     // block_count
	NFF           int     // feed_forward_length (0 for mixture-of-experts models)
	NHead         int     // attention.head_count
	NHeadKV       int     // attention.head_count_kv (default NHead)
	HeadDim       int     // attention.key_length (default NEmbd/NHead)
	NRot          int     // rope.dimension_count (default HeadDim)
	Eps           float32 // attention.layer_norm_rms_epsilon
	RopeBase      float32 // rope.freq_base (default 10000)
	RopeFreqScale float32 // 1/rope.scaling.factor for linear scaling, else 1
	// RopeAttnFactor is rope.scaling.attn_factor (default 1), times
	// YaRN's attention factor.
	RopeAttnFactor float32
	// RopeExtFactor is 1 for YaRN scaling, else 0.
	RopeExtFactor float32
	// NCtxOrig is rope.scaling.original_context_length (default
	// NCtxTrain).
	NCtxOrig int
}

// QDim returns the width of the query projection (NHead·HeadDim).
func (h *HParams) QDim() int { return h.NHead * h.HeadDim }

// KVDim returns the width of the key/value projections (NHeadKV·HeadDim).
func (h *HParams) KVDim() int { return h.NHeadKV * h.HeadDim }

// Model is a validated model whose matrices alias the caller's tensor
// data (usually a read-only file mapping). A Model is immutable after
// NewModel and safe for concurrent use by sessions.
type Model struct {
	HP       HParams
	k        Kernels
	b        builder
	ops      []string           // graph ops the forward pass uses
	matrices []*Weight          // every matrix weight the graph uses, once
	extra    uint64             // bytes of vectors converted to f32
	weights  map[string]*Weight // every tensor of the file, by name
	infos    map[string]*gguf.TensorInfo
	typeSeen map[gguf.Type]int
	wBytes   uint64
	kv       *KVPool // the sessions' KV memory
	// passes is held for reading by every forward pass and for writing
	// while a WeightPreparer's apply replaces the weights' data.
	passes sync.RWMutex
	// firstPass is closed when the model's first forward pass ends.
	firstPass     chan struct{}
	firstPassOnce sync.Once
}

// passEnded records the end of a forward pass (see firstPass).
func (m *Model) passEnded() {
	m.firstPassOnce.Do(func() { close(m.firstPass) })
}

// TensorData returns the bytes of a tensor (a slice of the mapping).
type TensorData func(ti *gguf.TensorInfo) ([]byte, error)

// invalid returns an ErrInvalidModel-wrapped error.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", backends.ErrInvalidModel, fmt.Sprintf(format, args...))
}

// NewModel validates the model described by f (tensor bytes from data)
// with the builder of its general.architecture and prepares it to run
// on kernels k. supported reports whether k can multiply a weight type
// (nil: the types of gguf.WeightTypes). Every key of the architecture
// and every tensor must be understood by the builder, with types and
// shapes that match the hyperparameters, and every graph op the
// forward pass uses must be implemented by k; the errors wrap
// backends.ErrInvalidModel or backends.ErrUnsupported and name the key,
// tensor or op.
func NewModel(f *gguf.File, data TensorData, k Kernels, supported func(gguf.Type) bool) (*Model, error) {
	if supported == nil {
		types := gguf.WeightTypes()
		supported = func(t gguf.Type) bool { return slices.Contains(types, t) }
	}
	arch, ok := f.String("general.architecture")
	if !ok {
		return nil, invalid("missing general.architecture")
	}
	load, ok := architectures()[arch]
	if !ok {
		return nil, fmt.Errorf("%w: architecture %q (supported: %s)", backends.ErrUnsupported, arch, strings.Join(Architectures(), ", "))
	}
	m := &Model{
		HP:        HParams{Arch: arch},
		k:         k,
		weights:   make(map[string]*Weight, len(f.Tensors)),
		infos:     make(map[string]*gguf.TensorInfo, len(f.Tensors)),
		typeSeen:  make(map[gguf.Type]int),
		firstPass: make(chan struct{}),
	}
	for i := range f.Tensors {
		ti := &f.Tensors[i]
		if _, dup := m.infos[ti.Name]; dup {
			return nil, invalid("tensor %q appears twice", ti.Name)
		}
		m.infos[ti.Name] = ti
		m.typeSeen[ti.Type]++
		if n := ti.Bytes(); n > 0 {
			m.wBytes += uint64(n)
		}
	}
	for i := range f.Tensors {
		if _, err := m.weight(&f.Tensors[i], data); err != nil {
			return nil, err
		}
	}
	l := &Loader{m: m, f: f, data: data, supported: supported, arch: arch,
		usedKeys: make(map[string]bool), usedTens: make(map[string]bool)}
	b, err := load(l)
	if err == nil {
		err = l.Err()
	}
	if err != nil {
		return nil, err
	}
	if err := l.leftovers(); err != nil {
		return nil, err
	}
	m.b, m.matrices = b, l.matrices
	// The ops of a two-token batch: every op a decode can use.
	g := m.graph(&Batch{Tokens: []int32{0, 0}, Pos: []int32{0, 1}, Seq: []int32{0, 0}})
	m.ops = g.Ops()
	have := supportedOps(k)
	for _, op := range m.ops {
		if !have[op] {
			return nil, fmt.Errorf("%w: architecture %s needs graph op %q, which these kernels lack", backends.ErrUnsupported, arch, op)
		}
	}
	m.kv = newKVPool(m.HP.NLayer, m.HP.KVDim(), 0)
	return m, nil
}

// graph builds the forward pass of batch b.
func (m *Model) graph(b *Batch) *Graph {
	g := newGraph(b)
	m.b.build(g)
	return g
}

// Ops lists the graph ops the model's forward pass uses, sorted.
func (m *Model) Ops() []string { return slices.Clone(m.ops) }

// weight returns (and caches) the Weight over tensor ti's bytes, with
// its size checked against the type and shape.
func (m *Model) weight(ti *gguf.TensorInfo, data TensorData) (*Weight, error) {
	if w, ok := m.weights[ti.Name]; ok {
		return w, nil
	}
	if !ti.Type.Known() {
		return nil, invalid("tensor %s has unknown type %v", ti.Name, ti.Type)
	}
	want := ti.Bytes()
	if want < 0 {
		return nil, invalid("tensor %s: type %v does not fit shape %v", ti.Name, ti.Type, ti.Dims)
	}
	b, err := data(ti)
	if err != nil {
		return nil, fmt.Errorf("%w: tensor %s: %w", backends.ErrInvalidModel, ti.Name, err)
	}
	if int64(len(b)) != want {
		return nil, invalid("tensor %s has %d bytes of data, want %d", ti.Name, len(b), want)
	}
	cols, rows := 1, 1
	if len(ti.Dims) > 0 {
		cols = int(ti.Dims[0])
		rows = int(ti.Elements() / ti.Dims[0])
	}
	w := &Weight{Name: ti.Name, Type: ti.Type, Rows: rows, Cols: cols, Data: b}
	m.weights[ti.Name] = w
	return w, nil
}

// Weight returns a named tensor of the model file viewed as a matrix of
// rows of Dims[0] elements (a 1-D tensor is one row).
func (m *Model) Weight(name string) (*Weight, bool) {
	w, ok := m.weights[name]
	return w, ok
}

// Info returns the backends.ModelInfo of m (ID left zero).
func (m *Model) Info() *backends.ModelInfo {
	types := make(map[string]int, len(m.typeSeen))
	for t, n := range m.typeSeen {
		types[t.String()] = n
	}
	shapes := make(map[string][]int, len(m.infos))
	for name, ti := range m.infos {
		s := make([]int, len(ti.Dims))
		for i, d := range ti.Dims {
			s[i] = int(d)
		}
		shapes[name] = s
	}
	extra := m.extra
	return &backends.ModelInfo{
		Arch:         m.HP.Arch,
		NCtxTrain:    m.HP.NCtxTrain,
		NVocab:       m.HP.NVocab,
		NEmbd:        m.HP.NEmbd,
		NLayer:       m.HP.NLayer,
		NHead:        m.HP.NHead,
		NHeadKV:      m.HP.NHeadKV,
		NFF:          m.HP.NFF,
		Pooling:      m.Pooling(),
		TensorTypes:  types,
		WeightBytes:  m.wBytes,
		ExtraBytes:   extra,
		TensorShapes: shapes,
	}
}

package engine

import (
	"fmt"
	"math"
	"slices"
	"strconv"

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

// HParams are the hyperparameters of a llama-architecture model.
type HParams struct {
	Arch      string  // general.architecture ("llama")
	NCtxTrain int     // context_length
	NVocab    int     // rows of token_embd.weight
	NEmbd     int     // embedding_length
	NLayer    int     // block_count
	NFF       int     // feed_forward_length
	NHead     int     // attention.head_count
	NHeadKV   int     // attention.head_count_kv (default NHead)
	HeadDim   int     // attention.key_length (default NEmbd/NHead)
	NRot      int     // rope.dimension_count (default HeadDim)
	Eps       float32 // attention.layer_norm_rms_epsilon
	RopeBase  float32 // rope.freq_base (default 10000)
}

// QDim returns the width of the query projection (NHead·HeadDim).
func (h *HParams) QDim() int { return h.NHead * h.HeadDim }

// KVDim returns the width of the key/value projections (NHeadKV·HeadDim).
func (h *HParams) KVDim() int { return h.NHeadKV * h.HeadDim }

// Layer holds the weights of one transformer block.
type Layer struct {
	AttnNorm []float32
	Q, K, V  *Weight
	O        *Weight
	FFNNorm  []float32
	Gate, Up *Weight
	Down     *Weight
}

// Model is a validated llama-architecture model whose matrices alias the
// caller's tensor data (usually a read-only file mapping). A Model is
// immutable after NewModel and safe for concurrent use by sessions.
type Model struct {
	HP       HParams
	TokEmbd  *Weight
	Layers   []Layer
	OutNorm  []float32
	Output   *Weight // == TokEmbd when the embeddings are tied
	Tied     bool
	k        Kernels
	weights  map[string]*Weight // every tensor of the file, by name
	infos    map[string]*gguf.TensorInfo
	typeSeen map[gguf.Type]int
	wBytes   uint64
}

// TensorData returns the bytes of a tensor (a slice of the mapping).
type TensorData func(ti *gguf.TensorInfo) ([]byte, error)

// invalid returns an ErrInvalidModel-wrapped error.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", backends.ErrInvalidModel, fmt.Sprintf(format, args...))
}

// NewModel validates the llama model described by f (tensor bytes from
// data) and builds a Model over kernels k. supported reports whether k
// can multiply a weight type (nil: the types of gguf.WeightTypes). Every
// tensor's type and shape is checked against the hyperparameters; the
// errors wrap backends.ErrInvalidModel or backends.ErrUnsupported.
func NewModel(f *gguf.File, data TensorData, k Kernels, supported func(gguf.Type) bool) (*Model, error) {
	if supported == nil {
		types := gguf.WeightTypes()
		supported = func(t gguf.Type) bool { return slices.Contains(types, t) }
	}
	hp, err := readHParams(f)
	if err != nil {
		return nil, err
	}
	m := &Model{
		HP:       hp,
		k:        k,
		weights:  make(map[string]*Weight, len(f.Tensors)),
		infos:    make(map[string]*gguf.TensorInfo, len(f.Tensors)),
		typeSeen: make(map[gguf.Type]int),
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
	if _, ok := m.infos["rope_freqs.weight"]; ok {
		return nil, fmt.Errorf("%w: rope_freqs.weight (rope frequency factors) is not supported", backends.ErrUnsupported)
	}

	// The vocabulary size comes from the embedding matrix.
	te, ok := m.infos["token_embd.weight"]
	if !ok {
		return nil, invalid("missing tensor token_embd.weight")
	}
	if len(te.Dims) != 2 || te.Dims[0] != int64(hp.NEmbd) || te.Dims[1] <= 0 || te.Dims[1] > maxVocab {
		return nil, invalid("tensor token_embd.weight has shape %v, want [%d n_vocab]", te.Dims, hp.NEmbd)
	}
	m.HP.NVocab = int(te.Dims[1])
	hp = m.HP
	if toks, ok := f.Lookup("tokenizer.ggml.tokens"); ok && toks.Len() != hp.NVocab {
		return nil, invalid("tokenizer has %d tokens but token_embd.weight has %d rows", toks.Len(), hp.NVocab)
	}

	matrix := func(name string, cols, rows int) (*Weight, error) {
		ti, ok := m.infos[name]
		if !ok {
			return nil, invalid("missing tensor %s", name)
		}
		if len(ti.Dims) != 2 || ti.Dims[0] != int64(cols) || ti.Dims[1] != int64(rows) {
			return nil, invalid("tensor %s has shape %v, want [%d %d]", name, ti.Dims, cols, rows)
		}
		if !supported(ti.Type) {
			return nil, fmt.Errorf("%w: tensor %s has type %v, which these kernels cannot use", backends.ErrUnsupported, name, ti.Type)
		}
		return m.weight(ti, data)
	}
	vector := func(name string, n int) ([]float32, error) {
		ti, ok := m.infos[name]
		if !ok {
			return nil, invalid("missing tensor %s", name)
		}
		if len(ti.Dims) != 1 || ti.Dims[0] != int64(n) {
			return nil, invalid("tensor %s has shape %v, want [%d]", name, ti.Dims, n)
		}
		if !supported(ti.Type) {
			return nil, fmt.Errorf("%w: tensor %s has type %v, which these kernels cannot use", backends.ErrUnsupported, name, ti.Type)
		}
		w, err := m.weight(ti, data)
		if err != nil {
			return nil, err
		}
		out := make([]float32, n)
		k.GetRows(out, &Weight{Name: name, Type: w.Type, Rows: 1, Cols: n, Data: w.Data}, []int32{0})
		return out, nil
	}

	if m.TokEmbd, err = matrix("token_embd.weight", hp.NEmbd, hp.NVocab); err != nil {
		return nil, err
	}
	m.Layers = make([]Layer, hp.NLayer)
	for i := range m.Layers {
		L := &m.Layers[i]
		p := "blk." + strconv.Itoa(i) + "."
		if L.AttnNorm, err = vector(p+"attn_norm.weight", hp.NEmbd); err != nil {
			return nil, err
		}
		if L.Q, err = matrix(p+"attn_q.weight", hp.NEmbd, hp.QDim()); err != nil {
			return nil, err
		}
		if L.K, err = matrix(p+"attn_k.weight", hp.NEmbd, hp.KVDim()); err != nil {
			return nil, err
		}
		if L.V, err = matrix(p+"attn_v.weight", hp.NEmbd, hp.KVDim()); err != nil {
			return nil, err
		}
		if L.O, err = matrix(p+"attn_output.weight", hp.QDim(), hp.NEmbd); err != nil {
			return nil, err
		}
		if L.FFNNorm, err = vector(p+"ffn_norm.weight", hp.NEmbd); err != nil {
			return nil, err
		}
		if L.Gate, err = matrix(p+"ffn_gate.weight", hp.NEmbd, hp.NFF); err != nil {
			return nil, err
		}
		if L.Up, err = matrix(p+"ffn_up.weight", hp.NEmbd, hp.NFF); err != nil {
			return nil, err
		}
		if L.Down, err = matrix(p+"ffn_down.weight", hp.NFF, hp.NEmbd); err != nil {
			return nil, err
		}
	}
	if m.OutNorm, err = vector("output_norm.weight", hp.NEmbd); err != nil {
		return nil, err
	}
	if _, ok := m.infos["output.weight"]; ok {
		if m.Output, err = matrix("output.weight", hp.NEmbd, hp.NVocab); err != nil {
			return nil, err
		}
	} else {
		m.Output, m.Tied = m.TokEmbd, true
	}
	return m, nil
}

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

// readHParams reads and checks the llama hyperparameters of f.
func readHParams(f *gguf.File) (HParams, error) {
	var hp HParams
	arch, ok := f.String("general.architecture")
	if !ok {
		return hp, invalid("missing general.architecture")
	}
	if arch != "llama" {
		return hp, fmt.Errorf("%w: architecture %q (only llama is supported)", backends.ErrUnsupported, arch)
	}
	hp.Arch = arch
	key := func(s string) string { return arch + "." + s }
	uintKey := func(name string, def, max int, required bool) (int, error) {
		v, ok := f.Uint(key(name))
		if !ok {
			if _, present := f.Lookup(key(name)); present {
				return 0, invalid("%s is not a non-negative integer", key(name))
			}
			if required {
				return 0, invalid("missing %s", key(name))
			}
			return def, nil
		}
		if v == 0 || v > uint64(max) {
			return 0, invalid("%s = %d is out of range [1, %d]", key(name), v, max)
		}
		return int(v), nil
	}
	var err error
	if hp.NCtxTrain, err = uintKey("context_length", 0, maxCtxKey, true); err != nil {
		return hp, err
	}
	if hp.NEmbd, err = uintKey("embedding_length", 0, maxEmbd, true); err != nil {
		return hp, err
	}
	if hp.NLayer, err = uintKey("block_count", 0, maxLayers, true); err != nil {
		return hp, err
	}
	if hp.NFF, err = uintKey("feed_forward_length", 0, 1<<24, true); err != nil {
		return hp, err
	}
	if hp.NHead, err = uintKey("attention.head_count", 0, maxHeads, true); err != nil {
		return hp, err
	}
	if hp.NHeadKV, err = uintKey("attention.head_count_kv", hp.NHead, maxHeads, false); err != nil {
		return hp, err
	}
	if hp.NHead%hp.NHeadKV != 0 {
		return hp, invalid("head_count %d is not a multiple of head_count_kv %d", hp.NHead, hp.NHeadKV)
	}
	def := 0
	if hp.NEmbd%hp.NHead == 0 {
		def = hp.NEmbd / hp.NHead
	}
	if hp.HeadDim, err = uintKey("attention.key_length", def, maxHeadDim, false); err != nil {
		return hp, err
	}
	if hp.HeadDim == 0 {
		return hp, invalid("embedding_length %d is not a multiple of head_count %d", hp.NEmbd, hp.NHead)
	}
	vl, err := uintKey("attention.value_length", hp.HeadDim, maxHeadDim, false)
	if err != nil {
		return hp, err
	}
	if vl != hp.HeadDim {
		return hp, fmt.Errorf("%w: value_length %d differs from key_length %d", backends.ErrUnsupported, vl, hp.HeadDim)
	}
	if hp.NRot, err = uintKey("rope.dimension_count", hp.HeadDim, maxHeadDim, false); err != nil {
		return hp, err
	}
	if hp.NRot > hp.HeadDim || hp.NRot%2 != 0 {
		return hp, invalid("rope.dimension_count %d must be even and at most the head size %d", hp.NRot, hp.HeadDim)
	}
	eps, ok := f.Float(key("attention.layer_norm_rms_epsilon"))
	if !ok {
		return hp, invalid("missing %s", key("attention.layer_norm_rms_epsilon"))
	}
	if !(eps >= 0 && eps < 1) {
		return hp, invalid("%s = %g is out of range [0, 1)", key("attention.layer_norm_rms_epsilon"), eps)
	}
	hp.Eps = float32(eps)
	hp.RopeBase = 10000
	if base, ok := f.Float(key("rope.freq_base")); ok {
		if !(base > 1) || math.IsInf(base, 0) || base > math.MaxFloat32 {
			return hp, invalid("%s = %g is out of range", key("rope.freq_base"), base)
		}
		hp.RopeBase = float32(base)
	} else if _, present := f.Lookup(key("rope.freq_base")); present {
		return hp, invalid("%s is not a number", key("rope.freq_base"))
	}
	if st, ok := f.String(key("rope.scaling.type")); ok && st != "none" {
		if fac, ok := f.Float(key("rope.scaling.factor")); !ok || fac != 1 {
			return hp, fmt.Errorf("%w: rope scaling %q", backends.ErrUnsupported, st)
		}
	}
	return hp, nil
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
	var extra uint64
	for _, L := range m.Layers {
		extra += 4 * uint64(len(L.AttnNorm)+len(L.FFNNorm))
	}
	extra += 4 * uint64(len(m.OutNorm))
	return &backends.ModelInfo{
		Arch:         m.HP.Arch,
		NCtxTrain:    m.HP.NCtxTrain,
		NVocab:       m.HP.NVocab,
		NEmbd:        m.HP.NEmbd,
		NLayer:       m.HP.NLayer,
		NHead:        m.HP.NHead,
		NHeadKV:      m.HP.NHeadKV,
		NFF:          m.HP.NFF,
		TensorTypes:  types,
		WeightBytes:  m.wBytes,
		ExtraBytes:   extra,
		TensorShapes: shapes,
	}
}

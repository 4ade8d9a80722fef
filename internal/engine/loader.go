package engine

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/gguf"
)

// builder is a loaded architecture: it emits the graph of a batch.
type builder interface {
	build(g *Graph)
}

// archLoader reads an architecture's hyperparameters and tensors
// through l and returns its builder.
type archLoader func(l *Loader) (builder, error)

// architectures maps general.architecture to its loader (one file
// arch_NAME.go each).
func architectures() map[string]archLoader {
	return map[string]archLoader{
		"llama":    loadLlama,
		"qwen2":    loadQwen2,
		"qwen3":    loadQwen3,
		"qwen3moe": loadQwen3MoE,
		"gemma2":   loadGemma2,
		"gemma3":   loadGemma3,
		"phi3":     loadPhi3,
		"bert":     loadBert,
	}
}

// Architectures lists the general.architecture values the engine runs.
func Architectures() []string {
	var names []string
	for n := range architectures() {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// ignoredKeys are architecture keys that carry nothing the forward pass
// needs (informational, or used only by tools).
var ignoredKeys = map[string]bool{
	"vocab_size":         true,
	"tensor_data_layout": true,
}

// Loader gives an architecture loader checked access to the GGUF keys
// (relative to the architecture prefix) and tensors of a file, and
// remembers what it used so that anything left over is an error. The
// first error sticks: later calls return zero values, and Err reports it.
type Loader struct {
	m         *Model
	f         *gguf.File
	data      TensorData
	supported func(gguf.Type) bool
	arch      string
	usedKeys  map[string]bool
	usedTens  map[string]bool
	matrices  []*Weight
	err       error
}

// Err returns the first error of the loader.
func (l *Loader) Err() error { return l.err }

// fail records an error (the first one sticks).
func (l *Loader) fail(err error) {
	if l.err == nil {
		l.err = err
	}
}

// key returns the full name of an architecture key.
func (l *Loader) key(name string) string { return l.arch + "." + name }

// Has reports whether the architecture key name is present.
func (l *Loader) Has(name string) bool {
	_, ok := l.f.Lookup(l.key(name))
	return ok
}

// Uint reads a positive integer key (≤ max); def when absent and not
// required.
func (l *Loader) Uint(name string, def, max int, required bool) int {
	k := l.key(name)
	l.usedKeys[k] = true
	if l.err != nil {
		return def
	}
	v, ok := l.f.Uint(k)
	if !ok {
		if _, present := l.f.Lookup(k); present {
			l.fail(invalid("%s is not a non-negative integer", k))
		} else if required {
			l.fail(invalid("missing %s", k))
		}
		return def
	}
	if v == 0 || v > uint64(max) {
		l.fail(invalid("%s = %d is out of range [1, %d]", k, v, max))
		return def
	}
	return int(v)
}

// Float reads a finite number key; def when absent and not required.
func (l *Loader) Float(name string, def float64, required bool) float64 {
	k := l.key(name)
	l.usedKeys[k] = true
	if l.err != nil {
		return def
	}
	v, ok := l.f.Float(k)
	if !ok {
		if _, present := l.f.Lookup(k); present {
			l.fail(invalid("%s is not a number", k))
		} else if required {
			l.fail(invalid("missing %s", k))
		}
		return def
	}
	if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > math.MaxFloat32 {
		l.fail(invalid("%s = %g is out of range", k, v))
		return def
	}
	return v
}

// String reads a string key ("" when absent).
func (l *Loader) String(name string) string {
	k := l.key(name)
	l.usedKeys[k] = true
	s, _ := l.f.String(k)
	return s
}

// Bools reads a per-layer array of booleans or integers (nil when
// absent); its length must be n.
func (l *Loader) Bools(name string, n int) []bool {
	k := l.key(name)
	l.usedKeys[k] = true
	v, ok := l.f.Lookup(k)
	if !ok || l.err != nil {
		return nil
	}
	if v.Len() != n {
		l.fail(invalid("%s has %d elements, want %d", k, v.Len(), n))
		return nil
	}
	out := make([]bool, n)
	for i := range out {
		e, _ := v.Index(i)
		if b, ok := e.AsBool(); ok {
			out[i] = b
		} else if u, ok := e.AsUint(); ok {
			out[i] = u != 0
		} else {
			l.fail(invalid("%s is not an array of booleans", k))
			return nil
		}
	}
	return out
}

// has reports whether tensor name exists.
func (l *Loader) hasTensor(name string) bool {
	_, ok := l.m.infos[name]
	return ok
}

// tensor returns the info of a tensor with the given shape, marked used.
func (l *Loader) tensor(name string, dims ...int) *gguf.TensorInfo {
	if l.err != nil {
		return nil
	}
	ti, ok := l.m.infos[name]
	if !ok {
		l.fail(invalid("missing tensor %s", name))
		return nil
	}
	l.usedTens[name] = true
	want := make([]int64, len(dims))
	for i, d := range dims {
		want[i] = int64(d)
	}
	if !slices.Equal(ti.Dims, want) {
		l.fail(invalid("tensor %s has shape %v, want %v", name, ti.Dims, want))
		return nil
	}
	if !l.supported(ti.Type) {
		l.fail(fmt.Errorf("%w: tensor %s has type %v, which these kernels cannot use", backends.ErrUnsupported, name, ti.Type))
		return nil
	}
	return ti
}

// Matrix returns the [cols rows] weight name.
func (l *Loader) Matrix(name string, cols, rows int) *Weight {
	ti := l.tensor(name, cols, rows)
	if ti == nil {
		return nil
	}
	w, err := l.m.weight(ti, l.data)
	if err != nil {
		l.fail(err)
		return nil
	}
	if !slices.Contains(l.matrices, w) {
		l.matrices = append(l.matrices, w)
	}
	return w
}

// OptMatrix is Matrix for a tensor that may be absent (nil then).
func (l *Loader) OptMatrix(name string, cols, rows int) *Weight {
	if !l.hasTensor(name) {
		return nil
	}
	return l.Matrix(name, cols, rows)
}

// Experts returns the n expert matrices [cols rows] of the 3-D tensor
// name ([cols rows n]).
func (l *Loader) Experts(name string, cols, rows, n int) []*Weight {
	ti := l.tensor(name, cols, rows, n)
	if ti == nil {
		return nil
	}
	w, err := l.m.weight(ti, l.data)
	if err != nil {
		l.fail(err)
		return nil
	}
	per := len(w.Data) / n
	ws := make([]*Weight, n)
	for i := range ws {
		ws[i] = &Weight{Name: name + "#" + strconv.Itoa(i), Type: w.Type, Rows: rows, Cols: cols,
			Data: w.Data[i*per : (i+1)*per : (i+1)*per]}
		l.matrices = append(l.matrices, ws[i])
	}
	return ws
}

// Vector returns the n-element tensor name as f32.
func (l *Loader) Vector(name string, n int) []float32 {
	ti := l.tensor(name, n)
	if ti == nil {
		return nil
	}
	w, err := l.m.weight(ti, l.data)
	if err != nil {
		l.fail(err)
		return nil
	}
	out := make([]float32, n)
	l.m.k.GetRows(out, &Weight{Name: name, Type: w.Type, Rows: 1, Cols: n, Data: w.Data}, []int32{0})
	l.m.extra += 4 * uint64(n)
	return out
}

// OptVector is Vector for a tensor that may be absent (nil then).
func (l *Loader) OptVector(name string, n int) []float32 {
	if !l.hasTensor(name) {
		return nil
	}
	return l.Vector(name, n)
}

// Blk returns the name of a tensor of layer i ("blk.i.name").
func Blk(i int, name string) string { return "blk." + strconv.Itoa(i) + "." + name }

// Common reads the hyperparameters most architectures share into
// l.m.HP: context, widths, heads, head sizes, rope dimensions and base,
// RMS epsilon (if rmsEps) and rope scaling (none or linear). The
// vocabulary size comes from token_embd.weight.
func (l *Loader) Common(rmsEps bool) *HParams {
	hp := &l.m.HP
	hp.NCtxTrain = l.Uint("context_length", 0, maxCtxKey, true)
	hp.NEmbd = l.Uint("embedding_length", 0, maxEmbd, true)
	hp.NLayer = l.Uint("block_count", 0, maxLayers, true)
	hp.NFF = l.Uint("feed_forward_length", 0, 1<<24, !l.Has("expert_count"))
	hp.NHead = l.Uint("attention.head_count", 0, maxHeads, true)
	hp.NHeadKV = l.Uint("attention.head_count_kv", hp.NHead, maxHeads, false)
	if l.err != nil {
		return hp
	}
	if hp.NHead%hp.NHeadKV != 0 {
		l.fail(invalid("head_count %d is not a multiple of head_count_kv %d", hp.NHead, hp.NHeadKV))
		return hp
	}
	def := 0
	if hp.NEmbd%hp.NHead == 0 {
		def = hp.NEmbd / hp.NHead
	}
	hp.HeadDim = l.Uint("attention.key_length", def, maxHeadDim, false)
	if l.err == nil && hp.HeadDim == 0 {
		l.fail(invalid("embedding_length %d is not a multiple of head_count %d", hp.NEmbd, hp.NHead))
		return hp
	}
	if vl := l.Uint("attention.value_length", hp.HeadDim, maxHeadDim, false); l.err == nil && vl != hp.HeadDim {
		l.fail(fmt.Errorf("%w: %s %d differs from key_length %d", backends.ErrUnsupported, l.key("attention.value_length"), vl, hp.HeadDim))
	}
	hp.NRot = l.Uint("rope.dimension_count", hp.HeadDim, maxHeadDim, false)
	if l.err == nil && (hp.NRot > hp.HeadDim || hp.NRot%2 != 0) {
		l.fail(invalid("rope.dimension_count %d must be even and at most the head size %d", hp.NRot, hp.HeadDim))
	}
	if rmsEps {
		eps := l.Float("attention.layer_norm_rms_epsilon", 0, true)
		if l.err == nil && !(eps >= 0 && eps < 1) {
			l.fail(invalid("%s = %g is out of range [0, 1)", l.key("attention.layer_norm_rms_epsilon"), eps))
		}
		hp.Eps = float32(eps)
	}
	hp.RopeBase = float32(l.Float("rope.freq_base", 10000, false))
	if l.err == nil && !(hp.RopeBase > 1) {
		l.fail(invalid("%s = %g is out of range", l.key("rope.freq_base"), hp.RopeBase))
	}
	hp.RopeFreqScale = 1
	// attn_factor multiplies cos and sin in every family (llama.cpp
	// folds it into the rope's attention factor); original_context_length
	// matters only to LongRoPE (phi3 reads it) and finetuned is
	// informational.
	hp.RopeAttnFactor = float32(l.Float("rope.scaling.attn_factor", 1, false))
	if l.err == nil && !(hp.RopeAttnFactor > 0) {
		l.fail(invalid("%s = %g is out of range", l.key("rope.scaling.attn_factor"), hp.RopeAttnFactor))
	}
	l.usedKeys[l.key("rope.scaling.finetuned")] = true
	hp.NCtxOrig = l.Uint("rope.scaling.original_context_length", hp.NCtxTrain, maxCtxKey, false)
	st := l.String("rope.scaling.type")
	fac := l.Float("rope.scaling.factor", 0, false)
	if fac == 0 {
		fac = l.Float("rope.scale_linear", 0, false) // the older key
	}
	switch {
	case l.err != nil:
	case fac < 0:
		l.fail(invalid("%s = %g is negative", l.key("rope.scaling.factor"), fac))
	case st == "none":
	case st == "" || st == "linear":
		if fac > 0 {
			hp.RopeFreqScale = float32(1 / fac)
		}
	case st == "yarn":
		// llama.cpp's defaults: ext_factor 1, beta_fast 32, beta_slow 1,
		// and an attention factor that cancels YaRN's magnitude scaling
		// unless yarn_log_multiplier is set.
		if fac > 0 {
			hp.RopeFreqScale = float32(1 / fac)
		}
		hp.RopeExtFactor = 1
		if lm := l.Float("rope.scaling.yarn_log_multiplier", 0, false); lm != 0 && fac > 1 {
			hp.RopeAttnFactor *= float32(1 / (0.1*lm*math.Log(fac) + 1))
		} else if fac > 1 {
			// get_mscale(factor)/(1+0.1·ln factor) = 1
			hp.RopeAttnFactor *= float32((0.1*math.Log(fac) + 1) / (1 + 0.1*math.Log(fac)))
		}
	default:
		l.fail(fmt.Errorf("%w: %s %q (factor %g)", backends.ErrUnsupported, l.key("rope.scaling.type"), st, fac))
	}
	return hp
}

// Vocab reads n_vocab from token_embd.weight (width NEmbd) and checks it
// against the tokenizer.
func (l *Loader) Vocab() {
	if l.err != nil {
		return
	}
	hp := &l.m.HP
	te, ok := l.m.infos["token_embd.weight"]
	if !ok {
		l.fail(invalid("missing tensor token_embd.weight"))
		return
	}
	if len(te.Dims) != 2 || te.Dims[0] != int64(hp.NEmbd) || te.Dims[1] <= 0 || te.Dims[1] > maxVocab {
		l.fail(invalid("tensor token_embd.weight has shape %v, want [%d n_vocab]", te.Dims, hp.NEmbd))
		return
	}
	hp.NVocab = int(te.Dims[1])
	if toks, ok := l.f.Lookup("tokenizer.ggml.tokens"); ok && toks.Len() != hp.NVocab {
		l.fail(invalid("tokenizer has %d tokens but token_embd.weight has %d rows", toks.Len(), hp.NVocab))
	}
}

// Rope returns the model-wide rope parameters.
func (hp *HParams) Rope(neox bool) RoPEParams {
	p := RoPEParams{NDims: hp.NRot, HeadDim: hp.HeadDim, Base: hp.RopeBase, Neox: neox,
		FreqScale: hp.RopeFreqScale, AttnFactor: hp.RopeAttnFactor, ExtFactor: hp.RopeExtFactor}
	if p.ExtFactor != 0 {
		p.CorrDims = yarnCorrDims(hp.NRot, hp.NCtxOrig, float64(hp.RopeBase), 32, 1)
	}
	return p
}

// leftovers reports a tensor or architecture key the loader did not use.
func (l *Loader) leftovers() error {
	var tens []string
	for name := range l.m.infos {
		if !l.usedTens[name] {
			tens = append(tens, name)
		}
	}
	if len(tens) > 0 {
		slices.Sort(tens)
		return fmt.Errorf("%w: tensor %s is not part of architecture %s (%d unknown tensors)", backends.ErrUnsupported, tens[0], l.arch, len(tens))
	}
	for _, kv := range l.f.Metadata {
		rest, ok := strings.CutPrefix(kv.Key, l.arch+".")
		if !ok || l.usedKeys[kv.Key] || ignoredKeys[rest] {
			continue
		}
		return fmt.Errorf("%w: key %s is not understood by architecture %s", backends.ErrUnsupported, kv.Key, l.arch)
	}
	return nil
}

package engine

import (
	"fmt"

	"github.com/realmrt/realm/backends"
)

// The bert architecture (BERT, MiniLM, BGE, ...): an encoder for
// embeddings. Token, token-type (type 0, as llama.cpp) and absolute
// position embeddings, LayerNorm with bias after every residual add
// (post-norm), bidirectional attention within each sequence, a GELU
// feed-forward block, and the token vectors pooled per sequence as the
// file's pooling_type says. The graph's output is one pooled row per
// sequence, not logits: these models are run by Embed, not Decode.
type bert struct {
	hp          *HParams
	pool        int
	tok         *Weight
	types       *Weight // token_types (nil: none)
	pos         *Weight // position_embd [n_embd, n_ctx_train]
	normW, norm []float32
	layers      []bertLayer
}

// bertLayer is one encoder block.
type bertLayer struct {
	qkv        qkvWeights
	o          *Weight
	oB         []float32
	attnNormW  []float32
	attnNormB  []float32
	up, down   *Weight
	upB, downB []float32
	outNormW   []float32
	outNormB   []float32
}

// pooling is the model's ModelInfo.Pooling.
func (m *bert) pooling() string { return poolingName(m.pool) }

func (m *bert) build(g *Graph) {
	hp := m.hp
	x := g.Embed(m.tok)
	if m.types != nil {
		x = g.AddFixedRow(x, m.types, 0)
	}
	x = g.AddPosRows(x, m.pos)
	x = g.LayerNorm(x, m.normW, m.norm, hp.Eps)
	scale := attnScale(hp.HeadDim)
	for i := range m.layers {
		L := &m.layers[i]
		q, k, v := g.QKV(&L.qkv, x)
		att := g.AttentionFull(q, k, v, AttentionSpec{Layer: i, NHead: hp.NHead, NHeadKV: hp.NHeadKV,
			HeadDim: hp.HeadDim, Scale: scale})
		cur := g.Linear(L.o, L.oB, att)
		cur = g.Add(cur, x)
		cur = g.LayerNorm(cur, L.attnNormW, L.attnNormB, hp.Eps)
		ffnIn := cur
		cur = g.GELU(g.Linear(L.up, L.upB, cur))
		cur = g.Linear(L.down, L.downB, cur)
		cur = g.Add(cur, ffnIn)
		x = g.LayerNorm(cur, L.outNormW, L.outNormB, hp.Eps)
	}
	g.SetOutput(g.Pool(x, m.pool))
}

// loadBert reads a bert file. Keys and tensors follow llama.cpp's
// convert_hf_to_gguf output; pooling_type must be mean, cls or last
// (a file without pooling or with rank pooling is refused: Realm
// serves pooled embeddings only), and attention.causal, when present,
// must be false.
func loadBert(l *Loader) (builder, error) {
	hp := l.Common(false)
	l.Vocab()
	eps := l.Float("attention.layer_norm_epsilon", 0, true)
	if l.err == nil && !(eps >= 0 && eps < 1) {
		l.fail(invalid("%s = %g is out of range [0, 1)", l.key("attention.layer_norm_epsilon"), eps))
	}
	hp.Eps = float32(eps)
	m := &bert{hp: hp, pool: PoolMean}
	l.usedKeys[l.key("pooling_type")] = true
	if v, ok := l.f.Lookup(l.key("pooling_type")); ok {
		p, ok := v.AsUint()
		switch {
		case !ok:
			l.fail(invalid("%s is not an integer", l.key("pooling_type")))
		case p == PoolMean || p == PoolCLS || p == PoolLast:
			m.pool = int(p)
		default:
			l.fail(unsupported("%s = %d (Realm pools with mean (1), cls (2) or last (3))", l.key("pooling_type"), p))
		}
	}
	l.usedKeys[l.key("attention.causal")] = true
	if v, ok := l.f.Lookup(l.key("attention.causal")); ok {
		if c, ok := v.AsBool(); !ok || c {
			l.fail(unsupported("%s must be false for bert", l.key("attention.causal")))
		}
	}
	if l.err != nil {
		return nil, l.err
	}
	if hp.NHeadKV != hp.NHead {
		return nil, invalid("bert needs head_count_kv = head_count (got %d, %d)", hp.NHeadKV, hp.NHead)
	}
	m.tok = l.Matrix("token_embd.weight", hp.NEmbd, hp.NVocab)
	if l.hasTensor("token_types.weight") {
		ti := l.m.infos["token_types.weight"]
		if len(ti.Dims) != 2 || ti.Dims[1] < 1 || ti.Dims[1] > 1<<10 {
			return nil, invalid("tensor token_types.weight has shape %v, want [%d n_types]", ti.Dims, hp.NEmbd)
		}
		m.types = l.Matrix("token_types.weight", hp.NEmbd, int(ti.Dims[1]))
	}
	m.pos = l.Matrix("position_embd.weight", hp.NEmbd, hp.NCtxTrain)
	m.normW = l.Vector("token_embd_norm.weight", hp.NEmbd)
	m.norm = l.Vector("token_embd_norm.bias", hp.NEmbd)
	m.layers = make([]bertLayer, hp.NLayer)
	for i := range m.layers {
		L := &m.layers[i]
		L.qkv = l.QKV(i, hp.NEmbd, hp.QDim(), hp.KVDim(), hp.KVDim())
		L.o = l.Matrix(Blk(i, "attn_output.weight"), hp.QDim(), hp.NEmbd)
		L.oB = l.OptVector(Blk(i, "attn_output.bias"), hp.NEmbd)
		L.attnNormW = l.Vector(Blk(i, "attn_output_norm.weight"), hp.NEmbd)
		L.attnNormB = l.Vector(Blk(i, "attn_output_norm.bias"), hp.NEmbd)
		L.up = l.Matrix(Blk(i, "ffn_up.weight"), hp.NEmbd, hp.NFF)
		L.upB = l.OptVector(Blk(i, "ffn_up.bias"), hp.NFF)
		L.down = l.Matrix(Blk(i, "ffn_down.weight"), hp.NFF, hp.NEmbd)
		L.downB = l.OptVector(Blk(i, "ffn_down.bias"), hp.NEmbd)
		L.outNormW = l.Vector(Blk(i, "layer_output_norm.weight"), hp.NEmbd)
		L.outNormB = l.Vector(Blk(i, "layer_output_norm.bias"), hp.NEmbd)
	}
	return m, l.err
}

// unsupported returns an ErrUnsupported-wrapped error.
func unsupported(format string, args ...any) error {
	return fmt.Errorf("%w: %s", backends.ErrUnsupported, fmt.Sprintf(format, args...))
}

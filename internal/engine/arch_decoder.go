package engine

// decoder is the pre-norm decoder-only transformer most architectures
// are variations of; each arch_NAME.go loader fills in the variation
// (which norms exist, rope mode per layer, sliding windows, gating,
// scales, soft caps) and the graph below follows it.
type decoder struct {
	hp       *HParams
	tok      *Weight
	embScale float32 // multiply the embeddings (0: no)
	layers   []decLayer
	outNorm  []float32
	out      *Weight
	finalCap float32 // final logit soft-capping (0: none)
	qScale   float32 // multiply Q after RoPE (0: no); attention then uses Scale 1
	attnCap  float32 // attention score soft-capping (0: none)
	gelu     bool    // GELU gating instead of SiLU
	// longFactors, when set, replace each layer's rope factors when a
	// session's context exceeds longCtx (LongRoPE).
	longFactors []float32
	longCtx     int
}

// decLayer is one block of a decoder.
type decLayer struct {
	attnNorm     []float32
	qkv          qkvWeights
	qNorm, kNorm []float32 // per-head RMSNorm of Q and K (nil: none)
	o            *Weight
	oB           []float32
	postAttnNorm []float32 // RMSNorm of the attention output (nil: none)
	ffnNorm      []float32
	ffn          ffnWeights
	fusedUp      *Weight // [n_embd, 2·n_ff]: gate rows then up rows (phi3)
	moe          *MoESpec
	postFFNNorm  []float32
	rope         RoPEParams
	window       int // sliding window (0: full causal)
}

func (m *decoder) build(g *Graph) {
	hp := m.hp
	x := g.Embed(m.tok)
	if m.embScale != 0 {
		x = g.Scale(x, m.embScale)
	}
	scale := attnScale(hp.HeadDim)
	if m.qScale != 0 {
		scale = 1
	}
	for i := range m.layers {
		L := &m.layers[i]
		cur := g.RMSNorm(x, L.attnNorm, hp.NEmbd, hp.Eps)
		q, k, v := g.QKV(&L.qkv, cur)
		if L.qNorm != nil {
			q = g.RMSNorm(q, L.qNorm, hp.HeadDim, hp.Eps)
			k = g.RMSNorm(k, L.kNorm, hp.HeadDim, hp.Eps)
		}
		rope := L.rope
		if m.longFactors != nil && g.batch.NCtx > m.longCtx {
			rope.Factors = m.longFactors
		}
		q = g.RoPE(q, hp.NHead, rope)
		k = g.RoPE(k, hp.NHeadKV, rope)
		if m.qScale != 0 {
			q = g.Scale(q, m.qScale)
		}
		att := g.Attention(q, k, v, AttentionSpec{Layer: i, NHead: hp.NHead, NHeadKV: hp.NHeadKV,
			HeadDim: hp.HeadDim, Scale: scale, Window: L.window, SoftCap: m.attnCap})
		cur = g.Linear(L.o, L.oB, att)
		if L.postAttnNorm != nil {
			cur = g.RMSNorm(cur, L.postAttnNorm, hp.NEmbd, hp.Eps)
		}
		x = g.Add(cur, x)
		cur = g.RMSNorm(x, L.ffnNorm, hp.NEmbd, hp.Eps)
		switch {
		case L.moe != nil:
			cur = g.MoE(cur, L.moe)
		case L.fusedUp != nil:
			gu := g.MatMul(L.fusedUp, cur)
			h := g.SiLUMul(g.Columns(gu, 0, hp.NFF), g.Columns(gu, hp.NFF, hp.NFF))
			cur = g.Linear(L.ffn.Down, L.ffn.DownB, h)
		default:
			cur = g.FFN(&L.ffn, cur, m.gelu)
		}
		if L.postFFNNorm != nil {
			cur = g.RMSNorm(cur, L.postFFNNorm, hp.NEmbd, hp.Eps)
		}
		x = g.Add(cur, x)
	}
	x = g.OutputRows(x)
	x = g.RMSNorm(x, m.outNorm, hp.NEmbd, hp.Eps)
	x = g.MatMul(m.out, x)
	if m.finalCap != 0 {
		x = g.SoftCap(x, m.finalCap)
	}
	g.SetOutput(x)
}

// loadDecoderBase reads the common hyperparameters, the embeddings and
// the per-layer tensors every decoder has (attention norm, Q/K/V,
// output projection, FFN norm), with NeoX rope unless neox is false.
func loadDecoderBase(l *Loader, neox bool) *decoder {
	hp := l.Common(true)
	l.Vocab()
	if l.err != nil {
		return nil
	}
	m := &decoder{hp: hp}
	m.tok = l.Matrix("token_embd.weight", hp.NEmbd, hp.NVocab)
	m.layers = make([]decLayer, hp.NLayer)
	for i := range m.layers {
		L := &m.layers[i]
		L.attnNorm = l.Vector(Blk(i, "attn_norm.weight"), hp.NEmbd)
		L.qkv = l.QKV(i, hp.NEmbd, hp.QDim(), hp.KVDim(), hp.KVDim())
		L.o = l.Matrix(Blk(i, "attn_output.weight"), hp.QDim(), hp.NEmbd)
		L.oB = l.OptVector(Blk(i, "attn_output.bias"), hp.NEmbd)
		L.ffnNorm = l.Vector(Blk(i, "ffn_norm.weight"), hp.NEmbd)
		L.rope = hp.Rope(neox)
	}
	return m
}

// qkNorms loads per-head attn_q_norm and attn_k_norm of every layer.
func (m *decoder) qkNorms(l *Loader) {
	for i := range m.layers {
		m.layers[i].qNorm = l.Vector(Blk(i, "attn_q_norm.weight"), m.hp.HeadDim)
		m.layers[i].kNorm = l.Vector(Blk(i, "attn_k_norm.weight"), m.hp.HeadDim)
	}
}

// denseFFN loads a dense gated feed-forward block in every layer.
func (m *decoder) denseFFN(l *Loader) {
	for i := range m.layers {
		m.layers[i].ffn = l.FFN(i, m.hp.NEmbd, m.hp.NFF)
	}
}

// postNorms loads post_attention_norm and post_ffw_norm of every layer.
func (m *decoder) postNorms(l *Loader) {
	for i := range m.layers {
		m.layers[i].postAttnNorm = l.Vector(Blk(i, "post_attention_norm.weight"), m.hp.NEmbd)
		m.layers[i].postFFNNorm = l.Vector(Blk(i, "post_ffw_norm.weight"), m.hp.NEmbd)
	}
}

// output loads the output norm and head (tied: always token_embd).
func (m *decoder) output(l *Loader, tied bool) {
	m.outNorm, m.out, _ = l.Output(tied)
}

// swaPattern marks sliding-window layers as llama.cpp does: the
// attention.sliding_window_pattern key is a per-layer boolean array, or
// a period n (layer i is local when i mod n < n−1; default def).
func (l *Loader) swaPattern(n, def int) []bool {
	if l.Has("attention.sliding_window_pattern") {
		k := l.key("attention.sliding_window_pattern")
		if v, _ := l.f.Lookup(k); v.Len() > 0 {
			return l.Bools("attention.sliding_window_pattern", n)
		}
		def = l.Uint("attention.sliding_window_pattern", def, 1<<16, false)
	}
	out := make([]bool, n)
	for i := range out {
		out[i] = def == 0 || i%def < def-1
	}
	return out
}

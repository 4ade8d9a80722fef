package engine

// The llama architecture: Llama 1–3.x, Mistral, SmolLM2, TinyLlama and
// Mixtral-style mixture-of-experts files. Pre-norm blocks with RMSNorm,
// adjacent-pair RoPE (with llama3 frequency factors from
// rope_freqs.weight when present), grouped-query attention, SwiGLU
// feed-forward or top-k routed experts.

// llamaLayer is one llama block.
type llamaLayer struct {
	attnNorm []float32
	qkv      qkvWeights
	o        *Weight
	oB       []float32
	ffnNorm  []float32
	ffn      ffnWeights
	moe      *MoESpec
}

// llama is a loaded llama model.
type llama struct {
	hp      *HParams
	tok     *Weight
	layers  []llamaLayer
	outNorm []float32
	out     *Weight
	rope    RoPEParams
}

func loadLlama(l *Loader) (builder, error) {
	hp := l.Common(true)
	l.Vocab()
	nExp, nUsed := l.ExpertCounts()
	if l.err != nil {
		return nil, l.err
	}
	m := &llama{hp: hp, rope: hp.Rope(false)}
	m.rope.Factors = l.RopeFactors("rope_freqs.weight")
	m.tok = l.Matrix("token_embd.weight", hp.NEmbd, hp.NVocab)
	m.layers = make([]llamaLayer, hp.NLayer)
	for i := range m.layers {
		L := &m.layers[i]
		L.attnNorm = l.Vector(Blk(i, "attn_norm.weight"), hp.NEmbd)
		L.qkv = l.QKV(i, hp.NEmbd, hp.QDim(), hp.KVDim(), hp.KVDim())
		L.o = l.Matrix(Blk(i, "attn_output.weight"), hp.QDim(), hp.NEmbd)
		L.oB = l.OptVector(Blk(i, "attn_output.bias"), hp.NEmbd)
		L.ffnNorm = l.Vector(Blk(i, "ffn_norm.weight"), hp.NEmbd)
		if nExp > 0 {
			nff := l.Uint("expert_feed_forward_length", hp.NFF, 1<<24, hp.NFF == 0)
			L.moe = l.MoE(i, hp.NEmbd, nff, nExp, nUsed, true)
		} else {
			L.ffn = l.FFN(i, hp.NEmbd, hp.NFF)
		}
		if l.err != nil {
			return nil, l.err
		}
	}
	m.outNorm, m.out, _ = l.Output(false)
	if l.err != nil {
		return nil, l.err
	}
	return m, nil
}

func (m *llama) build(g *Graph) {
	hp := m.hp
	x := g.Embed(m.tok)
	for i := range m.layers {
		L := &m.layers[i]
		cur := g.RMSNorm(x, L.attnNorm, hp.NEmbd, hp.Eps)
		q, k, v := g.QKV(&L.qkv, cur)
		q = g.RoPE(q, hp.NHead, m.rope)
		k = g.RoPE(k, hp.NHeadKV, m.rope)
		att := g.Attention(q, k, v, AttentionSpec{Layer: i, NHead: hp.NHead, NHeadKV: hp.NHeadKV,
			HeadDim: hp.HeadDim, Scale: attnScale(hp.HeadDim)})
		x = g.Add(x, g.Linear(L.o, L.oB, att))
		cur = g.RMSNorm(x, L.ffnNorm, hp.NEmbd, hp.Eps)
		if L.moe != nil {
			cur = g.MoE(cur, L.moe)
		} else {
			cur = g.FFN(&L.ffn, cur, false)
		}
		x = g.Add(x, cur)
	}
	x = g.OutputRows(x)
	x = g.RMSNorm(x, m.outNorm, hp.NEmbd, hp.Eps)
	g.SetOutput(g.MatMul(m.out, x))
}

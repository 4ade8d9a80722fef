package engine

// The phi3 architecture (Phi-3, Phi-3.5, Phi-4-mini): fused Q/K/V
// (attn_qkv) and fused gate/up (ffn_up holds the gate rows, then the up
// rows) with SwiGLU, NeoX RoPE with LongRoPE frequency factors
// (rope_factors_short, or rope_factors_long when a session's context
// exceeds rope.scaling.original_context_length) scaled by
// rope.scaling.attn_factor, Q scaled by 1/sqrt(head size).
func loadPhi3(l *Loader) (builder, error) {
	m := loadDecoderBase(l, true)
	if l.err != nil {
		return nil, l.err
	}
	hp := m.hp
	m.qScale = attnScale(hp.HeadDim)
	short := l.RopeFactors("rope_factors_short.weight")
	long := l.RopeFactors("rope_factors_long.weight")
	attnFactor := float32(l.Float("rope.scaling.attn_factor", 1, false))
	origCtx := l.Uint("rope.scaling.original_context_length", hp.NCtxTrain, maxCtxKey, long != nil)
	if long != nil {
		m.longFactors, m.longCtx = long, origCtx
	}
	// Phi-3 files may name a sliding window that llama.cpp ignores (its
	// conversion did not fill the pattern); so does this builder.
	l.Uint("attention.sliding_window", 0, 1<<30, false)
	for i := range m.layers {
		L := &m.layers[i]
		L.fusedUp = l.Matrix(Blk(i, "ffn_up.weight"), hp.NEmbd, 2*hp.NFF)
		L.ffn.Down = l.Matrix(Blk(i, "ffn_down.weight"), hp.NFF, hp.NEmbd)
		L.rope.Factors = short
		L.rope.AttnFactor = attnFactor
	}
	m.output(l, false)
	return m, l.err
}

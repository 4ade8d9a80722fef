package engine

// The qwen3 architecture: qwen2 without biases but with a per-head
// RMSNorm of Q and K (attn_q_norm, attn_k_norm) before NeoX RoPE.
func loadQwen3(l *Loader) (builder, error) {
	m := loadDecoderBase(l, true)
	if l.err != nil {
		return nil, l.err
	}
	m.qkNorms(l)
	m.denseFFN(l)
	m.output(l, false)
	return m, l.err
}

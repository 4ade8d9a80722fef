package engine

// The qwen2 architecture (Qwen2, Qwen2.5): llama's block with biases on
// the Q/K/V projections and NeoX-style RoPE.
func loadQwen2(l *Loader) (builder, error) {
	m := loadDecoderBase(l, true)
	if l.err != nil {
		return nil, l.err
	}
	m.denseFFN(l)
	m.output(l, false)
	return m, l.err
}

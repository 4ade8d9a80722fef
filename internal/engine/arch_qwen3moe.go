package engine

// The qwen3moe architecture (Qwen3-30B-A3B and kin): qwen3 attention
// and a mixture-of-experts feed-forward block: softmax over
// expert_count router logits, the expert_used_count best experts with
// their weights renormalized to sum 1, each expert a SwiGLU of
// expert_feed_forward_length.
func loadQwen3MoE(l *Loader) (builder, error) {
	m := loadDecoderBase(l, true)
	if l.err != nil {
		return nil, l.err
	}
	m.qkNorms(l)
	nExp, nUsed := l.ExpertCounts()
	if l.err == nil && nExp == 0 {
		l.fail(invalid("missing %s", l.key("expert_count")))
	}
	if l.err != nil {
		return nil, l.err
	}
	nff := l.Uint("expert_feed_forward_length", 0, 1<<24, m.hp.NFF == 0)
	if nff == 0 {
		nff = m.hp.NFF / nUsed
	}
	for i := range m.layers {
		m.layers[i].moe = l.MoE(i, m.hp.NEmbd, nff, nExp, nUsed, true)
	}
	m.output(l, false)
	return m, l.err
}

package engine

import "math"

// The gemma2 architecture: embeddings scaled by sqrt(n_embd), RMSNorm
// before and after both attention and feed-forward, NeoX RoPE, Q scaled
// by 1/sqrt(head size) before attention, attention scores soft-capped
// (attn_logit_softcapping, default 50), sliding-window attention
// (attention.sliding_window, default 4096) on every other layer
// starting with the first, GELU-gated feed-forward, tied output and
// final logits soft-capped (final_logit_softcapping, default 30).
func loadGemma2(l *Loader) (builder, error) {
	m := loadDecoderBase(l, true)
	if l.err != nil {
		return nil, l.err
	}
	hp := m.hp
	m.postNorms(l)
	m.denseFFN(l)
	m.output(l, true)
	m.gelu = true
	m.embScale = float32(math.Sqrt(float64(hp.NEmbd)))
	m.qScale = attnScale(hp.HeadDim)
	m.attnCap = float32(l.Float("attn_logit_softcapping", 50, false))
	m.finalCap = float32(l.Float("final_logit_softcapping", 30, false))
	window := l.Uint("attention.sliding_window", 4096, 1<<30, false)
	baseSWA := float32(l.Float("rope.freq_base_swa", float64(hp.RopeBase), false))
	for i, swa := range l.swaPattern(hp.NLayer, 2) {
		if swa {
			m.layers[i].window = window
			m.layers[i].rope.Base = baseSWA
		}
	}
	return m, l.err
}

package engine

import "math"

// The gemma3 architecture (text): gemma2's block with a per-head
// RMSNorm of Q and K instead of attention soft-capping; when
// attention.sliding_window is set, five local layers (window, rope base
// rope.freq_base_swa, default 10000, unscaled) alternate with one global
// layer (rope.freq_base with the file's rope scaling); final logits are
// soft-capped only when final_logit_softcapping is set.
func loadGemma3(l *Loader) (builder, error) {
	m := loadDecoderBase(l, true)
	if l.err != nil {
		return nil, l.err
	}
	hp := m.hp
	m.qkNorms(l)
	m.postNorms(l)
	m.denseFFN(l)
	m.output(l, false)
	m.gelu = true
	m.embScale = float32(math.Sqrt(float64(hp.NEmbd)))
	m.qScale = attnScale(hp.HeadDim)
	m.finalCap = float32(l.Float("final_logit_softcapping", 0, false))
	if window := l.Uint("attention.sliding_window", 0, 1<<30, false); window > 0 {
		baseSWA := float32(l.Float("rope.freq_base_swa", 10000, false))
		for i, swa := range l.swaPattern(hp.NLayer, 6) {
			if swa {
				L := &m.layers[i]
				L.window = window
				L.rope.Base = baseSWA
				L.rope.FreqScale = 1
			}
		}
	}
	return m, l.err
}

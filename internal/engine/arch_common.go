package engine

import (
	"fmt"
	"math"

	"github.com/realmrt/realm/backends"
)

// Pieces several architecture builders share: the attention input
// projections (separate or fused, with optional biases), the gated
// feed-forward block and the output head.

// qkvWeights are the input projections of one attention block.
type qkvWeights struct {
	QKV        *Weight // fused [n_embd, q+k+v], or nil
	QKVB       []float32
	Q, K, V    *Weight
	QB, KB, VB []float32
	nq, nk, nv int
}

// QKV loads layer i's attention projections (attn_qkv or
// attn_q/attn_k/attn_v, each with an optional bias) of widths nq, nk
// and nv from rows of nIn.
func (l *Loader) QKV(i, nIn, nq, nk, nv int) qkvWeights {
	w := qkvWeights{nq: nq, nk: nk, nv: nv}
	if l.hasTensor(Blk(i, "attn_qkv.weight")) {
		w.QKV = l.Matrix(Blk(i, "attn_qkv.weight"), nIn, nq+nk+nv)
		w.QKVB = l.OptVector(Blk(i, "attn_qkv.bias"), nq+nk+nv)
	} else {
		w.Q = l.Matrix(Blk(i, "attn_q.weight"), nIn, nq)
		w.K = l.Matrix(Blk(i, "attn_k.weight"), nIn, nk)
		w.V = l.Matrix(Blk(i, "attn_v.weight"), nIn, nv)
	}
	if w.QKVB == nil {
		w.QB = l.OptVector(Blk(i, "attn_q.bias"), nq)
		w.KB = l.OptVector(Blk(i, "attn_k.bias"), nk)
		w.VB = l.OptVector(Blk(i, "attn_v.bias"), nv)
	}
	return w
}

// QKV emits the projections of x.
func (g *Graph) QKV(w *qkvWeights, x Tensor) (q, k, v Tensor) {
	if w.QKV != nil {
		qkv := g.Linear(w.QKV, w.QKVB, x)
		q = g.AddRow(g.Columns(qkv, 0, w.nq), w.QB)
		k = g.AddRow(g.Columns(qkv, w.nq, w.nk), w.KB)
		v = g.AddRow(g.Columns(qkv, w.nq+w.nk, w.nv), w.VB)
		return q, k, v
	}
	return g.Linear(w.Q, w.QB, x), g.Linear(w.K, w.KB, x), g.Linear(w.V, w.VB, x)
}

// ffnWeights are a gated feed-forward block: down(act(gate·x) ⊙ up·x).
type ffnWeights struct {
	Gate, Up, Down    *Weight
	GateB, UpB, DownB []float32
}

// FFN loads layer i's gated feed-forward block (ffn_gate, ffn_up,
// ffn_down with optional biases) between widths nEmbd and nFF.
func (l *Loader) FFN(i, nEmbd, nFF int) ffnWeights {
	return ffnWeights{
		Gate:  l.Matrix(Blk(i, "ffn_gate.weight"), nEmbd, nFF),
		Up:    l.Matrix(Blk(i, "ffn_up.weight"), nEmbd, nFF),
		Down:  l.Matrix(Blk(i, "ffn_down.weight"), nFF, nEmbd),
		GateB: l.OptVector(Blk(i, "ffn_gate.bias"), nFF),
		UpB:   l.OptVector(Blk(i, "ffn_up.bias"), nFF),
		DownB: l.OptVector(Blk(i, "ffn_down.bias"), nEmbd),
	}
}

// FFN emits the block on x with SiLU (gelu false) or GELU gating.
func (g *Graph) FFN(w *ffnWeights, x Tensor, gelu bool) Tensor {
	gate := g.Linear(w.Gate, w.GateB, x)
	up := g.Linear(w.Up, w.UpB, x)
	var h Tensor
	if gelu {
		h = g.GELUMul(gate, up)
	} else {
		h = g.SiLUMul(gate, up)
	}
	return g.Linear(w.Down, w.DownB, h)
}

// moeWeights are a mixture-of-experts block.
type moeWeights struct {
	spec MoESpec
}

// MoE loads layer i's experts: ffn_gate_inp [n_embd, n_expert] and
// ffn_{gate,up,down}_exps, with n_expert and n_expert_used from
// expert_count and expert_used_count, and nFF rows per expert.
func (l *Loader) MoE(i, nEmbd, nFF, nExpert, nUsed int, norm bool) *MoESpec {
	s := &MoESpec{
		Router:   l.Matrix(Blk(i, "ffn_gate_inp.weight"), nEmbd, nExpert),
		Gate:     l.Experts(Blk(i, "ffn_gate_exps.weight"), nEmbd, nFF, nExpert),
		Up:       l.Experts(Blk(i, "ffn_up_exps.weight"), nEmbd, nFF, nExpert),
		Down:     l.Experts(Blk(i, "ffn_down_exps.weight"), nFF, nEmbd, nExpert),
		TopK:     nUsed,
		NormTopK: norm,
		NFF:      nFF,
		NEmbd:    nEmbd,
	}
	return s
}

// Experts reads expert_count and expert_used_count (0, 0 when the model
// has no experts).
func (l *Loader) ExpertCounts() (n, used int) {
	if !l.Has("expert_count") {
		return 0, 0
	}
	n = l.Uint("expert_count", 0, 1<<12, true)
	used = l.Uint("expert_used_count", 0, 1<<12, true)
	if l.err == nil && used > n {
		l.fail(invalid("%s = %d exceeds %s = %d", l.key("expert_used_count"), used, l.key("expert_count"), n))
	}
	return n, used
}

// Output loads output_norm and the output matrix (token_embd when the
// file has no output.weight, or when tied is forced).
func (l *Loader) Output(tied bool) (norm []float32, out *Weight, isTied bool) {
	hp := &l.m.HP
	norm = l.Vector("output_norm.weight", hp.NEmbd)
	if !tied && l.hasTensor("output.weight") {
		return norm, l.Matrix("output.weight", hp.NEmbd, hp.NVocab), false
	}
	return norm, l.Matrix("token_embd.weight", hp.NEmbd, hp.NVocab), true
}

// attnScale is 1/sqrt(d).
func attnScale(d int) float32 { return float32(1 / math.Sqrt(float64(d))) }

// RopeFactors loads an optional frequency-factor tensor of NRot/2
// elements (nil when absent).
func (l *Loader) RopeFactors(name string) []float32 {
	if !l.hasTensor(name) {
		return nil
	}
	f := l.Vector(name, l.m.HP.NRot/2)
	for i, v := range f {
		if !(v > 0) {
			l.fail(invalid("tensor %s element %d = %g is not positive", name, i, v))
			return nil
		}
	}
	return f
}

// unsupported returns an ErrUnsupported error naming a key.
func unsupported(format string, args ...any) error {
	return fmt.Errorf("%w: %s", backends.ErrUnsupported, fmt.Sprintf(format, args...))
}

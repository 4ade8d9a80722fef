package engine

import (
	"context"
	"fmt"
	"math"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/gguf"
)

// Session is one sequence over a Model: a per-layer KV cache (f32
// storage holding f16-rounded values, like llama.cpp's f16 cache) of
// NCtx positions and the tokens decoded so far. A Session is not safe
// for concurrent use; different sessions of one model are.
type Session struct {
	m      *Model
	nCtx   int
	kcache [][]float32 // per layer, [nCtx][KVDim]
	vcache [][]float32
	tokens []int32
	act    activations // kept for batches of up to keepRows rows
}

// keepRows is the largest batch whose activation buffers a session keeps
// between Decode calls: token-by-token generation then allocates only
// its logits, while a long prompt's buffers are not held for the
// session's lifetime.
const keepRows = 16

// activations are the per-row work buffers of one forward pass, carved
// from one allocation. Every kernel writes its output in full, so reused
// buffers need no clearing.
type activations struct {
	rows                     int
	x, cur, tmp, sum, q, att []float32
	gate, up, hid            []float32
	pos                      []int32
}

// activations returns work buffers for a batch of B rows.
func (s *Session) activations(B int) *activations {
	if s.act.rows >= B {
		return &s.act
	}
	hp := &s.m.HP
	E, Q, FF := hp.NEmbd, hp.QDim(), hp.NFF
	rows := B
	if B <= keepRows {
		rows = keepRows
	}
	buf := make([]float32, rows*(4*E+2*Q+3*FF))
	next := func(n int) []float32 {
		v := buf[: n*rows : n*rows]
		buf = buf[n*rows:]
		return v
	}
	a := &activations{rows: rows, pos: make([]int32, rows)}
	a.x, a.cur, a.tmp, a.sum = next(E), next(E), next(E), next(E)
	a.q, a.att = next(Q), next(Q)
	a.gate, a.up, a.hid = next(FF), next(FF), next(FF)
	if B <= keepRows {
		s.act = *a
	}
	return a
}

// KVBytes returns the size of the KV cache of a session of nCtx positions.
func (m *Model) KVBytes(nCtx int) uint64 {
	return 2 * 4 * uint64(m.HP.NLayer) * uint64(nCtx) * uint64(m.HP.KVDim())
}

// NewSession returns an empty session of nCtx positions (1 ≤ nCtx ≤
// the training context).
func (m *Model) NewSession(nCtx int) (*Session, error) {
	if nCtx <= 0 || nCtx > m.HP.NCtxTrain {
		return nil, fmt.Errorf("%w: context size %d is out of range [1, %d]", backends.ErrInvalidArgument, nCtx, m.HP.NCtxTrain)
	}
	s := &Session{m: m, nCtx: nCtx, kcache: make([][]float32, m.HP.NLayer), vcache: make([][]float32, m.HP.NLayer)}
	n := nCtx * m.HP.KVDim()
	for i := range s.kcache {
		s.kcache[i] = make([]float32, n)
		s.vcache[i] = make([]float32, n)
	}
	return s, nil
}

// Model returns the session's model.
func (s *Session) Model() *Model { return s.m }

// NCtx returns the context size of the session.
func (s *Session) NCtx() int { return s.nCtx }

// Len returns the number of positions filled (the next token's position).
func (s *Session) Len() int { return len(s.tokens) }

// Tokens returns the tokens decoded so far (not a copy; do not modify).
func (s *Session) Tokens() []int32 { return s.tokens }

// Truncate rewinds the session to its first n positions.
func (s *Session) Truncate(n int) error {
	t, err := TruncateTokens(s.tokens, n)
	s.tokens = t
	return err
}

// Decode runs the forward pass over tokens (one batch, positions
// Len()..Len()+len(tokens)-1), appends them to the cache and returns the
// logits of the last position ([NVocab]) or, with all set, of every
// position ([len(tokens)][NVocab]). On error (bad token, context full,
// cancelled ctx) the session is left as it was.
func (s *Session) Decode(ctx context.Context, tokens []int32, all bool) ([]float32, error) {
	hp := &s.m.HP
	start := len(s.tokens)
	if err := CheckBatch(tokens, hp.NVocab, start, s.nCtx); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	k := s.m.k
	B := len(tokens)
	E, Q, KV, FF := hp.NEmbd, hp.QDim(), hp.KVDim(), hp.NFF

	a := s.activations(B)
	pos := a.pos[:B]
	for i := range pos {
		pos[i] = int32(start + i)
	}
	x, cur, tmp, sum := a.x[:B*E], a.cur[:B*E], a.tmp[:B*E], a.sum[:B*E]
	q, att := a.q[:B*Q], a.att[:B*Q]
	gate, up, hid := a.gate[:B*FF], a.up[:B*FF], a.hid[:B*FF]
	ap := AttentionParams{
		NHead: hp.NHead, NHeadKV: hp.NHeadKV, HeadDim: hp.HeadDim,
		Batch: B, StartPos: start, Scale: float32(1 / math.Sqrt(float64(hp.HeadDim))),
	}

	k.GetRows(x, s.m.TokEmbd, tokens)
	for l := range s.m.Layers {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		L := &s.m.Layers[l]
		k.RMSNorm(cur, x, L.AttnNorm, E, hp.Eps)
		k.MatMul(q, L.Q, cur, B)
		// K and V go straight into the cache rows of this batch.
		kc := s.kcache[l][start*KV : (start+B)*KV]
		vc := s.vcache[l][start*KV : (start+B)*KV]
		k.MatMul(kc, L.K, cur, B)
		k.MatMul(vc, L.V, cur, B)
		k.RoPE(q, pos, hp.NHead, hp.HeadDim, hp.NRot, hp.RopeBase)
		k.RoPE(kc, pos, hp.NHeadKV, hp.HeadDim, hp.NRot, hp.RopeBase)
		// The cache holds K and V at f16 precision, as llama.cpp's
		// default f16 KV cache does (see RATIONALE.md).
		roundF16(kc)
		roundF16(vc)
		k.Attention(att, q, s.kcache[l][:(start+B)*KV], s.vcache[l][:(start+B)*KV], ap)
		k.MatMul(tmp, L.O, att, B)
		k.Add(sum, x, tmp) // outputs never alias inputs
		x, sum = sum, x

		k.RMSNorm(cur, x, L.FFNNorm, E, hp.Eps)
		k.MatMul(gate, L.Gate, cur, B)
		k.MatMul(up, L.Up, cur, B)
		k.SiLUMul(hid, gate, up)
		k.MatMul(tmp, L.Down, hid, B)
		k.Add(sum, x, tmp)
		x, sum = sum, x
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rows := x
	n := B
	if !all {
		rows, n = x[(B-1)*E:], 1
	}
	k.RMSNorm(cur[:n*E], rows, s.m.OutNorm, E, hp.Eps)
	logits := make([]float32, n*hp.NVocab)
	k.MatMul(logits, s.m.Output, cur[:n*E], n)
	s.tokens = append(s.tokens, tokens...)
	return logits, nil
}

// roundF16 rounds every element of x to the nearest f16 value.
func roundF16(x []float32) {
	for i, v := range x {
		x[i] = gguf.F16ToF32(gguf.F32ToF16(v))
	}
}

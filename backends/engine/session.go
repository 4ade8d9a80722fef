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
	if n < 0 || n > len(s.tokens) {
		return fmt.Errorf("%w: cannot truncate a session of %d tokens to %d", backends.ErrInvalidArgument, len(s.tokens), n)
	}
	s.tokens = s.tokens[:n]
	return nil
}

// Decode runs the forward pass over tokens (one batch, positions
// Len()..Len()+len(tokens)-1), appends them to the cache and returns the
// logits of the last position ([NVocab]) or, with all set, of every
// position ([len(tokens)][NVocab]). On error (bad token, context full,
// cancelled ctx) the session is left as it was.
func (s *Session) Decode(ctx context.Context, tokens []int32, all bool) ([]float32, error) {
	hp := &s.m.HP
	if len(tokens) == 0 {
		return nil, fmt.Errorf("%w: no tokens to decode", backends.ErrInvalidArgument)
	}
	for i, t := range tokens {
		if t < 0 || int(t) >= hp.NVocab {
			return nil, fmt.Errorf("%w: token %d (at %d) is out of range [0, %d)", backends.ErrInvalidArgument, t, i, hp.NVocab)
		}
	}
	start := len(s.tokens)
	if len(tokens) > s.nCtx-start {
		return nil, fmt.Errorf("%w: %d tokens at position %d exceed the context of %d", backends.ErrContextFull, len(tokens), start, s.nCtx)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	k := s.m.k
	B := len(tokens)
	E, Q, KV, FF := hp.NEmbd, hp.QDim(), hp.KVDim(), hp.NFF

	pos := make([]int32, B)
	for i := range pos {
		pos[i] = int32(start + i)
	}
	x := make([]float32, B*E)
	cur := make([]float32, B*E)
	tmp := make([]float32, B*E)
	q := make([]float32, B*Q)
	att := make([]float32, B*Q)
	gate := make([]float32, B*FF)
	up := make([]float32, B*FF)
	hid := make([]float32, B*FF)
	sum := make([]float32, B*E)
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

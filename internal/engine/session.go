package engine

import (
	"context"
	"fmt"

	"github.com/realmrt/realm/backends"
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
	ex     *executor // its buffers are kept for batches of up to keepRows rows
	g      *Graph    // the graph of the last batch of up to keepRows rows
}

// keepRows is the largest batch whose work buffers a session keeps
// between Decode calls: token-by-token generation then allocates only
// its logits, while a long prompt's buffers are not held for the
// session's lifetime.
const keepRows = 16

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

// KV returns the cache of layer l (the session is sequence 0).
func (s *Session) KV(seq int32, l int) (k, v []float32, err error) {
	if seq != 0 || l < 0 || l >= len(s.kcache) {
		return nil, nil, fmt.Errorf("%w: no KV cache for sequence %d layer %d", backends.ErrInvalidArgument, seq, l)
	}
	return s.kcache[l], s.vcache[l], nil
}

// Decode runs the forward pass over tokens (one batch, positions
// Len()..Len()+len(tokens)-1), appends them to the cache and returns the
// logits of the last position ([NVocab]) or, with all set, of every
// position ([len(tokens)][NVocab]). On error (bad token, context full,
// cancelled ctx) the session is left as it was.
func (s *Session) Decode(ctx context.Context, tokens []int32, all bool) ([]float32, error) {
	start, err := s.reserve(tokens)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	B := len(tokens)
	// The graph depends only on the batch's length and output rows, so
	// the one of the previous call is reused with the new tokens.
	g := s.g
	if g == nil || g.Rows() != B || g.batch.All != all {
		b := &Batch{Pos: make([]int32, B), Seq: make([]int32, B), All: all, NCtx: s.nCtx}
		b.Tokens = tokens
		g = s.m.graph(b)
		if B <= keepRows {
			s.g = g
		}
	}
	g.batch.Tokens = tokens
	for i := range g.batch.Pos {
		g.batch.Pos[i] = int32(start + i)
	}
	if s.ex == nil {
		s.ex = newExecutor(s.m.k)
	}
	ex := s.ex
	if B > keepRows {
		ex = newExecutor(s.m.k)
	}
	logits, err := ex.run(ctx, g, s)
	g.batch.Tokens = nil
	if err != nil {
		return nil, err
	}
	s.commit(tokens)
	return logits, nil
}

// reserve checks that tokens can be decoded next (ids in the vocabulary,
// room in the context) and returns the position of the first. It is the
// step before any pass writes their KV rows, alone (Decode) or merged
// with other sessions (the scheduler); nothing changes until commit.
func (s *Session) reserve(tokens []int32) (start int, err error) {
	start = len(s.tokens)
	return start, CheckBatch(tokens, s.m.HP.NVocab, start, s.nCtx)
}

// commit appends tokens, whose KV rows a successful pass has written at
// positions Len()..Len()+len(tokens)-1. A failed or cancelled pass does
// not commit, which leaves the session as it was.
func (s *Session) commit(tokens []int32) {
	s.tokens = append(s.tokens, tokens...)
}

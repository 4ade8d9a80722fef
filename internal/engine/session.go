package engine

import (
	"context"
	"fmt"

	"github.com/realmrt/realm/backends"
)

// Session is one sequence over a Model: its tokens and a block table
// into the model's KV pool (f16 K and V rows, like llama.cpp's default
// cache), which grows a block at a time as positions are filled, up to
// NCtx positions. Full blocks of tokens are shared with other sessions
// that start with the same tokens (prefix reuse). A Session is not safe
// for concurrent use; different sessions of one model are.
type Session struct {
	m      *Model
	nCtx   int
	blocks []*kvBlock // block i holds positions i·KVBlockSize ..
	views  []KVView   // per layer: the blocks' K and V rows
	hashes []uint64   // prefix hash after each full block of tokens
	tokens []int32
	ex     *executor // its buffers are kept for batches of up to keepRows rows
	g      *Graph    // the graph of the last batch of up to keepRows rows
}

// keepRows is the largest batch whose work buffers a session keeps
// between Decode calls: token-by-token generation then allocates only
// its logits, while a long prompt's buffers are not held for the
// session's lifetime.
const keepRows = 16

// KVBytes returns the KV memory of a session of nCtx positions (f16 K
// and V, whole blocks).
func (m *Model) KVBytes(nCtx int) uint64 {
	return uint64(BlocksFor(nCtx)) * m.kv.st.BlockBytes
}

// NewSession returns an empty session of nCtx positions (1 ≤ nCtx ≤
// the training context). Its KV memory comes from the model's pool as
// positions are filled; Close gives it back.
func (m *Model) NewSession(nCtx int) (*Session, error) {
	if nCtx <= 0 || nCtx > m.HP.NCtxTrain {
		return nil, fmt.Errorf("%w: context size %d is out of range [1, %d]", backends.ErrInvalidArgument, nCtx, m.HP.NCtxTrain)
	}
	return &Session{m: m, nCtx: nCtx, views: make([]KVView, m.HP.NLayer)}, nil
}

// Model returns the session's model.
func (s *Session) Model() *Model { return s.m }

// NCtx returns the context size of the session.
func (s *Session) NCtx() int { return s.nCtx }

// Len returns the number of positions filled (the next token's position).
func (s *Session) Len() int { return len(s.tokens) }

// Tokens returns the tokens decoded so far (not a copy; do not modify).
func (s *Session) Tokens() []int32 { return s.tokens }

// Truncate rewinds the session to its first n positions, giving back
// the blocks past them.
func (s *Session) Truncate(n int) error {
	t, err := TruncateTokens(s.tokens, n)
	if err != nil {
		return err
	}
	s.tokens = t
	s.trim()
	return nil
}

// Close gives the session's blocks back to the pool (cached ones stay
// reusable) and empties it.
func (s *Session) Close() {
	s.tokens = s.tokens[:0]
	s.trim()
}

// KV returns the cache of layer l (the session is sequence 0).
func (s *Session) KV(seq int32, l int) (KVView, error) {
	if seq != 0 || l < 0 || l >= len(s.views) {
		return KVView{}, fmt.Errorf("%w: no KV cache for sequence %d layer %d", backends.ErrInvalidArgument, seq, l)
	}
	return s.views[l], nil
}

// Decode runs the forward pass over tokens (one batch, positions
// Len()..Len()+len(tokens)-1), appends them to the cache and returns the
// logits of the last position ([NVocab]) or, with all set, of every
// position ([len(tokens)][NVocab]). Leading full blocks of tokens that
// the pool holds for the same prefix are reused, not computed. On error
// (bad token, context full, KV pool full, cancelled ctx) the session is
// left as it was.
func (s *Session) Decode(ctx context.Context, tokens []int32, all bool) ([]float32, error) {
	start, skip, err := s.reserve(tokens, all)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	run := tokens[skip:]
	B := len(run)
	// The graph depends only on the batch's length and output rows, so
	// the one of the previous call is reused with the new tokens.
	g := s.g
	if g == nil || g.Rows() != B || g.batch.All != all {
		b := &Batch{Pos: make([]int32, B), Seq: make([]int32, B), All: all, NCtx: s.nCtx}
		b.Tokens = run
		g = s.m.graph(b)
		if B <= keepRows {
			s.g = g
		}
	}
	g.batch.Tokens = run
	for i := range g.batch.Pos {
		g.batch.Pos[i] = int32(start + skip + i)
	}
	if s.ex == nil {
		s.ex = newExecutor(s.m.k)
	}
	ex := s.ex
	if B > keepRows {
		ex = newExecutor(s.m.k)
	}
	s.m.passes.RLock()
	logits, err := ex.run(ctx, g, s)
	s.m.passes.RUnlock()
	s.m.passEnded()
	g.batch.Tokens = nil
	if err != nil {
		return nil, err
	}
	s.commit(tokens)
	return logits, nil
}

// reserve is the step before a pass writes the KV rows of tokens, alone
// (Decode) or merged with other sessions (a scheduler): it checks the
// tokens (ids in the vocabulary, room in the context), makes the block
// where writing starts the session's own (copying a shared one), takes
// the leading full blocks of tokens that the pool holds for the same
// prefix (skip tokens, a multiple of KVBlockSize, which the pass must
// not compute; never with all, never the last token) and allocates
// blocks for the rest. It returns the position of tokens[0]. On error
// nothing is reserved. The session's tokens do not change until commit;
// a failed pass simply does not commit, and the next reserve gives back
// what this one took.
func (s *Session) reserve(tokens []int32, all bool) (start, skip int, err error) {
	start = len(s.tokens)
	if err := CheckBatch(tokens, s.m.HP.NVocab, start, s.nCtx); err != nil {
		return 0, 0, err
	}
	s.trim()
	p := s.m.kv
	if start%KVBlockSize != 0 {
		// Writing starts inside the last block: it must be ours alone.
		i := len(s.blocks) - 1
		if b := s.blocks[i]; !p.writable(b) {
			nb, err := p.alloc(1)
			if err != nil {
				return 0, 0, err
			}
			copy(nb[0].data, b.data)
			s.setBlock(i, nb[0])
			p.release([]*kvBlock{b})
		}
	}
	base, hbase := len(s.blocks), len(s.hashes)
	if start%KVBlockSize == 0 && !all {
		var parent uint64
		if len(s.hashes) > 0 {
			parent = s.hashes[len(s.hashes)-1]
		}
		for skip+KVBlockSize < len(tokens) {
			t := tokens[skip : skip+KVBlockSize]
			h := p.chain(parent, t)
			b := p.lookup(parent, h, t)
			if b == nil {
				p.miss((len(tokens) - 1 - skip) / KVBlockSize)
				break
			}
			s.addBlock(b)
			s.hashes = append(s.hashes, h)
			parent = h
			skip += KVBlockSize
		}
	}
	if need := BlocksFor(start+len(tokens)) - len(s.blocks); need > 0 {
		bs, err := p.alloc(need)
		if err != nil {
			p.release(s.blocks[base:])
			s.cut(base)
			s.hashes = s.hashes[:hbase]
			return 0, 0, fmt.Errorf("%w (session at %d positions, %d more wanted)", err, start, len(tokens))
		}
		for _, b := range bs {
			s.addBlock(b)
		}
	}
	return start, skip, nil
}

// commit appends tokens, whose KV rows a successful pass has written
// (or reserve reused) at positions Len()..Len()+len(tokens)-1, and
// offers the blocks they fill for prefix reuse.
func (s *Session) commit(tokens []int32) {
	s.tokens = append(s.tokens, tokens...)
	p := s.m.kv
	for i := len(s.hashes); i < len(s.tokens)/KVBlockSize; i++ {
		var parent uint64
		if i > 0 {
			parent = s.hashes[i-1]
		}
		t := s.tokens[i*KVBlockSize : (i+1)*KVBlockSize]
		h := p.chain(parent, t)
		s.hashes = append(s.hashes, h)
		p.register(s.blocks[i], parent, h, t)
	}
}

// trim gives back the blocks past the session's tokens and forgets the
// hashes of blocks no longer full.
func (s *Session) trim() {
	n := BlocksFor(len(s.tokens))
	if n < len(s.blocks) {
		s.m.kv.release(s.blocks[n:])
		s.cut(n)
	}
	if f := len(s.tokens) / KVBlockSize; f < len(s.hashes) {
		s.hashes = s.hashes[:f]
	}
}

// addBlock appends b to the block table.
func (s *Session) addBlock(b *kvBlock) {
	s.blocks = append(s.blocks, b)
	for l := range s.views {
		k, v := s.m.kv.layer(b, l)
		s.views[l].K = append(s.views[l].K, k)
		s.views[l].V = append(s.views[l].V, v)
	}
}

// setBlock replaces block i of the table by b.
func (s *Session) setBlock(i int, b *kvBlock) {
	s.blocks[i] = b
	for l := range s.views {
		s.views[l].K[i], s.views[l].V[i] = s.m.kv.layer(b, l)
	}
}

// cut drops the block table past its first n blocks (without releasing).
func (s *Session) cut(n int) {
	clear(s.blocks[n:])
	s.blocks = s.blocks[:n]
	for l := range s.views {
		clear(s.views[l].K[n:])
		clear(s.views[l].V[n:])
		s.views[l].K, s.views[l].V = s.views[l].K[:n], s.views[l].V[:n]
	}
}

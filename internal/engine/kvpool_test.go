package engine_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/internal/backend/reference"
	"github.com/realmrt/realm/internal/engine"
)

// prompt returns n token ids of stories260K's vocabulary from seed.
func prompt(seed uint64, n int) []int32 {
	rng := rand.New(rand.NewPCG(seed, 7))
	out := make([]int32, n)
	for i := range out {
		out[i] = int32(1 + rng.IntN(500))
	}
	return out
}

// solo decodes toks in a fresh model (no shared pool) in the given
// chunks and returns the logits of every position.
func poolSolo(t *testing.T, toks []int32, chunks ...int) []float32 {
	t.Helper()
	s, err := storiesModel(t, reference.New()).NewSession(512)
	if err != nil {
		t.Fatal(err)
	}
	return decodeChunks(t, s, toks, chunks...)
}

// decodeChunks decodes toks into s in chunks of the given sizes (the
// rest in one) and returns the last logits of each chunk, concatenated.
func decodeChunks(t *testing.T, s *engine.Session, toks []int32, chunks ...int) []float32 {
	t.Helper()
	var out []float32
	for i := 0; i < len(toks); {
		n := len(toks) - i
		if len(chunks) > 0 {
			n, chunks = min(chunks[0], n), chunks[1:]
		}
		l, err := s.Decode(context.Background(), toks[i:i+n], false)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, l...)
		i += n
	}
	return out
}

// TestKVBytesF16 pins the cache at f16: 2 bytes per K and V element,
// whole blocks.
func TestKVBytesF16(t *testing.T) {
	m := storiesModel(t, reference.New())
	want := uint64(2 * 2 * m.HP.NLayer * 2048 * m.HP.KVDim())
	if got := m.KVBytes(2048); got != want {
		t.Fatalf("KVBytes(2048) = %d, want %d", got, want)
	}
	if got := m.KVBytes(2047); got != want {
		t.Fatalf("KVBytes(2047) = %d, want %d (whole blocks)", got, want)
	}
}

// TestPrefixReuse decodes a prompt in one session, then a longer one
// starting with it in a new session: the shared full blocks are reused
// (hits), and every logit is bit-identical to decoding without reuse.
func TestPrefixReuse(t *testing.T) {
	ctx := context.Background()
	m := storiesModel(t, reference.New())
	p := m.KVPool()
	sys := prompt(1, 100) // 3 full blocks and a partial one
	a, _ := m.NewSession(512)
	decodeChunks(t, a, sys)
	turn2 := append(slices.Clone(sys), prompt(2, 30)...)
	b, _ := m.NewSession(512)
	before := p.Stats()
	got, err := b.Decode(ctx, turn2, false)
	if err != nil {
		t.Fatal(err)
	}
	st := p.Stats()
	if hits := st.Hits - before.Hits; hits != 3 {
		t.Errorf("second session reused %d blocks, want 3 (stats %+v)", hits, st)
	}
	if want := poolSolo(t, turn2); !slices.Equal(got, want) {
		t.Fatal("logits with prefix reuse differ from decoding without it")
	}
	if b.Len() != len(turn2) || !slices.Equal(b.Tokens(), turn2) {
		t.Fatalf("session holds %d tokens, want %d", b.Len(), len(turn2))
	}
	// The continuation after reuse matches too.
	next := prompt(3, 5)
	g1, err := b.Decode(ctx, next, false)
	if err != nil {
		t.Fatal(err)
	}
	if want := poolSolo(t, append(slices.Clone(turn2), next...), len(turn2)); !slices.Equal(g1, want[len(want)-len(g1):]) {
		t.Fatal("decoding after a reused prefix differs")
	}
	// A prompt that is exactly the cached blocks still computes its
	// last token (its logits are needed), reusing the blocks before.
	c, _ := m.NewSession(512)
	before = p.Stats()
	got, err = c.Decode(ctx, sys[:96], false)
	if err != nil {
		t.Fatal(err)
	}
	if hits := p.Stats().Hits - before.Hits; hits != 2 {
		t.Errorf("exact-prefix session reused %d blocks, want 2", hits)
	}
	if want := poolSolo(t, sys[:96]); !slices.Equal(got, want) {
		t.Fatal("logits of an exactly cached prompt differ")
	}
	// A different prompt misses.
	before = p.Stats()
	d, _ := m.NewSession(512)
	decodeChunks(t, d, prompt(9, 70))
	if st := p.Stats(); st.Hits != before.Hits || st.Misses-before.Misses != 2 {
		t.Errorf("a new prompt: hits %d→%d, misses %d→%d; want no hit, 2 misses", before.Hits, st.Hits, before.Misses, st.Misses)
	}
}

// TestSharedBlockCopyOnWrite rewinds a session into a block another
// session shares and writes different tokens: the other session's
// cache must not change.
func TestSharedBlockCopyOnWrite(t *testing.T) {
	ctx := context.Background()
	m := storiesModel(t, reference.New())
	base := prompt(4, 64) // 2 full blocks
	a, _ := m.NewSession(512)
	decodeChunks(t, a, base)
	b, _ := m.NewSession(512)
	ext := append(slices.Clone(base), prompt(5, 10)...)
	decodeChunks(t, b, ext) // shares a's 2 blocks
	if err := a.Truncate(40); err != nil {
		t.Fatal(err)
	}
	decodeChunks(t, a, prompt(6, 30), 1, 1, 28) // rewrites positions 40.. of the shared block 1
	tail := prompt(7, 3)
	got, err := b.Decode(ctx, tail, false)
	if err != nil {
		t.Fatal(err)
	}
	want := poolSolo(t, append(slices.Clone(ext), tail...), len(ext))
	if !slices.Equal(got, want[len(want)-len(got):]) {
		t.Fatal("a session's cache changed when another rewrote a shared block")
	}
	gotA := decodeChunks(t, a, tail)
	wantA := poolSolo(t, append(append(slices.Clone(base[:40]), prompt(6, 30)...), tail...), 70)
	if !slices.Equal(gotA, wantA[len(wantA)-len(gotA):]) {
		t.Fatal("the rewound session differs from decoding its tokens alone")
	}
}

// TestKVPoolFull fills a small pool: the Decode that cannot get a block
// fails with ErrOutOfMemory and leaves its session unchanged; closing
// another session frees blocks (LRU eviction of cached ones) and the
// same Decode then succeeds with the logits of a solo run.
func TestKVPoolFull(t *testing.T) {
	ctx := context.Background()
	m := storiesModel(t, reference.New())
	p := m.KVPool()
	p.SetBudget(4 * p.Stats().BlockBytes) // 4 blocks = 128 positions
	a, _ := m.NewSession(512)
	decodeChunks(t, a, prompt(10, 96)) // 3 blocks
	b, _ := m.NewSession(512)
	first := prompt(11, 20)
	decodeChunks(t, b, first) // 1 block: pool full
	more := prompt(12, 20)
	if _, err := b.Decode(ctx, more, false); !errors.Is(err, backends.ErrOutOfMemory) {
		t.Fatalf("Decode beyond the pool: %v, want ErrOutOfMemory", err)
	}
	if b.Len() != 20 {
		t.Fatalf("failed Decode changed the session to %d tokens", b.Len())
	}
	if st := p.Stats(); st.InUse != 4 || st.Allocated != 4 {
		t.Fatalf("after a failed Decode: %+v, want 4 blocks in use", st)
	}
	a.Close()
	st := p.Stats()
	if st.InUse != 1 || st.Cached != 3 {
		t.Fatalf("after closing a session: %+v, want 1 in use and its 3 full blocks cached", st)
	}
	got, err := b.Decode(ctx, more, false)
	if err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Evictions != 1 || st.Allocated != 4 {
		t.Errorf("after the retry: %+v, want 1 eviction and no growth", st)
	}
	want := poolSolo(t, append(slices.Clone(first), more...), 20)
	if !slices.Equal(got, want[len(want)-len(got):]) {
		t.Fatal("Decode after a full pool differs from a solo run")
	}
	// The least recently used cached blocks went first: the first block
	// of a's prompt is gone, so its prefix misses from the start.
	c, _ := m.NewSession(512)
	before := p.Stats()
	if _, err := c.Decode(ctx, prompt(10, 40), false); err != nil {
		t.Fatal(err)
	}
	if p.Stats().Hits != before.Hits {
		t.Error("a prefix whose first block was evicted was still reused")
	}
}

// TestKVPoolBackend carries the budget through LoadRequest and reports
// the pool in Info (what the plugin boundary transports).
func TestKVPoolBackend(t *testing.T) {
	ctx := context.Background()
	b := engine.NewBackend(reference.New(), engine.Options{})
	const budget = 8 * 5 * 2 * 32 * 32 * 2 // 8 blocks of stories260K
	mi, err := b.LoadModel(ctx, backends.LoadRequest{Path: storiesPath(t), KVBudget: budget})
	if err != nil {
		t.Fatal(err)
	}
	defer b.UnloadModel(ctx, mi.ID)
	if mi.KVBudgetBytes != budget {
		t.Errorf("ModelInfo.KVBudgetBytes = %d, want %d", mi.KVBudgetBytes, budget)
	}
	toks := prompt(20, 70)
	for range 2 {
		sid, err := b.OpenSession(ctx, mi.ID, 256)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: toks, Want: backends.WantNone}); err != nil {
			t.Fatal(err)
		}
		if err := b.CloseSession(ctx, sid); err != nil {
			t.Fatal(err)
		}
	}
	info, err := b.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(info.KVPools) != 1 {
		t.Fatalf("Info.KVPools = %+v, want one pool", info.KVPools)
	}
	kp := info.KVPools[0]
	if kp.Model != mi.ID || kp.BudgetBytes != budget || kp.Hits != 2 || kp.Misses != 2 || kp.UsedBytes != 0 || kp.CachedBytes != 2*budget/8 || kp.BlockTokens != engine.KVBlockSize {
		t.Errorf("pool stats %+v", kp)
	}
	// Sessions that together need more than 8 blocks: the third fails
	// with ErrOutOfMemory, through the backend.
	var sids []backends.SessionID
	var err3 error
	for i := range 3 {
		sid, err := b.OpenSession(ctx, mi.ID, 256)
		if err != nil {
			t.Fatal(err)
		}
		sids = append(sids, sid)
		_, err3 = b.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: prompt(uint64(30+i), 100), Want: backends.WantNone})
	}
	if !errors.Is(err3, backends.ErrOutOfMemory) {
		t.Errorf("third 100-token session in an 8-block pool: %v, want ErrOutOfMemory", err3)
	}
}

// TestKVPoolConcurrent decodes sessions sharing a prefix from several
// goroutines (run with -race): each gets the logits of its solo run.
func TestKVPoolConcurrent(t *testing.T) {
	m := storiesModel(t, reference.New())
	m.KVPool().SetBudget(40 * m.KVPool().Stats().BlockBytes)
	sys := prompt(40, 70)
	type result struct {
		got  []float32
		toks []int32
		err  error
	}
	first, _ := m.NewSession(256)
	decodeChunks(t, first, sys)
	first.Close() // its full blocks stay cached
	res := make(chan result, 8)
	for i := range 8 {
		go func() {
			toks := append(slices.Clone(sys), prompt(uint64(50+i), 10+i)...)
			s, err := m.NewSession(256)
			if err != nil {
				res <- result{err: err}
				return
			}
			defer s.Close()
			var got []float32
			for j := 0; j < 2; j++ { // the prompt, then the rest in a second call
				part := toks[:len(sys)]
				if j == 1 {
					part = toks[len(sys):]
				}
				got, err = s.Decode(context.Background(), part, false)
				if err != nil {
					res <- result{err: err}
					return
				}
			}
			res <- result{got: got, toks: toks}
		}()
	}
	for range 8 {
		r := <-res
		if r.err != nil {
			t.Fatal(r.err)
		}
		want := poolSolo(t, r.toks, len(sys))
		if !slices.Equal(r.got, want[len(want)-len(r.got):]) {
			t.Fatal("a concurrent session's logits differ from its solo run")
		}
	}
	if st := m.KVPool().Stats(); st.InUse != 0 || st.Hits != 16 {
		t.Errorf("after all sessions closed: %+v, want nothing in use and 8×2 hits", st)
	}
}

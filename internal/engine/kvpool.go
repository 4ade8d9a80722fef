package engine

import (
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"slices"
	"sync"

	"github.com/realmrt/realm/backends"
)

// KVBlockSize is the number of positions in one block of a KV pool.
const KVBlockSize = 32

// DefaultKVBudget is the KV pool of a model when no budget is
// configured: blocks are allocated on demand up to it.
const DefaultKVBudget = 4 << 30

// KVView is one sequence's cache of one layer: f16 blocks in position
// order. K[i] and V[i] hold positions i·KVBlockSize ..
// (i+1)·KVBlockSize-1, each [KVBlockSize][NHeadKV·HeadDim] f16 bits.
type KVView struct {
	K, V [][]uint16
}

// KVStats are a pool's counters.
type KVStats struct {
	BudgetBytes uint64 // the most the pool allocates
	BlockBytes  uint64 // one block (all layers, K and V)
	BlockSize   int    // positions per block
	Allocated   int    // blocks allocated so far (never freed before unload)
	InUse       int    // blocks referenced by sessions
	Cached      int    // unreferenced blocks kept for prefix reuse
	Hits        uint64 // prefix blocks reused instead of computed
	Misses      uint64 // full prompt blocks looked up and not found
	Evictions   uint64 // cached blocks taken back for other use
}

// kvBlock is one block of the pool: every layer's K and V rows of
// KVBlockSize positions.
type kvBlock struct {
	data []uint16 // [nLayer][2][KVBlockSize][kvDim]
	ref  int      // sessions holding it
	// A full block whose KV is registered for prefix reuse has hash set
	// (the chain hash of every token up to its end), parent (the chain
	// hash before it) and its tokens; it is immutable while cached.
	hashed bool
	hash   uint64
	parent uint64
	toks   []int32
	// prev/next link the LRU list of cached blocks nobody references.
	prev, next *kvBlock
}

// KVPool is a model's KV memory: fixed-size blocks allocated on demand
// up to a budget, reference counted, with full blocks indexed by a hash
// of their token prefix so that sessions starting with the same tokens
// share them. It is safe for concurrent use.
type KVPool struct {
	mu        sync.Mutex
	nLayer    int
	kvDim     int
	blockLen  int // uint16s per block
	maxBlocks int
	seed      maphash.Seed
	free      []*kvBlock
	cached    map[uint64]*kvBlock
	lruHead   *kvBlock // oldest unreferenced cached block
	lruTail   *kvBlock
	st        KVStats
}

// newKVPool returns an empty pool for nLayer layers of kvDim-wide K and
// V rows, allocating at most budget bytes (0: DefaultKVBudget).
func newKVPool(nLayer, kvDim int, budget uint64) *KVPool {
	p := &KVPool{nLayer: nLayer, kvDim: kvDim, blockLen: nLayer * 2 * KVBlockSize * kvDim,
		seed: maphash.MakeSeed(), cached: make(map[uint64]*kvBlock)}
	p.st.BlockBytes = 2 * uint64(p.blockLen)
	p.st.BlockSize = KVBlockSize
	p.setBudget(budget)
	return p
}

// setBudget sets the most the pool allocates; blocks already allocated
// stay.
func (p *KVPool) setBudget(budget uint64) {
	if budget == 0 {
		budget = DefaultKVBudget
	}
	p.st.BudgetBytes = budget
	n := budget / p.st.BlockBytes
	if n > 1<<30 {
		n = 1 << 30
	}
	p.maxBlocks = int(n)
}

// SetBudget changes the pool's budget in bytes (0: DefaultKVBudget).
// Blocks allocated beyond a smaller budget stay until the model is
// unloaded.
func (p *KVPool) SetBudget(budget uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.setBudget(budget)
}

// Stats returns the pool's counters.
func (p *KVPool) Stats() KVStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.st
}

// BlocksFor returns the blocks that n positions occupy.
func BlocksFor(n int) int { return (n + KVBlockSize - 1) / KVBlockSize }

// layer returns block b's K and V rows of layer l.
func (p *KVPool) layer(b *kvBlock, l int) (k, v []uint16) {
	n := KVBlockSize * p.kvDim
	o := l * 2 * n
	return b.data[o : o+n : o+n], b.data[o+n : o+2*n : o+2*n]
}

// alloc returns n blocks with one reference each, or none and an
// ErrOutOfMemory when the pool cannot provide them (free blocks first,
// then new memory up to the budget, then the least recently used
// cached blocks).
func (p *KVPool) alloc(n int) ([]*kvBlock, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if avail := len(p.free) + (p.maxBlocks - p.st.Allocated) + p.st.Cached; n > avail {
		return nil, fmt.Errorf("%w: KV pool full: %d blocks of %d positions wanted, %d available (%d of %d in use, budget %d bytes)",
			backends.ErrOutOfMemory, n, KVBlockSize, max(avail, 0), p.st.InUse, max(p.maxBlocks, p.st.Allocated), p.st.BudgetBytes)
	}
	out := make([]*kvBlock, 0, n)
	for len(out) < n {
		var b *kvBlock
		switch {
		case len(p.free) > 0:
			b = p.free[len(p.free)-1]
			p.free = p.free[:len(p.free)-1]
		case p.st.Allocated < p.maxBlocks:
			b = &kvBlock{data: make([]uint16, p.blockLen)}
			p.st.Allocated++
		default:
			b = p.lruHead
			p.unlink(b)
			p.uncache(b)
			p.st.Cached--
			p.st.Evictions++
		}
		b.ref = 1
		p.st.InUse++
		out = append(out, b)
	}
	return out, nil
}

// release drops one reference to each block: an unreferenced cached
// block joins the LRU list, any other goes back to the free list.
func (p *KVPool) release(bs []*kvBlock) {
	if len(bs) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, b := range bs {
		b.ref--
		if b.ref > 0 {
			continue
		}
		p.st.InUse--
		if b.hashed {
			p.pushLRU(b)
			p.st.Cached++
		} else {
			p.free = append(p.free, b)
		}
	}
}

// chain returns the prefix hash after toks, given the one before them.
func (p *KVPool) chain(parent uint64, toks []int32) uint64 {
	var h maphash.Hash
	h.SetSeed(p.seed)
	var buf [8]byte
	binary.LittleEndian.PutUint64(buf[:], parent)
	h.Write(buf[:])
	for _, t := range toks {
		binary.LittleEndian.PutUint32(buf[:4], uint32(t))
		h.Write(buf[:4])
	}
	return h.Sum64()
}

// lookup returns the cached block that follows the prefix hashed
// parent with toks (one full block), with a reference taken, or nil.
func (p *KVPool) lookup(parent, hash uint64, toks []int32) *kvBlock {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.cached[hash]
	if b == nil || b.parent != parent || !slices.Equal(b.toks, toks) {
		return nil
	}
	if b.ref == 0 {
		p.unlink(b)
		p.st.Cached--
		p.st.InUse++
	}
	b.ref++
	p.st.Hits++
	return b
}

// miss counts n full blocks that a lookup did not find.
func (p *KVPool) miss(n int) {
	p.mu.Lock()
	p.st.Misses += uint64(n)
	p.mu.Unlock()
}

// register makes a full block (held by the caller) reusable under hash,
// unless another block already is.
func (p *KVPool) register(b *kvBlock, parent, hash uint64, toks []int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if b.hashed || p.cached[hash] != nil {
		return
	}
	b.hashed, b.hash, b.parent = true, hash, parent
	b.toks = append(b.toks[:0], toks...)
	p.cached[hash] = b
}

// writable reports whether the caller, holding b, may write into it:
// a block shared with another session may not; a cached block only the
// caller holds is withdrawn from the cache and then may.
func (p *KVPool) writable(b *kvBlock) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if b.ref > 1 {
		return false
	}
	if b.hashed {
		p.uncache(b)
	}
	return true
}

// uncache removes b from the prefix index.
func (p *KVPool) uncache(b *kvBlock) {
	if p.cached[b.hash] == b {
		delete(p.cached, b.hash)
	}
	b.hashed = false
}

// pushLRU appends b as the most recently used unreferenced block.
func (p *KVPool) pushLRU(b *kvBlock) {
	b.prev, b.next = p.lruTail, nil
	if p.lruTail != nil {
		p.lruTail.next = b
	} else {
		p.lruHead = b
	}
	p.lruTail = b
}

// unlink removes b from the LRU list.
func (p *KVPool) unlink(b *kvBlock) {
	if b.prev != nil {
		b.prev.next = b.next
	} else {
		p.lruHead = b.next
	}
	if b.next != nil {
		b.next.prev = b.prev
	} else {
		p.lruTail = b.prev
	}
	b.prev, b.next = nil, nil
}

// KVPool returns the pool the model's sessions take their KV memory
// from.
func (m *Model) KVPool() *KVPool { return m.kv }

// kvPools returns the KV pool of every loaded model.
func (b *backend) kvPools() []backends.KVPoolStats {
	var out []backends.KVPoolStats
	b.reg.Range(func(id backends.ModelID, lm *loadedModel) {
		out = append(out, lm.m.KVPool().Stats().Backend(id))
	}, nil)
	slices.SortFunc(out, func(a, b backends.KVPoolStats) int { return int(a.Model) - int(b.Model) })
	return out
}

// Backend returns st as the backends contract reports it for model id.
func (st KVStats) Backend(id backends.ModelID) backends.KVPoolStats {
	return backends.KVPoolStats{
		Model: id, BudgetBytes: st.BudgetBytes, AllocatedBytes: uint64(st.Allocated) * st.BlockBytes,
		UsedBytes: uint64(st.InUse) * st.BlockBytes, CachedBytes: uint64(st.Cached) * st.BlockBytes,
		BlockTokens: st.BlockSize, Hits: st.Hits, Misses: st.Misses, Evictions: st.Evictions,
	}
}

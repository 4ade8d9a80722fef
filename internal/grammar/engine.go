package grammar

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"unicode/utf8"
)

// Errors of a Matcher.
var (
	// ErrRejected: the token cannot continue the grammar.
	ErrRejected = errors.New("grammar: token not allowed here")
	// ErrTooComplex: the grammar's parse states outgrew the engine's
	// limits (a highly ambiguous grammar).
	ErrTooComplex = errors.New("grammar: the grammar is too ambiguous (too many parse states)")
)

// Limits of one engine (a grammar over a vocabulary). The interned
// stacks and states cannot be dropped while matchers use them, so they
// are capped; the memo tables are dropped when they grow too large.
const (
	maxNodes       = 1 << 20
	maxStates      = 1 << 17
	maxStacks      = 512     // stacks in one parse state
	maxStackItems  = 1 << 22 // stacks in all the states of an engine
	maxTransTables = 1 << 15 // 1 KiB each
	maxMaskBytes   = 32 << 20
)

// node is an interned stack: a grammar position on top of the stack
// parent. Node 0 is the empty stack (the grammar is complete).
type node struct {
	pos    int32
	parent int32
}

// state is an interned parse state: the stacks (sorted node ids, each
// with a character element on top, or 0) and an incomplete UTF-8
// sequence read so far (need bytes still to come, of a sequence of
// size bytes, with the bits val).
type state struct {
	stacks []int32
	need   uint8
	size   uint8
	val    uint32
}

// engine runs one grammar over one vocabulary. Its tables are shared by
// every Matcher of the pair, guarded by mu.
type engine struct {
	g *Grammar
	v *Vocab

	mu         sync.Mutex
	nodes      []node
	nodeIx     map[node]int32
	expandMemo map[int32][]int32
	states     []state
	stateIx    map[string]int32
	trans      []*[256]int32 // state → byte → state+1, 0 unknown, -1 dead (dense: the trie walk's hot path)
	nTrans     int           // tables allocated in trans
	masks      map[int32][]uint64
	maskBytes  int
	stackItems int
	full       bool // a limit was hit: the Cache replaces this engine
	start      int32
	startErr   error
	scratch    []int32
}

func newEngine(g *Grammar, v *Vocab) *engine {
	e := &engine{g: g, v: v,
		nodes: []node{{-1, -1}}, nodeIx: map[node]int32{},
		expandMemo: map[int32][]int32{}, stateIx: map[string]int32{},
		masks: map[int32][]uint64{}}
	var stacks []int32
	for _, a := range g.alts[g.root] {
		if g.elems[a].kind == kEnd {
			stacks = append(stacks, 0)
			continue
		}
		n, err := e.intern(node{a, 0})
		if err != nil {
			e.startErr = err
			return e
		}
		x, err := e.expand(n)
		if err != nil {
			e.startErr = err
			return e
		}
		stacks = append(stacks, x...)
	}
	e.start, e.startErr = e.internState(state{stacks: sortUniq(stacks)})
	return e
}

func (e *engine) intern(n node) (int32, error) {
	if id, ok := e.nodeIx[n]; ok {
		return id, nil
	}
	if len(e.nodes) >= maxNodes {
		e.full = true
		return 0, ErrTooComplex
	}
	id := int32(len(e.nodes))
	e.nodes = append(e.nodes, n)
	e.nodeIx[n] = id
	return id, nil
}

// after returns the stack that remains when the element on top of n
// has been matched: the next element, or (at the end of an
// alternative) the parent.
func (e *engine) after(n int32) (int32, error) {
	nd := e.nodes[n]
	if e.g.elems[nd.pos+1].kind == kEnd {
		return nd.parent, nil
	}
	return e.intern(node{nd.pos + 1, nd.parent})
}

// expand returns the stacks n stands for once every rule reference on
// top is replaced by the rule's alternatives: stacks with a character
// element on top, or 0.
func (e *engine) expand(n int32) ([]int32, error) {
	if n == 0 {
		return []int32{0}, nil
	}
	if x, ok := e.expandMemo[n]; ok {
		return x, nil
	}
	el := &e.g.elems[e.nodes[n].pos]
	if el.kind == kChar {
		x := []int32{n}
		e.expandMemo[n] = x
		return x, nil
	}
	cont, err := e.after(n)
	if err != nil {
		return nil, err
	}
	var out []int32
	for _, a := range e.g.alts[el.rule] {
		var x []int32
		if e.g.elems[a].kind == kEnd {
			x, err = e.expand(cont)
		} else {
			var m int32
			if m, err = e.intern(node{a, cont}); err == nil {
				x, err = e.expand(m)
			}
		}
		if err != nil {
			return nil, err
		}
		out = append(out, x...)
		if len(out) > maxStacks {
			e.full = true
			return nil, ErrTooComplex
		}
	}
	out = sortUniq(out)
	e.expandMemo[n] = out
	return out, nil
}

func sortUniq(s []int32) []int32 {
	slices.Sort(s)
	return slices.Compact(s)
}

func (e *engine) internState(s state) (int32, error) {
	key := make([]byte, 6+4*len(s.stacks))
	key[0], key[1] = s.need, s.size
	binary.LittleEndian.PutUint32(key[2:], s.val)
	for i, n := range s.stacks {
		binary.LittleEndian.PutUint32(key[6+4*i:], uint32(n))
	}
	if id, ok := e.stateIx[string(key)]; ok {
		return id, nil
	}
	if len(e.states) >= maxStates || e.stackItems+len(s.stacks) > maxStackItems {
		e.full = true
		return 0, ErrTooComplex
	}
	id := int32(len(e.states))
	e.states = append(e.states, s)
	e.stackItems += len(s.stacks)
	e.stateIx[string(key)] = id
	return id, nil
}

// stepRune advances the stacks over the code point c.
func (e *engine) stepRune(stacks []int32, c rune) ([]int32, error) {
	out := e.scratch[:0]
	for _, n := range stacks {
		if n == 0 || !e.g.elems[e.nodes[n].pos].matches(c) {
			continue
		}
		a, err := e.after(n)
		if err != nil {
			return nil, err
		}
		x, err := e.expand(a)
		if err != nil {
			return nil, err
		}
		out = append(out, x...)
	}
	e.scratch = out
	if len(out) > maxStacks {
		e.full = true
		return nil, ErrTooComplex
	}
	return slices.Clone(sortUniq(out)), nil
}

// possible reports whether some stack accepts a code point in [lo, hi].
func (e *engine) possible(stacks []int32, lo, hi rune) bool {
	for _, n := range stacks {
		if n != 0 && e.g.elems[e.nodes[n].pos].overlaps(lo, hi) {
			return true
		}
	}
	return false
}

// step is the state after byte b from state s; -1 when b is not
// allowed. Memoized.
func (e *engine) step(s int32, b byte) (int32, error) {
	if int(s) < len(e.trans) {
		if tab := e.trans[s]; tab != nil {
			switch t := tab[b]; {
			case t > 0:
				return t - 1, nil
			case t < 0:
				return -1, nil
			}
		}
	}
	t, err := e.stepSlow(s, b)
	if err != nil {
		return -1, err
	}
	for int(s) >= len(e.trans) {
		e.trans = append(e.trans, nil)
	}
	if e.trans[s] == nil {
		if e.nTrans >= maxTransTables {
			clear(e.trans) // recomputable: start over
			e.nTrans = 0
		}
		e.trans[s] = new([256]int32)
		e.nTrans++
	}
	if t < 0 {
		e.trans[s][b] = -1
	} else {
		e.trans[s][b] = t + 1
	}
	return t, nil
}

func (e *engine) stepSlow(s int32, b byte) (int32, error) {
	st := e.states[s]
	var next state
	switch {
	case st.need == 0 && b < 0x80:
		x, err := e.stepRune(st.stacks, rune(b))
		if err != nil || len(x) == 0 {
			return -1, err
		}
		next.stacks = x
	case st.need == 0:
		switch {
		case b >= 0xC2 && b <= 0xDF:
			next = state{need: 1, size: 2, val: uint32(b & 0x1F)}
		case b >= 0xE0 && b <= 0xEF:
			next = state{need: 2, size: 3, val: uint32(b & 0x0F)}
		case b >= 0xF0 && b <= 0xF4:
			next = state{need: 3, size: 4, val: uint32(b & 0x07)}
		default:
			return -1, nil
		}
		next.stacks = st.stacks
	default:
		if b&0xC0 != 0x80 {
			return -1, nil
		}
		next = state{need: st.need - 1, size: st.size, val: st.val<<6 | uint32(b&0x3F), stacks: st.stacks}
		if next.need == 0 {
			c := rune(next.val)
			if c < minRune(st.size) || c > utf8.MaxRune || c >= 0xD800 && c <= 0xDFFF {
				return -1, nil
			}
			x, err := e.stepRune(st.stacks, c)
			if err != nil || len(x) == 0 {
				return -1, err
			}
			return e.internState(state{stacks: x})
		}
	}
	if next.need > 0 {
		// Prune a sequence no code point it can become is accepted by.
		shift := 6 * uint32(next.need)
		lo := max(rune(next.val<<shift), minRune(next.size))
		hi := min(rune(next.val<<shift)|rune(1<<shift-1), utf8.MaxRune)
		if lo > hi || lo >= 0xD800 && hi <= 0xDFFF || !e.possible(next.stacks, lo, hi) {
			return -1, nil
		}
	}
	return e.internState(next)
}

// minRune is the smallest code point a UTF-8 sequence of size bytes
// may encode (smaller ones are overlong).
func minRune(size uint8) rune {
	switch size {
	case 2:
		return 0x80
	case 3:
		return 0x800
	case 4:
		return 0x10000
	}
	return 0
}

// complete reports whether s ends the grammar.
func (e *engine) complete(s int32) bool {
	st := &e.states[s]
	return st.need == 0 && len(st.stacks) > 0 && st.stacks[0] == 0
}

// mask returns the allowed tokens of state s as a bit set over the
// vocabulary, computed once per state (the caller holds mu).
func (e *engine) mask(s int32) ([]uint64, error) {
	if m, ok := e.masks[s]; ok {
		return m, nil
	}
	v := e.v
	m := make([]uint64, (v.n+63)/64)
	type frame struct {
		trie  int32
		state int32
	}
	stack := []frame{{0, s}}
	for len(stack) > 0 {
		f := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		tn := &v.trie[f.trie]
		for ci := tn.first; ci < tn.first+tn.count; ci++ {
			ch := &v.trie[ci]
			t, err := e.step(f.state, ch.b)
			if err != nil {
				return nil, err
			}
			if t < 0 {
				continue
			}
			for _, id := range v.ids[ch.ids : ch.ids+ch.nids] {
				m[id>>6] |= 1 << (id & 63)
			}
			if ch.count > 0 {
				stack = append(stack, frame{ci, t})
			}
		}
	}
	if e.complete(s) {
		for _, id := range v.eog {
			m[id>>6] |= 1 << (id & 63)
		}
	}
	if e.maskBytes+8*len(m) > maxMaskBytes {
		clear(e.masks)
		e.maskBytes = 0
	}
	e.masks[s] = m
	e.maskBytes += 8 * len(m)
	return m, nil
}

// Matcher follows one generation through a grammar: which tokens may
// come next (Apply, Allowed), and the tokens chosen (Accept). A Matcher
// is not safe for concurrent use; its engine is shared, under a lock.
type Matcher struct {
	e    *engine
	s    int32
	done bool // an end-of-generation token was accepted
}

// Apply sets the logits of the tokens that cannot come next to −∞. It
// returns how many tokens remain allowed (0: none; the grammar cannot go
// on in this vocabulary).
func (m *Matcher) Apply(logits []float32) (int, error) {
	if len(logits) != m.e.v.n {
		return 0, fmt.Errorf("grammar: %d logits for a vocabulary of %d tokens", len(logits), m.e.v.n)
	}
	if m.done {
		for i := range logits {
			logits[i] = float32(math.Inf(-1))
		}
		return 0, nil
	}
	m.e.mu.Lock()
	mask, err := m.e.mask(m.s)
	m.e.mu.Unlock()
	if err != nil {
		return 0, err
	}
	ninf := float32(math.Inf(-1))
	allowed := 0
	for w, bits := range mask {
		base := w * 64
		if bits == math.MaxUint64 && base+64 <= len(logits) {
			allowed += 64
			continue
		}
		end := min(base+64, len(logits))
		for i := base; i < end; i++ {
			if bits&(1<<(i-base)) == 0 {
				logits[i] = ninf
			} else {
				allowed++
			}
		}
	}
	return allowed, nil
}

// Allowed reports whether token id may come next.
func (m *Matcher) Allowed(id int32) bool {
	if m.done || id < 0 || int(id) >= m.e.v.n {
		return false
	}
	m.e.mu.Lock()
	defer m.e.mu.Unlock()
	if m.e.v.isEOG(id) {
		return m.e.complete(m.s)
	}
	_, err := m.e.walk(m.s, m.e.v.pieces[id])
	return err == nil
}

// walk advances s over p (the caller holds mu).
func (e *engine) walk(s int32, p []byte) (int32, error) {
	if len(p) == 0 {
		return -1, ErrRejected
	}
	for _, b := range p {
		t, err := e.step(s, b)
		if err != nil {
			return -1, err
		}
		if t < 0 {
			return -1, ErrRejected
		}
		s = t
	}
	return s, nil
}

// Accept moves the matcher past token id. An end-of-generation token is
// accepted only where the grammar is complete; the matcher is then done.
func (m *Matcher) Accept(id int32) error {
	if m.done {
		return fmt.Errorf("%w: the generation has ended", ErrRejected)
	}
	if id < 0 || int(id) >= m.e.v.n {
		return fmt.Errorf("%w: token %d is out of range", ErrRejected, id)
	}
	m.e.mu.Lock()
	defer m.e.mu.Unlock()
	if m.e.v.isEOG(id) {
		if !m.e.complete(m.s) {
			return fmt.Errorf("%w: end of generation before the grammar is complete", ErrRejected)
		}
		m.done = true
		return nil
	}
	t, err := m.e.walk(m.s, m.e.v.pieces[id])
	if err != nil {
		return fmt.Errorf("token %d (%q): %w", id, m.e.v.pieces[id], err)
	}
	m.s = t
	return nil
}

// AcceptBytes moves the matcher past text (for tests and for text that
// is forced, such as a prefix).
func (m *Matcher) AcceptBytes(text []byte) error {
	m.e.mu.Lock()
	defer m.e.mu.Unlock()
	s := m.s
	for _, b := range text {
		t, err := m.e.step(s, b)
		if err != nil {
			return err
		}
		if t < 0 {
			return fmt.Errorf("%w: byte %q", ErrRejected, b)
		}
		s = t
	}
	m.s = s
	return nil
}

// Complete reports whether the text so far is a whole sentence of the
// grammar (an end-of-generation token may come next).
func (m *Matcher) Complete() bool {
	m.e.mu.Lock()
	defer m.e.mu.Unlock()
	return m.e.complete(m.s)
}

// Done reports whether an end-of-generation token was accepted.
func (m *Matcher) Done() bool { return m.done }

// Continuable reports whether some non-empty continuation exists (a
// complete grammar may still allow more, e.g. trailing space).
func (m *Matcher) Continuable() bool {
	m.e.mu.Lock()
	defer m.e.mu.Unlock()
	st := &m.e.states[m.s]
	return st.need > 0 || len(st.stacks) > 1 || len(st.stacks) == 1 && st.stacks[0] != 0
}

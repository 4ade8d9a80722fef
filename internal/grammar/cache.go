package grammar

import (
	"container/list"
	"sync"
)

// Cache keeps what is worth keeping between generations: the Vocab of
// each tokenizer (built once) and the engine of each (grammar text,
// tokenizer) pair, whose interned states, transitions and masks make a
// second request with the same schema cheap. Both are bounded LRU
// lists. A Cache is safe for concurrent use; the host owns one.
type Cache struct {
	mu      sync.Mutex
	max     int
	vocabs  map[Tokens]*Vocab
	vorder  *list.List // of Tokens, most recent first
	engines map[engineKey]*list.Element
	eorder  *list.List // of *cacheEntry
}

type engineKey struct {
	tok  Tokens
	text string
}

type cacheEntry struct {
	key engineKey
	e   *engine
}

// maxVocabs bounds the cached vocabularies.
const maxVocabs = 8

// NewCache returns a Cache holding up to max engines (≤ 0: 32).
func NewCache(max int) *Cache {
	if max <= 0 {
		max = 32
	}
	return &Cache{max: max, vocabs: map[Tokens]*Vocab{}, vorder: list.New(),
		engines: map[engineKey]*list.Element{}, eorder: list.New()}
}

// Vocab returns the Vocab of t, built on first use.
func (c *Cache) Vocab(t Tokens) *Vocab {
	c.mu.Lock()
	if v, ok := c.vocabs[t]; ok {
		c.mu.Unlock()
		return v
	}
	c.mu.Unlock()
	v := NewVocab(t) // outside the lock: tens of milliseconds for large vocabularies
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.vocabs[t]; ok {
		return old
	}
	c.vocabs[t] = v
	c.vorder.PushFront(t)
	for c.vorder.Len() > maxVocabs {
		last := c.vorder.Back()
		c.vorder.Remove(last)
		delete(c.vocabs, last.Value.(Tokens))
	}
	return v
}

// Matcher returns a Matcher at the start of the GBNF grammar text over
// t's vocabulary. The grammar is parsed once per (text, tokenizer).
func (c *Cache) Matcher(t Tokens, text string) (*Matcher, error) {
	key := engineKey{t, text}
	c.mu.Lock()
	if el, ok := c.engines[key]; ok {
		ent := el.Value.(*cacheEntry)
		ent.e.mu.Lock()
		full := ent.e.full
		ent.e.mu.Unlock()
		if !full {
			c.eorder.MoveToFront(el)
			c.mu.Unlock()
			return ent.e.matcher()
		}
		c.eorder.Remove(el)
		delete(c.engines, key)
	}
	c.mu.Unlock()
	g, err := Parse(text)
	if err != nil {
		return nil, err
	}
	e := newEngine(g, c.Vocab(t))
	if e.startErr != nil {
		return nil, e.startErr
	}
	c.mu.Lock()
	if el, ok := c.engines[key]; ok {
		c.eorder.Remove(el)
	}
	c.engines[key] = c.eorder.PushFront(&cacheEntry{key, e})
	for c.eorder.Len() > c.max {
		last := c.eorder.Back()
		c.eorder.Remove(last)
		delete(c.engines, last.Value.(*cacheEntry).key)
	}
	c.mu.Unlock()
	return e.matcher()
}

// NewMatcher returns a Matcher of g over v that shares nothing with
// other matchers.
func NewMatcher(g *Grammar, v *Vocab) (*Matcher, error) {
	return newEngine(g, v).matcher()
}

func (e *engine) matcher() (*Matcher, error) {
	if e.startErr != nil {
		return nil, e.startErr
	}
	return &Matcher{e: e, s: e.start}, nil
}

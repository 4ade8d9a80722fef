package grammar

import (
	"bytes"
	"slices"
)

// Tokens is what a Vocab is built from: the tokenizer's view of each
// token (tokenizer.Tokenizer implements it).
type Tokens interface {
	NVocab() int
	// Piece is the bytes a token adds to the output text; empty for
	// control tokens, which a grammar never allows.
	Piece(id int32) []byte
	IsEOG(id int32) bool
	EOGs() []int32
}

// trieNode is a node of the token trie: the byte on the edge from its
// parent, its children (a contiguous run of nodes) and the tokens whose
// piece ends here.
type trieNode struct {
	b            byte
	first, count int32 // children: nodes [first, first+count)
	ids, nids    int32 // tokens: Vocab.ids[ids : ids+nids]
}

// Vocab is a vocabulary prepared for masking: every token's piece, and
// a trie of them (children stored breadth-first, so each node's
// children are contiguous). Built once per tokenizer; immutable.
type Vocab struct {
	n      int
	pieces [][]byte
	eog    []int32
	eogSet map[int32]bool
	trie   []trieNode
	ids    []int32
}

// NewVocab builds the Vocab of t. Tokens with an empty piece (control
// tokens) and end-of-generation tokens are left out of the trie; the
// latter are allowed exactly where the grammar is complete.
func NewVocab(t Tokens) *Vocab {
	v := &Vocab{n: t.NVocab(), pieces: make([][]byte, t.NVocab()), eogSet: map[int32]bool{}}
	for _, id := range t.EOGs() {
		if id >= 0 && int(id) < v.n && !v.eogSet[id] {
			v.eog = append(v.eog, id)
			v.eogSet[id] = true
		}
	}
	order := make([]int32, 0, v.n)
	for i := range v.n {
		id := int32(i)
		v.pieces[i] = t.Piece(id)
		if len(v.pieces[i]) > 0 && !v.eogSet[id] {
			order = append(order, id)
		}
	}
	slices.SortFunc(order, func(a, b int32) int {
		if c := bytes.Compare(v.pieces[a], v.pieces[b]); c != 0 {
			return c
		}
		return int(a - b)
	})
	// Breadth-first: a level holds groups of sorted tokens sharing a
	// prefix; each group becomes one node whose children come from the
	// next byte.
	type group struct {
		node   int32
		tokens []int32 // sorted by piece, all sharing the node's prefix
		depth  int
	}
	v.trie = []trieNode{{}}
	queue := []group{{0, order, 0}}
	for len(queue) > 0 {
		g := queue[0]
		queue = queue[1:]
		toks := g.tokens
		// Tokens that end at this node come first (shortest sort first).
		k := 0
		for k < len(toks) && len(v.pieces[toks[k]]) == g.depth {
			k++
		}
		v.trie[g.node].ids = int32(len(v.ids))
		v.trie[g.node].nids = int32(k)
		v.ids = append(v.ids, toks[:k]...)
		toks = toks[k:]
		v.trie[g.node].first = int32(len(v.trie))
		for len(toks) > 0 {
			b := v.pieces[toks[0]][g.depth]
			j := 1
			for j < len(toks) && v.pieces[toks[j]][g.depth] == b {
				j++
			}
			child := int32(len(v.trie))
			v.trie = append(v.trie, trieNode{b: b})
			queue = append(queue, group{child, toks[:j], g.depth + 1})
			toks = toks[j:]
		}
		v.trie[g.node].count = int32(len(v.trie)) - v.trie[g.node].first
	}
	return v
}

// N returns the number of tokens.
func (v *Vocab) N() int { return v.n }

func (v *Vocab) isEOG(id int32) bool { return v.eogSet[id] }

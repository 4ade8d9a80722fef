package tokenizer

import (
	"errors"
	"fmt"
	"strings"
)

// fragment is a piece of the input: raw text [s, e) or a special token.
type fragment struct {
	tok  int32 // NoToken for raw text
	s, e int
}

// isCSpace is C's isspace in the "C" locale.
func isCSpace(b byte) bool {
	return b == ' ' || (b >= '\t' && b <= '\r')
}

// partition splits text on special tokens like llama.cpp's
// tokenizer_st_partition: every token of type CONTROL, USER_DEFINED or
// UNKNOWN, longest first, is cut out of the remaining raw fragments. With
// parseSpecial false, CONTROL and UNKNOWN tokens are left as text but
// USER_DEFINED tokens are still cut out (as Hugging Face does).
func (t *Tokenizer) partition(text string, parseSpecial bool) []fragment {
	if text == "" {
		return nil
	}
	frags := []fragment{{tok: NoToken, s: 0, e: len(text)}}
	present := t.trie.present(text)
	if len(present) == 0 {
		return frags
	}
	var next []fragment
	for _, id := range t.special {
		a := t.attrs[id]
		if !parseSpecial && a&(attrControl|attrUnknown) != 0 {
			continue
		}
		if !present[id] {
			continue
		}
		tok := t.v.Tokens[id]
		next = next[:0]
		for _, f := range frags {
			if f.tok != NoToken {
				next = append(next, f)
				continue
			}
			s, e := f.s, f.e
			for {
				k := strings.Index(text[s:e], tok)
				if k < 0 {
					next = append(next, fragment{tok: NoToken, s: s, e: e})
					break
				}
				m := s + k
				if m > s {
					le := m
					if a&attrLStrip != 0 {
						for le > s && isCSpace(text[le-1]) {
							le--
						}
					}
					if le > s {
						next = append(next, fragment{tok: NoToken, s: s, e: le})
					}
				}
				next = append(next, fragment{tok: id})
				rs := m + len(tok)
				if rs >= e {
					break
				}
				if a&attrRStrip != 0 {
					for rs < e && isCSpace(text[rs]) {
						rs++
					}
				}
				if rs >= e {
					break
				}
				s = rs
			}
		}
		frags, next = next, frags
	}
	return frags
}

// specialTrie is a byte trie of the special tokens' texts, used to find in
// one pass which of them occur in a text.
type specialTrie struct {
	first [256]bool        // bytes that start some special token
	next  map[uint32]int32 // node<<8|byte -> child node (root is 0)
	tok   map[int32]int32  // node -> token id ending there
}

func newSpecialTrie(tokens []string, ids []int32) specialTrie {
	tr := specialTrie{next: map[uint32]int32{}, tok: map[int32]int32{}}
	nodes := int32(1)
	for _, id := range ids {
		s := tokens[id]
		tr.first[s[0]] = true
		n := int32(0)
		for i := 0; i < len(s); i++ {
			k := uint32(n)<<8 | uint32(s[i])
			c, ok := tr.next[k]
			if !ok {
				c = nodes
				nodes++
				tr.next[k] = c
			}
			n = c
		}
		tr.tok[n] = id
	}
	return tr
}

// present returns the special tokens that occur in text.
func (tr *specialTrie) present(text string) map[int32]bool {
	var found map[int32]bool
	for i := 0; i < len(text); i++ {
		if !tr.first[text[i]] {
			continue
		}
		n := int32(0)
		for j := i; j < len(text); j++ {
			c, ok := tr.next[uint32(n)<<8|uint32(text[j])]
			if !ok {
				break
			}
			n = c
			if id, ok := tr.tok[n]; ok {
				if found == nil {
					found = map[int32]bool{}
				}
				found[id] = true
			}
		}
	}
	return found
}

// ErrNoBOS is returned by Encode when BOS is requested but the vocabulary
// has no BOS token.
var ErrNoBOS = errors.New("tokenizer: BOS requested but the vocabulary has no BOS token")

// Encode tokenizes text like llama_tokenize. With addBOS (llama.cpp's
// add_special), BOS is prepended and EOS appended when the vocabulary has
// add_eos_token (WordPiece: CLS ... SEP), whatever the vocabulary's
// add_bos_token says — pass AddBOSDefault for llama.cpp's default. With parseSpecial, the text of
// CONTROL tokens (e.g. "<|im_start|>") becomes those tokens; USER_DEFINED
// tokens are always matched. Invalid UTF-8 is accepted: SentencePiece
// encodes its bytes with byte-fallback tokens, BPE and WordPiece see it as
// U+FFFD as llama.cpp does.
func (t *Tokenizer) Encode(text string, addBOS, parseSpecial bool) ([]int32, error) {
	frags := t.partition(text, parseSpecial)
	out := make([]int32, 0, len(text)/3+4)
	if addBOS {
		if t.v.BOS == NoToken {
			return nil, ErrNoBOS
		}
		out = append(out, t.v.BOS)
	}
	var err error
	switch t.v.Model {
	case ModelSPM:
		prevSpecial := true
		var sb strings.Builder
		var st spmState
		for _, f := range frags {
			if f.tok != NoToken {
				out = append(out, f.tok)
				prevSpecial = true
				continue
			}
			sb.Reset()
			if t.v.AddSpacePrefix && prevSpecial {
				sb.WriteString("\u2581")
			}
			escapeSpaces(&sb, text[f.s:f.e])
			if out, err = t.encodeSPM(&st, sb.String(), out); err != nil {
				return nil, err
			}
			prevSpecial = false
		}
	case ModelBPE:
		var b bpeState
		for _, f := range frags {
			if f.tok != NoToken {
				out = append(out, f.tok)
				continue
			}
			out = t.encodeBPE(&b, text[f.s:f.e], out)
		}
	case ModelWPM:
		for _, f := range frags {
			if f.tok != NoToken {
				out = append(out, f.tok)
				continue
			}
			out = t.encodeWPM(text[f.s:f.e], out)
		}
	}
	if addBOS {
		switch {
		case t.v.Model == ModelWPM:
			// llama.cpp always closes a WordPiece sequence with SEP
			if t.v.SEP == NoToken {
				return nil, errors.New("tokenizer: WordPiece vocabulary has no SEP token")
			}
			out = append(out, t.v.SEP)
		case t.v.AddEOS:
			out = append(out, t.v.EOS)
		}
	}
	return out, nil
}

func escapeSpaces(sb *strings.Builder, s string) {
	for {
		k := strings.IndexByte(s, ' ')
		if k < 0 {
			sb.WriteString(s)
			return
		}
		sb.WriteString(s[:k])
		sb.WriteString("\u2581")
		s = s[k+1:]
	}
}

// ---- SentencePiece ----

type spmSymbol struct {
	start, n   int
	prev, next int
}

type spmBigram struct {
	left, right int
	score       float32
	size        int
}

// before orders the work queue: highest score first, then left-most.
func (a spmBigram) before(b spmBigram) bool {
	if a.score != b.score {
		return a.score > b.score
	}
	return a.left < b.left
}

// encodeSPM is llama.cpp's SentencePiece BPE: start from UTF-8 characters
// and repeatedly merge the adjacent pair whose concatenation is the token
// with the highest score (left-most on ties); pieces that are not tokens
// fall back to <0xXX> byte tokens, then UNK.
func (t *Tokenizer) encodeSPM(st *spmState, s string, out []int32) ([]int32, error) {
	if !t.spmSplit {
		return t.encodeSPMSegment(st, s, out)
	}
	// No token contains U+2581 after a different character, so no merge
	// can cross the start of a run of U+2581: encode such words one by one
	// (same result, much smaller work queues).
	const sp = "\u2581"
	start, prevSp := 0, false
	var err error
	for off := 0; off < len(s); {
		n := min(utf8Len(s[off]), len(s)-off)
		isSp := s[off:off+n] == sp
		if isSp && !prevSp && off > start {
			if out, err = t.encodeSPMCached(st, s[start:off], out); err != nil {
				return nil, err
			}
			start = off
		}
		prevSp = isSp
		off += n
	}
	return t.encodeSPMCached(st, s[start:], out)
}

// spmState holds scratch buffers and a per-call cache of encoded words.
type spmState struct {
	syms  []spmSymbol
	q     queue[spmBigram]
	cache map[string][]int32
}

// encodeSPMCached encodes one word, remembering the result.
func (t *Tokenizer) encodeSPMCached(st *spmState, w string, out []int32) ([]int32, error) {
	if ids, ok := st.cache[w]; ok {
		return append(out, ids...), nil
	}
	n0 := len(out)
	out, err := t.encodeSPMSegment(st, w, out)
	if err != nil {
		return nil, err
	}
	if st.cache == nil {
		st.cache = make(map[string][]int32)
	}
	if len(st.cache) < 1<<16 && len(w) < 256 {
		st.cache[w] = append([]int32(nil), out[n0:]...)
	}
	return out, nil
}

// encodeSPMSegment runs the SentencePiece merge loop over s.
func (t *Tokenizer) encodeSPMSegment(st *spmState, s string, out []int32) ([]int32, error) {
	if s == "" {
		return out, nil
	}
	syms := st.syms[:0]
	for off := 0; off < len(s); {
		n := min(utf8Len(s[off]), len(s)-off)
		i := len(syms)
		next := i + 1
		if off+n == len(s) {
			next = -1
		}
		syms = append(syms, spmSymbol{start: off, n: n, prev: i - 1, next: next})
		off += n
	}
	st.syms = syms
	q := st.q[:0]
	defer func() { st.q = q[:0] }()
	try := func(l, r int) {
		if l < 0 || r < 0 {
			return
		}
		a := syms[l]
		txt := s[a.start : a.start+a.n+syms[r].n]
		id, ok := t.toID[txt]
		if !ok {
			return
		}
		var score float32
		if t.v.Scores != nil {
			score = t.v.Scores[id]
		}
		q.push(spmBigram{left: l, right: r, score: score, size: len(txt)})
	}
	for i := 1; i < len(syms); i++ {
		try(i-1, i)
	}
	for len(q) > 0 {
		b := q.pop()
		l, r := &syms[b.left], &syms[b.right]
		if l.n == 0 || r.n == 0 || l.n+r.n != b.size {
			continue
		}
		l.n += r.n
		r.n = 0
		l.next = r.next
		if r.next >= 0 {
			syms[r.next].prev = b.left
		}
		try(l.prev, b.left)
		try(b.left, l.next)
	}
	for i := 0; i != -1; i = syms[i].next {
		sym := syms[i]
		txt := s[sym.start : sym.start+sym.n]
		if id, ok := t.toID[txt]; ok {
			out = append(out, id)
			continue
		}
		for j := 0; j < len(txt); j++ {
			id := t.byteTok[txt[j]]
			if id == NoToken {
				id = t.v.UNK
			}
			if id == NoToken {
				return nil, fmt.Errorf("tokenizer: no byte-fallback or unknown token for byte 0x%02X", txt[j])
			}
			out = append(out, id)
		}
	}
	return out, nil
}

// ---- byte-level BPE ----

type bpeSymbol struct {
	start, n   int
	prev, next int
	id         int32 // token of the symbol's text, or NoToken
}

type bpeBigram struct {
	left, right int
	rank        int32
	res         int32 // token of the merged text, or NoToken
	ln, rn      int
}

// before orders the work queue: lowest merge rank first, then
// left-most.
func (a bpeBigram) before(b bpeBigram) bool {
	if a.rank != b.rank {
		return a.rank < b.rank
	}
	return a.left < b.left
}

// bpeState holds scratch buffers reused across the words of one Encode.
type bpeState struct {
	pt    ptext
	offs  []int
	norm  []byte
	word  []byte
	key   []byte
	syms  []bpeSymbol
	heap  queue[bpeBigram]
	cache map[string][]int32
}

// encodeBPE pre-tokenizes s and byte-level-BPE encodes every word.
func (t *Tokenizer) encodeBPE(b *bpeState, s string, out []int32) []int32 {
	// decode code points (invalid bytes become U+FFFD, as in llama.cpp)
	b.pt.cpts = b.pt.cpts[:0]
	b.pt.flags = b.pt.flags[:0]
	b.offs = b.offs[:0]
	b.norm = b.norm[:0]
	for i := 0; i < len(s); {
		c, n := decodeCpt(s, i)
		b.offs = append(b.offs, len(b.norm))
		b.norm = appendCpt(b.norm, c)
		b.pt.cpts = append(b.pt.cpts, c)
		b.pt.flags = append(b.pt.flags, cptFlags(c))
		i += n
	}
	b.offs = append(b.offs, len(b.norm))
	if b.cache == nil {
		b.cache = make(map[string][]int32)
	}
	for _, sp := range t.pre.split(&b.pt) {
		raw := b.norm[b.offs[sp.s]:b.offs[sp.e]]
		b.word = b.word[:0]
		for _, c := range raw {
			b.word = append(b.word, t.benc.enc[c]...)
		}
		if ids, ok := b.cache[string(b.word)]; ok {
			out = append(out, ids...)
			continue
		}
		n0 := len(out)
		out = t.bpeWord(b, raw, b.word, out)
		if len(b.cache) < 1<<16 && len(b.word) < 256 {
			b.cache[string(b.word)] = append([]int32(nil), out[n0:]...)
		}
	}
	return out
}

// bpeWord merges the symbols of one byte-encoded word by merge rank
// (lowest first, left-most on ties). Symbols carry their token id so that
// merges of two tokens are found with an integer key.
func (t *Tokenizer) bpeWord(b *bpeState, raw, w []byte, out []int32) []int32 {
	if t.set.ignoreMerges {
		if id, ok := t.toID[string(w)]; ok {
			return append(out, id)
		}
	}
	// one symbol per input byte: its GPT-2 character
	b.syms = b.syms[:0]
	off := 0
	for i, c := range raw {
		n := len(t.benc.enc[c])
		next := i + 1
		if i == len(raw)-1 {
			next = -1
		}
		b.syms = append(b.syms, bpeSymbol{start: off, n: n, prev: i - 1, next: next, id: t.byteSym[c]})
		off += n
	}
	syms := b.syms
	b.heap = b.heap[:0]
	try := func(l, r int) {
		if l < 0 || r < 0 {
			return
		}
		a, c := syms[l], syms[r]
		if a.id != NoToken && c.id != NoToken {
			v, ok := t.mergeIDs[uint64(uint32(a.id))<<32|uint64(uint32(c.id))]
			if ok {
				b.heap.push(bpeBigram{left: l, right: r, rank: int32(v >> 32), res: int32(uint32(v)), ln: a.n, rn: c.n})
			}
			return
		}
		if len(t.ranks) == 0 {
			return
		}
		b.key = append(b.key[:0], w[a.start:a.start+a.n]...)
		b.key = append(b.key, ' ')
		b.key = append(b.key, w[c.start:c.start+c.n]...)
		rank, ok := t.ranks[string(b.key)]
		if !ok {
			return
		}
		res := NoToken
		if id, ok := t.toID[string(w[a.start:a.start+a.n+c.n])]; ok {
			res = id
		}
		b.heap.push(bpeBigram{left: l, right: r, rank: rank, res: res, ln: a.n, rn: c.n})
	}
	for i := 1; i < len(syms); i++ {
		try(i-1, i)
	}
	for len(b.heap) > 0 {
		g := b.heap.pop()
		l, r := &syms[g.left], &syms[g.right]
		if l.n == 0 || r.n == 0 || l.n != g.ln || r.n != g.rn {
			continue
		}
		l.n += r.n
		l.id = g.res
		r.n = 0
		l.next = r.next
		if r.next >= 0 {
			syms[r.next].prev = g.left
		}
		try(l.prev, g.left)
		try(g.left, l.next)
	}
	for i := 0; i != -1 && len(syms) > 0; i = syms[i].next {
		sym := syms[i]
		if sym.n == 0 {
			continue
		}
		if sym.id != NoToken {
			out = append(out, sym.id)
			continue
		}
		for _, c := range w[sym.start : sym.start+sym.n] {
			if id, ok := t.toID[string([]byte{c})]; ok {
				out = append(out, id)
			}
		}
	}
	return out
}

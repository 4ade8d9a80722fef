// Package grammar constrains generation to a formal language: a GBNF
// grammar (llama.cpp's notation) or a JSON schema compiled to one, and
// a token-level mask that says which tokens of a vocabulary may come
// next. The host's sampler applies the mask to the logits before it
// draws, so the output always belongs to the language.
//
// A grammar runs as a pushdown automaton over Unicode code points, the
// way llama.cpp's does: a parse state is a set of stacks of grammar
// positions. Stacks are interned (hash-consed), so a state is a small
// set of integers, states are interned too, and the transition of a
// state over a byte, and the mask of a state, are computed once and
// reused: within a generation and across requests with the same
// grammar (see Cache). The mask of a state walks a trie of the
// vocabulary's token bytes, pruning every subtree a byte rules out.
package grammar

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Limits of what Parse accepts.
const (
	// MaxGrammarBytes caps a grammar's text.
	MaxGrammarBytes = 256 << 10
	// MaxRepetition caps the counts of x{m,n} (llama.cpp's threshold):
	// a larger minimum is an error, a larger maximum means unbounded.
	MaxRepetition = 2000
	// maxElems caps the compiled grammar (repetitions expand).
	maxElems = 1 << 20
)

// ErrSyntax is wrapped by every error Parse returns for a bad grammar.
var ErrSyntax = errors.New("grammar")

// kind is the kind of a grammar element.
type kind uint8

const (
	kEnd  kind = iota // end of an alternative
	kChar             // one code point out of ranges (negated: not in them)
	kRef              // a reference to a rule
)

// elem is one element of an alternative.
type elem struct {
	kind   kind
	neg    bool
	rule   int32  // kRef: the rule
	ranges []rune // kChar: inclusive lo, hi pairs
	ascii  [2]uint64
}

// matches reports whether the char element e accepts c.
func (e *elem) matches(c rune) bool {
	if c < 128 {
		return e.ascii[c>>6]&(1<<(c&63)) != 0
	}
	return e.matchesSlow(c)
}

func (e *elem) matchesSlow(c rune) bool {
	in := false
	for i := 0; i < len(e.ranges); i += 2 {
		if e.ranges[i] <= c && c <= e.ranges[i+1] {
			in = true
			break
		}
	}
	return in != e.neg
}

// overlaps reports whether e accepts some code point in [lo, hi].
func (e *elem) overlaps(lo, hi rune) bool {
	if !e.neg {
		for i := 0; i < len(e.ranges); i += 2 {
			if e.ranges[i] <= hi && lo <= e.ranges[i+1] {
				return true
			}
		}
		return false
	}
	// Negated: some point of [lo, hi] lies outside every range.
	c := lo
	for c <= hi {
		moved := false
		for i := 0; i < len(e.ranges); i += 2 {
			if e.ranges[i] <= c && c <= e.ranges[i+1] {
				c = e.ranges[i+1] + 1
				moved = true
			}
		}
		if !moved {
			return true
		}
	}
	return false
}

func (e *elem) finish() {
	for c := rune(0); c < 128; c++ {
		if e.matchesSlow(c) {
			e.ascii[c>>6] |= 1 << (c & 63)
		}
	}
}

// Grammar is a parsed grammar: every alternative of every rule laid out
// in one slice of elements, each alternative ended by a kEnd element.
// A Grammar is immutable and safe for concurrent use.
type Grammar struct {
	elems []elem
	alts  [][]int32 // rule → the start positions of its alternatives
	names []string  // rule → name
	root  int32
	text  string
}

// Text returns the grammar's source.
func (g *Grammar) Text() string { return g.text }

// symbol is one element, or the characters of one string literal,
// before layout; repetition applies to a whole symbol.
type symbol []elem

type parser struct {
	src    string
	pos    int
	ids    map[string]int32
	names  []string
	rules  [][][]elem // rule → alternatives → elements
	def    []bool
	nElems int
}

func (p *parser) errf(format string, args ...any) error {
	line := 1 + strings.Count(p.src[:min(p.pos, len(p.src))], "\n")
	return fmt.Errorf("%w: line %d: %s", ErrSyntax, line, fmt.Sprintf(format, args...))
}

// Parse parses a grammar in llama.cpp's GBNF notation: rules
// `name ::= alternatives`, string literals with \n \r \t \\ \" \[ \] \-
// \xHH \uHHHH \UHHHHHHHH escapes, character classes [a-z] and [^...],
// `.` (any character), groups, and the postfix operators * + ? {m}
// {m,} {m,n}; # starts a comment. The rule `root` is the start rule.
// Undefined rules, left recursion and token references (<...>, which
// name token ids of one vocabulary) are errors.
func Parse(text string) (*Grammar, error) {
	if len(text) > MaxGrammarBytes {
		return nil, fmt.Errorf("%w: %d bytes is more than the limit of %d", ErrSyntax, len(text), MaxGrammarBytes)
	}
	if !utf8.ValidString(text) {
		return nil, fmt.Errorf("%w: the grammar is not valid UTF-8", ErrSyntax)
	}
	p := &parser{src: text, ids: map[string]int32{}}
	p.space(true)
	for p.pos < len(p.src) {
		if err := p.rule(); err != nil {
			return nil, err
		}
	}
	root, ok := p.ids["root"]
	if !ok {
		return nil, fmt.Errorf("%w: no root rule", ErrSyntax)
	}
	for i, d := range p.def {
		if !d {
			return nil, fmt.Errorf("%w: undefined rule %q", ErrSyntax, p.names[i])
		}
	}
	g := &Grammar{names: p.names, root: root, text: text, alts: make([][]int32, len(p.rules))}
	for r, alts := range p.rules {
		for _, a := range alts {
			g.alts[r] = append(g.alts[r], int32(len(g.elems)))
			g.elems = append(g.elems, a...)
			g.elems = append(g.elems, elem{kind: kEnd})
		}
	}
	for i := range g.elems {
		if g.elems[i].kind == kChar {
			g.elems[i].finish()
		}
	}
	if err := g.checkLeftRecursion(); err != nil {
		return nil, err
	}
	return g, nil
}

func (p *parser) id(name string) int32 {
	if id, ok := p.ids[name]; ok {
		return id
	}
	id := int32(len(p.names))
	p.ids[name] = id
	p.names = append(p.names, name)
	p.rules = append(p.rules, nil)
	p.def = append(p.def, false)
	return id
}

// fresh returns a new generated rule named after base.
func (p *parser) fresh(base string) int32 {
	for i := len(p.names); ; i++ {
		n := base + "-" + strconv.Itoa(i)
		if _, ok := p.ids[n]; !ok {
			return p.id(n)
		}
	}
}

func (p *parser) define(id int32, alts [][]elem) error {
	for _, a := range alts {
		p.nElems += len(a) + 1
	}
	if p.nElems > maxElems {
		return p.errf("the grammar expands to more than %d elements", maxElems)
	}
	p.rules[id] = alts
	p.def[id] = true
	return nil
}

func isWord(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-'
}

// space skips blanks and comments, and newlines when nl is set.
func (p *parser) space(nl bool) {
	for p.pos < len(p.src) {
		switch c := p.src[p.pos]; {
		case c == ' ' || c == '\t':
			p.pos++
		case c == '#':
			for p.pos < len(p.src) && p.src[p.pos] != '\n' && p.src[p.pos] != '\r' {
				p.pos++
			}
		case nl && (c == '\n' || c == '\r'):
			p.pos++
		default:
			return
		}
	}
}

func (p *parser) name() (string, error) {
	s := p.pos
	for p.pos < len(p.src) && isWord(p.src[p.pos]) {
		p.pos++
	}
	if p.pos == s {
		return "", p.errf("expecting a rule name at %q", p.rest())
	}
	return p.src[s:p.pos], nil
}

func (p *parser) rest() string {
	r := p.src[p.pos:]
	if len(r) > 20 {
		r = r[:20] + "…"
	}
	return r
}

func (p *parser) rule() error {
	name, err := p.name()
	if err != nil {
		return err
	}
	p.space(false)
	if !strings.HasPrefix(p.src[p.pos:], "::=") {
		return p.errf("expecting ::= at %q", p.rest())
	}
	p.pos += 3
	p.space(true)
	id := p.id(name)
	if p.def[id] {
		return p.errf("rule %q is defined twice", name)
	}
	p.def[id] = true // a placeholder while the body parses
	alts, err := p.alternates(name, false)
	if err != nil {
		return err
	}
	if err := p.define(id, alts); err != nil {
		return err
	}
	if p.pos < len(p.src) {
		switch p.src[p.pos] {
		case '\r', '\n':
			p.pos++
		default:
			return p.errf("expecting a newline or the end at %q", p.rest())
		}
	}
	p.space(true)
	return nil
}

func (p *parser) alternates(name string, nested bool) ([][]elem, error) {
	var alts [][]elem
	for {
		seq, err := p.sequence(name, nested)
		if err != nil {
			return nil, err
		}
		alts = append(alts, seq)
		if p.pos < len(p.src) && p.src[p.pos] == '|' {
			p.pos++
			p.space(true)
			continue
		}
		return alts, nil
	}
}

func (p *parser) sequence(name string, nested bool) ([]elem, error) {
	var syms []symbol
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		switch {
		case c == '"':
			p.pos++
			var sym symbol
			for {
				if p.pos >= len(p.src) {
					return nil, p.errf("unterminated string literal")
				}
				if p.src[p.pos] == '"' {
					p.pos++
					break
				}
				r, err := p.char()
				if err != nil {
					return nil, err
				}
				sym = append(sym, elem{kind: kChar, ranges: []rune{r, r}})
			}
			syms = append(syms, sym)
		case c == '[':
			p.pos++
			e := elem{kind: kChar}
			if p.pos < len(p.src) && p.src[p.pos] == '^' {
				e.neg = true
				p.pos++
			}
			for {
				if p.pos >= len(p.src) {
					return nil, p.errf("unterminated character class")
				}
				if p.src[p.pos] == ']' {
					p.pos++
					break
				}
				lo, err := p.char()
				if err != nil {
					return nil, err
				}
				hi := lo
				if p.pos+1 < len(p.src) && p.src[p.pos] == '-' && p.src[p.pos+1] != ']' {
					p.pos++
					if hi, err = p.char(); err != nil {
						return nil, err
					}
				}
				e.ranges = append(e.ranges, lo, hi)
			}
			syms = append(syms, symbol{e})
		case c == '.':
			p.pos++
			syms = append(syms, symbol{{kind: kChar, neg: true}})
		case c == '<' || c == '!':
			return nil, p.errf("token references (<...>) are not supported")
		case isWord(c):
			n, err := p.name()
			if err != nil {
				return nil, err
			}
			syms = append(syms, symbol{{kind: kRef, rule: p.id(n)}})
		case c == '(':
			p.pos++
			p.space(true)
			sub := p.fresh(name)
			alts, err := p.alternates(name, true)
			if err != nil {
				return nil, err
			}
			if err := p.define(sub, alts); err != nil {
				return nil, err
			}
			if p.pos >= len(p.src) || p.src[p.pos] != ')' {
				return nil, p.errf("expecting ) at %q", p.rest())
			}
			p.pos++
			syms = append(syms, symbol{{kind: kRef, rule: sub}})
		case c == '*' || c == '+' || c == '?' || c == '{':
			if len(syms) == 0 {
				return nil, p.errf("%q with nothing before it", c)
			}
			lo, hi := 0, -1
			p.pos++
			switch c {
			case '+':
				lo = 1
			case '?':
				hi = 1
			case '{':
				var err error
				if lo, hi, err = p.counts(); err != nil {
					return nil, err
				}
			}
			last := syms[len(syms)-1]
			rep, err := p.repeat(name, last, lo, hi)
			if err != nil {
				return nil, err
			}
			syms = append(syms[:len(syms)-1], rep)
		default:
			var seq []elem
			for _, s := range syms {
				seq = append(seq, s...)
			}
			return seq, nil
		}
		p.space(nested)
	}
	var seq []elem
	for _, s := range syms {
		seq = append(seq, s...)
	}
	return seq, nil
}

// counts parses "m}", "m,}" or "m,n}" after a '{'; hi -1 is unbounded.
func (p *parser) counts() (int, int, error) {
	num := func() (int, bool) {
		s := p.pos
		for p.pos < len(p.src) && p.src[p.pos] >= '0' && p.src[p.pos] <= '9' {
			p.pos++
		}
		if p.pos == s {
			return 0, false
		}
		n, err := strconv.Atoi(p.src[s:p.pos])
		if err != nil || n > 1<<30 {
			return 1 << 30, true
		}
		return n, true
	}
	p.space(false)
	lo, ok := num()
	if !ok {
		return 0, 0, p.errf("expecting a number at %q", p.rest())
	}
	p.space(false)
	hi := lo
	if p.pos < len(p.src) && p.src[p.pos] == ',' {
		p.pos++
		p.space(false)
		hi = -1
		if n, ok := num(); ok {
			hi = n
		}
		p.space(false)
	}
	if p.pos >= len(p.src) || p.src[p.pos] != '}' {
		return 0, 0, p.errf("expecting } at %q", p.rest())
	}
	p.pos++
	if lo > MaxRepetition {
		return 0, 0, p.errf("a repetition of %d is more than the limit of %d", lo, MaxRepetition)
	}
	if hi > MaxRepetition {
		hi = -1
	}
	if hi >= 0 && hi < lo {
		return 0, 0, p.errf("repetition {%d,%d}: the maximum is below the minimum", lo, hi)
	}
	return lo, hi, nil
}

// repeat rewrites sym{lo,hi} (hi -1: unbounded) as lo copies followed by
// a rule: R ::= sym R | ε when unbounded, else hi−lo nested optional
// rules Rk ::= sym Rk−1 | ε.
func (p *parser) repeat(name string, sym symbol, lo, hi int) (symbol, error) {
	var out symbol
	for i := 0; i < lo; i++ {
		out = append(out, sym...)
		if len(out) > maxElems {
			return nil, p.errf("the grammar expands to more than %d elements", maxElems)
		}
	}
	if hi < 0 {
		r := p.fresh(name)
		body := append(append([]elem(nil), sym...), elem{kind: kRef, rule: r})
		if err := p.define(r, [][]elem{body, nil}); err != nil {
			return nil, err
		}
		return append(out, elem{kind: kRef, rule: r}), nil
	}
	prev := int32(-1)
	for i := 0; i < hi-lo; i++ {
		r := p.fresh(name)
		body := append([]elem(nil), sym...)
		if prev >= 0 {
			body = append(body, elem{kind: kRef, rule: prev})
		}
		if err := p.define(r, [][]elem{body, nil}); err != nil {
			return nil, err
		}
		prev = r
	}
	if prev >= 0 {
		out = append(out, elem{kind: kRef, rule: prev})
	}
	return out, nil
}

// char parses one character of a literal or class, with escapes.
func (p *parser) char() (rune, error) {
	if p.src[p.pos] != '\\' {
		r, n := utf8.DecodeRuneInString(p.src[p.pos:])
		p.pos += n
		return r, nil
	}
	if p.pos+1 >= len(p.src) {
		return 0, p.errf("unexpected end after \\")
	}
	c := p.src[p.pos+1]
	p.pos += 2
	hex := 0
	switch c {
	case 'x':
		hex = 2
	case 'u':
		hex = 4
	case 'U':
		hex = 8
	case 't':
		return '\t', nil
	case 'r':
		return '\r', nil
	case 'n':
		return '\n', nil
	case '\\', '"', '[', ']', '-':
		return rune(c), nil
	default:
		p.pos -= 2
		return 0, p.errf("unknown escape at %q", p.rest())
	}
	if p.pos+hex > len(p.src) {
		return 0, p.errf("expecting %d hex digits", hex)
	}
	v, err := strconv.ParseUint(p.src[p.pos:p.pos+hex], 16, 32)
	if err != nil {
		return 0, p.errf("expecting %d hex digits at %q", hex, p.rest())
	}
	p.pos += hex
	if v > utf8.MaxRune {
		return 0, p.errf("code point %#x is out of range", v)
	}
	return rune(v), nil
}

// checkLeftRecursion refuses a rule that can reach itself without
// consuming a character: the automaton would expand it forever.
func (g *Grammar) checkLeftRecursion() error {
	n := len(g.alts)
	nullable := g.nullable()
	// Edges r → s when s can start r (after nullable elements).
	const (
		white = iota
		grey
		black
	)
	color := make([]uint8, n)
	var visit func(r int32) error
	visit = func(r int32) error {
		color[r] = grey
		for _, a := range g.alts[r] {
			for i := a; g.elems[i].kind != kEnd; i++ {
				e := &g.elems[i]
				if e.kind != kRef {
					break
				}
				switch color[e.rule] {
				case grey:
					return fmt.Errorf("%w: rule %q is left-recursive", ErrSyntax, g.names[e.rule])
				case white:
					if err := visit(e.rule); err != nil {
						return err
					}
				}
				if !nullable[e.rule] {
					break
				}
			}
		}
		color[r] = black
		return nil
	}
	for r := range n {
		if color[r] == white {
			if err := visit(int32(r)); err != nil {
				return err
			}
		}
	}
	return nil
}

// nullable computes which rules match the empty string, in time linear
// in the grammar: an alternative waits on the count of its references
// not yet known nullable (one with a character never is).
func (g *Grammar) nullable() []bool {
	type altRef struct{ rule, alt int32 }
	nullable := make([]bool, len(g.alts))
	waiting := map[altRef]int{}
	users := make([][]altRef, len(g.alts)) // rule → alternatives referencing it, once per reference
	var ready []int32
	for r, alts := range g.alts {
		for ai, a := range alts {
			k := altRef{int32(r), int32(ai)}
			n, hasChar := 0, false
			for i := a; g.elems[i].kind != kEnd; i++ {
				if g.elems[i].kind == kChar {
					hasChar = true
					break
				}
				n++
			}
			if hasChar {
				continue
			}
			if n == 0 {
				if !nullable[r] {
					nullable[r] = true
					ready = append(ready, int32(r))
				}
				continue
			}
			waiting[k] = n
			for i := a; g.elems[i].kind != kEnd; i++ {
				users[g.elems[i].rule] = append(users[g.elems[i].rule], k)
			}
		}
	}
	for len(ready) > 0 {
		r := ready[len(ready)-1]
		ready = ready[:len(ready)-1]
		for _, k := range users[r] {
			waiting[k]--
			if waiting[k] == 0 && !nullable[k.rule] {
				nullable[k.rule] = true
				ready = append(ready, k.rule)
			}
		}
	}
	return nullable
}

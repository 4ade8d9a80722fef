package tokenizer

import (
	"fmt"
	"sort"
)

// This file holds the BPE pre-tokenizers. llama.cpp splits text with a
// list of regular expressions per pre-tokenizer type; each expression
// splits every piece produced by the previous one into its matches and the
// unmatched gaps between them. Go's regexp has no lookahead and no
// possessive quantifiers, so each expression is reproduced here as a
// hand-written scanner over code points with the same semantics (see
// /tmp/rationale-tokenizer.md).

// span is a half-open range of code point indexes.
type span struct{ s, e int }

// ptext is the text being pre-tokenized: its code points and their flags.
type ptext struct {
	cpts  []rune
	flags []uint16
}

// flagAt returns the flags of code point i, or 0 outside [s, e).
func (t *ptext) flagAt(i, s, e int) uint16 {
	if i >= s && i < e {
		return t.flags[i]
	}
	return 0
}

// cptAt returns code point i, or -1 outside [s, e).
func (t *ptext) cptAt(i, s, e int) rune {
	if i >= s && i < e {
		return t.cpts[i]
	}
	return -1
}

// splitter splits the piece [s, e) and appends the sub-pieces to out; the
// sub-pieces cover the piece exactly and in order.
type splitter func(t *ptext, s, e int, out []span) []span

// runeRange is an inclusive code point range.
type runeRange struct{ lo, hi rune }

// runeClass is a sorted set of code point ranges (a regex bracket class).
type runeClass []runeRange

func newRuneClass(r []runeRange) runeClass {
	c := append(runeClass(nil), r...)
	sort.Slice(c, func(i, j int) bool { return c[i].lo < c[j].lo })
	return c
}

func (c runeClass) has(r rune) bool {
	i := sort.Search(len(c), func(i int) bool { return c[i].hi >= r })
	return i < len(c) && c[i].lo <= r
}

const (
	maskWLN = flagWhitespace | flagLetter | flagNumber
)

// splitGPT2 implements 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+|
// ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ exactly as llama.cpp's hand-written
// matcher for it does.
func splitGPT2(t *ptext, s, e int, out []span) []span {
	prev := s
	add := func(end int) {
		if end > prev {
			out = append(out, span{prev, end})
		}
		prev = end
	}
	for pos := s; pos < e; {
		c := t.cpts[pos]
		fl := t.flags[pos]
		if c == '\'' && pos+1 < e {
			n := t.cpts[pos+1]
			if n == 's' || n == 't' || n == 'm' || n == 'd' {
				pos += 2
				add(pos)
				continue
			}
			if pos+2 < e {
				nn := t.cpts[pos+2]
				if (n == 'r' && nn == 'e') || (n == 'v' && nn == 'e') || (n == 'l' && nn == 'l') {
					pos += 3
					add(pos)
					continue
				}
			}
		}
		f2 := fl
		if c == ' ' {
			f2 = t.flagAt(pos+1, s, e)
		}
		if f2&flagLetter != 0 {
			if c == ' ' {
				pos++
			}
			for t.flagAt(pos, s, e)&flagLetter != 0 {
				pos++
			}
			add(pos)
			continue
		}
		if f2&flagNumber != 0 {
			if c == ' ' {
				pos++
			}
			for t.flagAt(pos, s, e)&flagNumber != 0 {
				pos++
			}
			add(pos)
			continue
		}
		if f2&maskWLN == 0 && f2 != 0 {
			if c == ' ' {
				pos++
			}
			for f := t.flagAt(pos, s, e); f&maskWLN == 0 && f != 0; f = t.flagAt(pos, s, e) {
				pos++
			}
			add(pos)
			continue
		}
		n := 0
		for t.flagAt(pos+n, s, e)&flagWhitespace != 0 {
			n++
		}
		if n > 1 && pos+n < e {
			pos += n - 1
			add(pos)
			continue
		}
		if n > 0 {
			pos += n
			add(pos)
			continue
		}
		pos++
		add(pos)
	}
	return out
}

// splitLlama3 returns the splitter for
// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,maxDigits}|
// ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ — Llama 3 uses
// maxDigits 3, Qwen2 1.
func splitLlama3(maxDigits int) splitter {
	return func(t *ptext, s, e int, out []span) []span {
		prev := s
		add := func(end int) {
			if end > prev {
				out = append(out, span{prev, end})
			}
			prev = end
		}
		for pos := s; pos < e; {
			c := t.cpts[pos]
			fl := t.flags[pos]
			if c == '\'' && pos+1 < e {
				n := asciiLower(t.cpts[pos+1])
				if n == 's' || n == 't' || n == 'm' || n == 'd' {
					pos += 2
					add(pos)
					continue
				}
				if pos+2 < e {
					nn := asciiLower(t.cpts[pos+2])
					if (n == 'r' && nn == 'e') || (n == 'v' && nn == 'e') || (n == 'l' && nn == 'l') {
						pos += 3
						add(pos)
						continue
					}
				}
			}
			if !(c == '\r' || c == '\n' || fl&flagNumber != 0) {
				if fl&flagLetter != 0 || t.flagAt(pos+1, s, e)&flagLetter != 0 {
					pos++
					for t.flagAt(pos, s, e)&flagLetter != 0 {
						pos++
					}
					add(pos)
					continue
				}
			}
			if fl&flagNumber != 0 {
				ini := pos
				for t.flagAt(pos, s, e)&flagNumber != 0 {
					pos++
					if pos-ini >= maxDigits {
						add(pos)
						ini = pos
					}
				}
				add(pos)
				continue
			}
			f2 := fl
			if c == ' ' {
				f2 = t.flagAt(pos+1, s, e)
			}
			if f2&maskWLN == 0 && fl != 0 {
				if c == ' ' {
					pos++
				}
				for f := t.flagAt(pos, s, e); f&maskWLN == 0 && f != 0; f = t.flagAt(pos, s, e) {
					pos++
				}
				for c2 := t.cptAt(pos, s, e); c2 == '\r' || c2 == '\n'; c2 = t.cptAt(pos, s, e) {
					pos++
				}
				add(pos)
				continue
			}
			n, lastRN := 0, 0
			for t.flagAt(pos+n, s, e)&flagWhitespace != 0 {
				if c2 := t.cpts[pos+n]; c2 == '\r' || c2 == '\n' {
					lastRN = pos + n + 1
				}
				n++
			}
			if lastRN > 0 {
				pos = lastRN
				add(pos)
				continue
			}
			if n > 1 && pos+n < e {
				pos += n - 1
				add(pos)
				continue
			}
			if n > 0 {
				pos += n
				add(pos)
				continue
			}
			pos++
			add(pos)
		}
		return out
	}
}

func asciiLower(c rune) rune {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// matcher reports the end of a match starting at p inside [s, e), or -1.
type matcher func(t *ptext, p, s, e int) int

// splitSearch turns a matcher into a splitter with the semantics of
// llama.cpp's std::regex fallback: leftmost matches in order, each match
// one piece, each run of unmatched code points between them one piece.
func splitSearch(m matcher) splitter {
	return func(t *ptext, s, e int, out []span) []span {
		gap := s
		for p := s; p < e; {
			if end := m(t, p, s, e); end > p {
				if p > gap {
					out = append(out, span{gap, p})
				}
				out = append(out, span{p, end})
				p, gap = end, end
			} else {
				p++
			}
		}
		if gap < e {
			out = append(out, span{gap, e})
		}
		return out
	}
}

// isSpace is \s of std::regex on llama.cpp's substituted text: ASCII
// white space, and non-ASCII White_Space (replaced there by \v).
func isSpace(t *ptext, i int) bool { return t.flags[i]&flagWhitespace != 0 }

// inWClass reports whether code point i is in a literal bracket class of
// a std::wregex: non-ASCII white space was replaced by \v before matching.
func inWClass(t *ptext, i int, c runeClass) bool {
	r := t.cpts[i]
	if r > 0x7F && t.flags[i]&flagWhitespace != 0 {
		r = 0x0B
	}
	return c.has(r)
}

// runOf matches [X]+ for a predicate X.
func runOf(in func(t *ptext, i int) bool) matcher {
	return func(t *ptext, p, s, e int) int {
		if !in(t, p) {
			return -1
		}
		for p < e && in(t, p) {
			p++
		}
		return p
	}
}

// oneOf matches a single code point satisfying X.
func oneOf(in func(t *ptext, i int) bool) matcher {
	return func(t *ptext, p, s, e int) int {
		if in(t, p) {
			return p + 1
		}
		return -1
	}
}

// optSpaceRun matches \s?[X]+.
func optSpaceRun(in func(t *ptext, i int) bool) matcher {
	run := runOf(in)
	return func(t *ptext, p, s, e int) int {
		if isSpace(t, p) && p+1 < e && in(t, p+1) {
			return run(t, p+1, s, e)
		}
		return run(t, p, s, e)
	}
}

// splitTrailingSpace implements \s+$ (the trailing white space of a piece
// becomes its own piece).
func splitTrailingSpace(t *ptext, s, e int, out []span) []span {
	q := e
	for q > s && isSpace(t, q-1) {
		q--
	}
	if q > s {
		out = append(out, span{s, q})
	}
	if q < e {
		out = append(out, span{q, e})
	}
	return out
}

func flagIs(f uint16) func(t *ptext, i int) bool {
	return func(t *ptext, i int) bool { return t.flags[i]&f != 0 }
}

func isCRLF(t *ptext, i int) bool { return t.cpts[i] == '\r' || t.cpts[i] == '\n' }

func isASCIIDigit(t *ptext, i int) bool { return t.cpts[i] >= '0' && t.cpts[i] <= '9' }

// threeDigits matches [0-9][0-9][0-9].
func threeDigits(t *ptext, p, s, e int) int {
	if p+2 < e && isASCIIDigit(t, p) && isASCIIDigit(t, p+1) && isASCIIDigit(t, p+2) {
		return p + 3
	}
	return -1
}

// punctOr returns the class [\p{P}<extra>] of the collapsed std::regex.
func punctOr(extra string) func(t *ptext, i int) bool {
	return func(t *ptext, i int) bool {
		if t.flags[i]&flagPunct != 0 {
			return true
		}
		c := t.cpts[i]
		for _, x := range extra {
			if c == x {
				return true
			}
		}
		return false
	}
}

// deepseekLetters is the letter class of the deepseek-llm pre-tokenizer
// (cased letters of Unicode, as listed in llama.cpp's regex).
var deepseekLetterRanges = []runeRange{
	{0x0041, 0x005A}, {0x0061, 0x007A}, {0x00B5, 0x00B5}, {0x00C0, 0x00D6}, {0x00D8, 0x00F6},
	{0x00F8, 0x01BA}, {0x01BC, 0x01BF}, {0x01C4, 0x0293}, {0x0295, 0x02AF}, {0x0370, 0x0373},
	{0x0376, 0x0377}, {0x037B, 0x037D}, {0x037F, 0x037F}, {0x0386, 0x0386}, {0x0388, 0x038A},
	{0x038C, 0x038C}, {0x038E, 0x03A1}, {0x03A3, 0x03F5}, {0x03F7, 0x0481}, {0x048A, 0x052F},
	{0x0531, 0x0556}, {0x10A0, 0x10C5}, {0x13A0, 0x13F5}, {0x13F8, 0x13FD}, {0x1C90, 0x1CBA},
	{0x1CBD, 0x1CBF}, {0x1D00, 0x1D2B}, {0x1D6B, 0x1D77}, {0x1D79, 0x1D9A}, {0x1E00, 0x1F15},
	{0x1F18, 0x1F1D}, {0x1F20, 0x1F45}, {0x1F48, 0x1F4D}, {0x1F50, 0x1F57}, {0x1F59, 0x1F59},
	{0x1F5B, 0x1F5B}, {0x1F5D, 0x1F5D}, {0x1F5F, 0x1F7D}, {0x1F80, 0x1FB4}, {0x1FB6, 0x1FBC},
	{0x1FBE, 0x1FBE}, {0x1FC2, 0x1FC4}, {0x1FC6, 0x1FCC}, {0x1FD0, 0x1FD3}, {0x1FD6, 0x1FDB},
	{0x1FE0, 0x1FEC}, {0x1FF2, 0x1FF4}, {0x1FF6, 0x1FFC}, {0x2102, 0x2102}, {0x2107, 0x2107},
	{0x210A, 0x2113}, {0x2115, 0x2115}, {0x2119, 0x211D}, {0x2124, 0x2124}, {0x2126, 0x2126},
	{0x2128, 0x2128}, {0x212A, 0x212D}, {0x212F, 0x2134}, {0x2139, 0x2139}, {0x213C, 0x213F},
	{0x2145, 0x2149}, {0x214E, 0x214E}, {0x2183, 0x2184}, {0x2C00, 0x2C7B}, {0x2C7E, 0x2CE4},
	{0x2CEB, 0x2CEE}, {0x2CF2, 0x2CF3}, {0xA640, 0xA66D}, {0xA680, 0xA69B}, {0xA722, 0xA76F},
	{0xA771, 0xA787}, {0xA78B, 0xA78E}, {0xAB70, 0xABBF}, {0xFB00, 0xFB06}, {0xFB13, 0xFB17},
	{0xFF21, 0xFF3A}, {0xFF41, 0xFF5A}, {0x10400, 0x1044F}, {0x104B0, 0x104D3}, {0x104D8, 0x104FB},
	{0x10C80, 0x10CB2}, {0x10CC0, 0x10CF2}, {0x118A0, 0x118DF}, {0x1E900, 0x1E943},
}

// deepseekPunctRanges is [!-/:-~！-／：-～‘-‟　-。].
var deepseekPunctRanges = []runeRange{
	{0x0021, 0x002F}, {0x003A, 0x007E}, {0xFF01, 0xFF0F}, {0xFF1A, 0xFF5E}, {0x2018, 0x201F}, {0x3000, 0x3002},
}

// cjkRanges is [一-龥ࠀ-一가-퟿].
var cjkRanges = []runeRange{{0x4E00, 0x9FA5}, {0x0800, 0x4E00}, {0xAC00, 0xD7FF}}

// preTokenizer is the ordered list of splitters of one pre-tokenizer type.
type preTokenizer struct {
	name   string
	stages []splitter
}

// bpeSettings are the per-pre-type flags llama.cpp sets next to the regexes.
type bpeSettings struct {
	ignoreMerges bool // whole word looked up before merging (Llama 3)
	cleanSpaces  bool // clean_up_tokenization_spaces on detokenize
	addBOS       bool // default add_bos_token
	noBOS        bool // BOS id cleared (chatglm)
}

// newPreTokenizer returns the pre-tokenizer and settings for a
// tokenizer.ggml.pre value, or an error for an unsupported one.
func newPreTokenizer(pre string) (*preTokenizer, bpeSettings, error) {
	cls := func(r []runeRange) func(t *ptext, i int) bool {
		c := newRuneClass(r)
		return func(t *ptext, i int) bool { return inWClass(t, i, c) }
	}
	gpt2 := splitter(splitGPT2)
	set := bpeSettings{cleanSpaces: true}
	var st []splitter
	switch pre {
	case "", "default":
		st = []splitter{
			splitSearch(runOf(punctOr("$+<=>^~|"))),
			gpt2,
			splitSearch(runOf(flagIs(flagNumber))),
			splitSearch(threeDigits),
		}
	case "llama3", "llama-v3", "llama-bpe", "falcon3", "pixtral", "dbrx", "smaug-bpe":
		st = []splitter{splitLlama3(3)}
		switch pre {
		case "dbrx", "smaug-bpe":
		default:
			set.ignoreMerges = true
			set.addBOS = true
		}
	case "chatglm-bpe", "glm4":
		st = []splitter{splitLlama3(3)}
		set.noBOS = true
	case "qwen2", "deepseek-r1-qwen", "megrez", "stablelm2", "hunyuan":
		st = []splitter{splitLlama3(1)}
		if pre != "megrez" && pre != "stablelm2" {
			set.cleanSpaces = false
		}
	case "deepseek-llm":
		st = []splitter{
			splitSearch(oneOf(isCRLF)),
			splitSearch(optSpaceRun(cls(deepseekLetterRanges))),
			splitSearch(optSpaceRun(cls(deepseekPunctRanges))),
			splitTrailingSpace,
			splitSearch(runOf(cls(cjkRanges))),
			splitSearch(runOf(flagIs(flagNumber))),
		}
		set.cleanSpaces = false
	case "deepseek-coder":
		st = []splitter{
			splitSearch(oneOf(isCRLF)),
			splitSearch(optSpaceRun(flagIs(flagLetter))),
			splitSearch(optSpaceRun(flagIs(flagPunct))),
			splitSearch(runOf(cls(cjkRanges))),
			splitSearch(oneOf(flagIs(flagNumber))),
		}
		set.cleanSpaces = false
	case "falcon":
		st = []splitter{
			splitSearch(runOf(punctOr("$+<=>^~|`"))),
			gpt2,
			splitSearch(threeDigits),
		}
	case "starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b":
		st = []splitter{splitSearch(oneOf(flagIs(flagNumber))), gpt2}
		if pre == "command-r" || pre == "smollm" {
			set.cleanSpaces = false
		}
	case "gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de",
		"jina-v1-en", "jina-v2-code", "roberta-bpe", "mpt", "olmo", "jais", "exaone4", "a.x-4.0", "mellum":
		st = []splitter{gpt2}
	default:
		return nil, set, fmt.Errorf("tokenizer: unsupported pre-tokenizer %q", pre)
	}
	return &preTokenizer{name: pre, stages: st}, set, nil
}

// split runs all stages over the text and returns the final pieces.
func (p *preTokenizer) split(t *ptext) []span {
	cur := []span{{0, len(t.cpts)}}
	if len(t.cpts) == 0 {
		return nil
	}
	var next []span
	for _, st := range p.stages {
		next = next[:0]
		for _, sp := range cur {
			next = st(t, sp.s, sp.e, next)
		}
		cur, next = next, cur
	}
	return cur
}

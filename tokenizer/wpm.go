package tokenizer

import (
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// nfdFirst returns the first code point of the NFD decomposition of c,
// the single-code-point approximation llama.cpp uses to strip accents.
func nfdFirst(c rune) rune {
	if c < 0xC0 {
		return c
	}
	var buf [4]byte
	var in []byte = appendCpt(buf[:0], c)
	if norm.NFD.IsNormal(in) {
		return c
	}
	d := norm.NFD.Bytes(in)
	r, _ := decodeCpt(string(d), 0)
	return r
}

// isChineseChar matches BERT's CJK ranges (with the HF quirk 0x2B920).
func isChineseChar(c rune) bool {
	return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
		(c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
		(c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
		(c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F)
}

// wpmWords is BERT's basic tokenizer: normalize, split on white space,
// punctuation and CJK characters.
func (t *Tokenizer) wpmWords(s string) []string {
	var words []string
	var cur []byte
	flush := func() {
		if len(cur) > 0 {
			words = append(words, string(cur))
			cur = cur[:0]
		}
	}
	for i := 0; i < len(s); {
		c, n := decodeCpt(s, i)
		i += n
		if t.v.StripAccents {
			c = nfdFirst(c)
		}
		f := cptFlags(c)
		if f&flagWhitespace != 0 {
			flush()
			continue
		}
		if c == 0 || c == 0xFFFD || f&flagControl != 0 {
			continue
		}
		if t.v.StripAccents && f&flagMark != 0 {
			continue
		}
		if t.v.Lowercase {
			c = unicode.ToLower(c)
		}
		if f&flagPunct != 0 || (c < 0x7F && f&flagSymbol != 0) || isChineseChar(c) {
			flush()
			words = append(words, string(appendCpt(nil, c)))
			continue
		}
		cur = appendCpt(cur, c)
	}
	flush()
	return words
}

// encodeWPM is WordPiece: each word, prefixed with U+2581 (how llama.cpp's
// converter marks word starts), is covered greedily by the longest tokens;
// a word that cannot be covered becomes UNK.
func (t *Tokenizer) encodeWPM(s string, out []int32) []int32 {
	for _, w := range t.wpmWords(s) {
		w1 := "\u2581" + w
		n := len(w1)
		n0 := len(out)
		for i := 0; i < n; i++ {
			match := false
			for j := min(n, i+t.maxToken+1); j > i; j-- {
				if id, ok := t.toID[w1[i:j]]; ok {
					out = append(out, id)
					match = true
					i = j - 1
					break
				}
			}
			if !match {
				out = out[:n0]
				break
			}
		}
		if len(out) == n0 && t.v.UNK != NoToken {
			out = append(out, t.v.UNK)
		}
	}
	return out
}

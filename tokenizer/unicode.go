package tokenizer

import "unicode"

// Code point classification used by the pre-tokenizers. The categories
// follow llama.cpp's unicode tables (generated from Python's `regex`
// module): every assigned or unassigned code point has exactly one of the
// general-category classes below, and White_Space is a separate flag.
const (
	flagNumber     uint16 = 1 << iota // \p{N}
	flagLetter                        // \p{L}
	flagSeparator                     // \p{Z}
	flagMark                          // \p{M}
	flagPunct                         // \p{P}
	flagSymbol                        // \p{S}
	flagControl                       // \p{C} (including unassigned)
	flagWhitespace                    // \s (Unicode White_Space)
)

// asciiFlags returns the flags of an ASCII code point without table lookups.
func asciiFlags(c rune) uint16 {
	switch {
	case c == ' ':
		return flagSeparator | flagWhitespace
	case c >= '\t' && c <= '\r':
		return flagControl | flagWhitespace
	case c < 0x20 || c == 0x7f:
		return flagControl
	case c >= '0' && c <= '9':
		return flagNumber
	case (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'):
		return flagLetter
	case c == '$' || c == '+' || c == '<' || c == '=' || c == '>' || c == '^' || c == '`' || c == '|' || c == '~':
		return flagSymbol
	default:
		return flagPunct
	}
}

// cptFlags classifies one code point.
func cptFlags(c rune) uint16 {
	if c < 0x80 {
		return asciiFlags(c)
	}
	var f uint16
	switch {
	case unicode.IsLetter(c):
		f = flagLetter
	case unicode.IsNumber(c):
		f = flagNumber
	case unicode.IsMark(c):
		f = flagMark
	case unicode.IsPunct(c):
		f = flagPunct
	case unicode.IsSymbol(c):
		f = flagSymbol
	case unicode.In(c, unicode.Zs, unicode.Zl, unicode.Zp):
		f = flagSeparator
	default:
		f = flagControl
	}
	if unicode.Is(unicode.White_Space, c) {
		f |= flagWhitespace
	}
	return f
}

// decodeCpt decodes one code point from s the way llama.cpp does: it
// checks only the lead byte's length class and that continuation bytes
// are 10xxxxxx (so surrogates and overlong forms are accepted); anything
// else yields U+FFFD and consumes one byte. Code points above U+10FFFF are
// rejected too (llama.cpp would fail on them later).
func decodeCpt(s string, i int) (rune, int) {
	b0 := s[i]
	switch {
	case b0 < 0x80:
		return rune(b0), 1
	case b0&0x40 == 0:
		return 0xFFFD, 1
	case b0&0x20 == 0:
		if i+1 >= len(s) || s[i+1]&0xC0 != 0x80 {
			return 0xFFFD, 1
		}
		return rune(b0&0x1F)<<6 | rune(s[i+1]&0x3F), 2
	case b0&0x10 == 0:
		if i+2 >= len(s) || s[i+1]&0xC0 != 0x80 || s[i+2]&0xC0 != 0x80 {
			return 0xFFFD, 1
		}
		return rune(b0&0x0F)<<12 | rune(s[i+1]&0x3F)<<6 | rune(s[i+2]&0x3F), 3
	case b0&0x08 == 0:
		if i+3 >= len(s) || s[i+1]&0xC0 != 0x80 || s[i+2]&0xC0 != 0x80 || s[i+3]&0xC0 != 0x80 {
			return 0xFFFD, 1
		}
		c := rune(b0&0x07)<<18 | rune(s[i+1]&0x3F)<<12 | rune(s[i+2]&0x3F)<<6 | rune(s[i+3]&0x3F)
		if c > 0x10FFFF {
			return 0xFFFD, 1
		}
		return c, 4
	}
	return 0xFFFD, 1
}

// appendCpt appends the UTF-8 encoding of c without validating surrogates
// (mirrors decodeCpt so that valid-looking input round-trips byte-exactly).
func appendCpt(b []byte, c rune) []byte {
	switch {
	case c < 0x80:
		return append(b, byte(c))
	case c < 0x800:
		return append(b, 0xC0|byte(c>>6), 0x80|byte(c&0x3F))
	case c < 0x10000:
		return append(b, 0xE0|byte(c>>12), 0x80|byte(c>>6&0x3F), 0x80|byte(c&0x3F))
	default:
		return append(b, 0xF0|byte(c>>18), 0x80|byte(c>>12&0x3F), 0x80|byte(c>>6&0x3F), 0x80|byte(c&0x3F))
	}
}

// utf8Len returns the length of a UTF-8 sequence from its lead byte by its
// high nibble only, like llama.cpp's unicode_len_utf8.
func utf8Len(b byte) int {
	switch b >> 4 {
	case 0xC, 0xD:
		return 2
	case 0xE:
		return 3
	case 0xF:
		return 4
	}
	return 1
}

// byteEncoder maps bytes to the printable code points of GPT-2's
// bytes_to_unicode table and back.
type byteEncoder struct {
	enc [256]string
	dec map[rune]byte
}

func newByteEncoder() *byteEncoder {
	e := &byteEncoder{dec: make(map[rune]byte, 256)}
	n := 0
	for b := 0; b < 256; b++ {
		var c rune
		if (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			c = rune(b)
		} else {
			c = rune(256 + n)
			n++
		}
		e.enc[b] = string(c)
		e.dec[c] = byte(b)
	}
	return e
}

package tokenizer

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// buildPieces precomputes llama.cpp's token_to_piece(special=true) for
// every token.
func (t *Tokenizer) buildPieces() {
	t.pieces = make([]string, len(t.v.Tokens))
	for i, txt := range t.v.Tokens {
		a := t.attrs[i]
		var p string
		switch {
		case a&(attrUnknown|attrControl|attrUserDefined) != 0:
			p = txt
		case a&attrNormal != 0:
			if t.v.Model == ModelBPE {
				p = t.decodeByteLevel(txt)
			} else {
				p = strings.ReplaceAll(txt, "\u2581", " ")
			}
		case a&attrByte != 0:
			if len(txt) >= 5 {
				if v, err := strconv.ParseUint(txt[3:5], 16, 8); err == nil {
					p = string([]byte{byte(v)})
				}
			}
		}
		t.pieces[i] = p
	}
}

// decodeByteLevel reverses GPT-2's byte-to-unicode mapping. Characters
// outside the mapping are rendered like llama.cpp does
// ("[UNK_BYTE_0x..." + text + "]").
func (t *Tokenizer) decodeByteLevel(txt string) string {
	out := make([]byte, 0, len(txt))
	for i := 0; i < len(txt); {
		c, n := decodeCpt(txt, i)
		if b, ok := t.benc.dec[c]; ok {
			out = append(out, b)
		} else {
			out = append(out, "[UNK_BYTE_0x"...)
			for _, x := range []byte(txt[i : i+n]) {
				out = append(out, "0123456789abcdef"[x>>4], "0123456789abcdef"[x&15])
			}
			out = append(out, txt...)
			out = append(out, ']')
		}
		i += n
	}
	return string(out)
}

// Piece returns the bytes token id contributes to output text, like
// llama.cpp's token_to_piece with special=false: SentencePiece "▁" becomes
// a space, <0xXX> tokens their byte, byte-level BPE tokens are mapped back
// to bytes, and CONTROL and UNKNOWN tokens are empty. Out-of-range ids
// give nil. The result may be an incomplete UTF-8 sequence.
func (t *Tokenizer) Piece(id int32) []byte {
	if id < 0 || int(id) >= len(t.pieces) || t.attrs[id]&(attrUnknown|attrControl) != 0 {
		return nil
	}
	return []byte(t.pieces[id])
}

// PieceSpecial is Piece with llama.cpp's special=true: CONTROL and
// UNKNOWN tokens render as their text (e.g. "<s>"), as llama-tokenize
// prints them.
func (t *Tokenizer) PieceSpecial(id int32) []byte {
	if id < 0 || int(id) >= len(t.pieces) {
		return nil
	}
	return []byte(t.pieces[id])
}

// piece is Piece without the copy.
func (t *Tokenizer) piece(id int32) string {
	if id < 0 || int(id) >= len(t.pieces) || t.attrs[id]&(attrUnknown|attrControl) != 0 {
		return ""
	}
	return t.pieces[id]
}

// Decode concatenates the pieces of ids like llama.cpp's llama_detokenize
// with remove_special=false and unparse_special=false: CONTROL tokens
// render as nothing, when the vocabulary adds a space prefix one leading
// space of the first token's piece is dropped, and for vocabularies with
// clean_up_tokenization_spaces (GPT-2 style BPE, WordPiece) spaces before
// ?!., and some apostrophes are removed. Out-of-range ids are skipped.
// The result is raw bytes and may be invalid UTF-8.
func (t *Tokenizer) Decode(ids []int32) string {
	var b []byte
	removeSpace := t.v.AddSpacePrefix
	for _, id := range ids {
		p := t.piece(id)
		if removeSpace && len(p) > 0 && p[0] == ' ' {
			p = p[1:]
		}
		removeSpace = false
		b = append(b, p...)
	}
	if t.cleanSpaces() {
		b = cleanSpaces(b)
	}
	return string(b)
}

func (t *Tokenizer) cleanSpaces() bool {
	switch t.v.Model {
	case ModelBPE:
		return t.set.cleanSpaces
	case ModelWPM:
		return true
	}
	return false
}

// cleanSpaces is llama.cpp's clean_up_tokenization_spaces, three in-place
// passes over the bytes.
func cleanSpaces(text []byte) []byte {
	// pass 1: " ?", " !", " .", " ," lose the space
	total1 := len(text)
	total := 0
	if total1 > 0 {
		total = 1
	}
	for i := 1; i < total1; i++ {
		x := text[i]
		if text[i-1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',') {
			total--
		}
		text[total] = x
		total++
	}
	// pass 2: " ' " becomes "'"
	total2 := total
	if total2 > 0 {
		total = 1
	}
	for i := 1; i < total2; i++ {
		x := text[i]
		if x == '\'' && i+1 < total2 && text[i-1] == ' ' && text[i+1] == ' ' {
			total--
			i++
			text[i] = 0
		}
		text[total] = x
		total++
	}
	// pass 3: " 's", " 'm", " 're", " 've" lose the space
	total3 := total
	if total3 > 0 {
		total = 1
	}
	for i := 1; i < total3; i++ {
		x := text[i]
		if text[i-1] == ' ' && x == '\'' && i+1 < total3 {
			x1 := text[i+1]
			if x1 == 's' || x1 == 'm' {
				total--
			} else if x1 != 't' && x1 != 'd' && i+2 < total3 {
				x2 := text[i+2]
				if (x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e') {
					total--
				}
			}
		}
		text[total] = x
		total++
	}
	return text[:total]
}

// Streamer turns a stream of token ids into text that is always valid
// UTF-8: it holds back a trailing incomplete UTF-8 sequence (byte-fallback
// and byte-level tokens can split a character across tokens) until the
// next token completes it. Bytes that cannot start or continue a valid
// sequence are replaced by U+FFFD, one per byte. Pieces are concatenated
// as Piece returns them (no leading-space removal, no space cleaning).
type Streamer struct {
	tok *Tokenizer
	buf []byte
}

// NewStreamer returns a streamer decoding tokens of tok.
func NewStreamer(tok *Tokenizer) *Streamer { return &Streamer{tok: tok} }

// Add appends the piece of id and returns the text that is now complete.
func (s *Streamer) Add(id int32) []byte {
	s.buf = append(s.buf, s.tok.piece(id)...)
	return s.drain(false)
}

// Flush returns whatever is held back, with an incomplete trailing
// sequence replaced by U+FFFD, and resets the streamer.
func (s *Streamer) Flush() []byte {
	return s.drain(true)
}

func (s *Streamer) drain(final bool) []byte {
	var out []byte
	i := 0
	for i < len(s.buf) {
		if !final && !utf8.FullRune(s.buf[i:]) {
			break
		}
		r, n := utf8.DecodeRune(s.buf[i:])
		if r == utf8.RuneError && n <= 1 {
			out = utf8.AppendRune(out, utf8.RuneError)
			i++
			continue
		}
		out = append(out, s.buf[i:i+n]...)
		i += n
	}
	s.buf = append(s.buf[:0], s.buf[i:]...)
	return out
}

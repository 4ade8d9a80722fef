package tokenizer

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// containsSpecial reports whether s contains the text of a special token
// (those are split out even without parseSpecial when user-defined, and
// SentencePiece then re-adds a space prefix, so no round trip).
func containsSpecial(tk *Tokenizer, s string) bool {
	for _, id := range tk.special {
		if strings.Contains(s, tk.v.Tokens[id]) {
			return true
		}
	}
	return false
}

// FuzzEncode checks that Encode never fails or panics on arbitrary bytes,
// that ids are in range and streamed text is valid UTF-8, and that
// Decode(Encode(s)) == s for valid UTF-8 on the vocabularies where
// llama.cpp round-trips: SentencePiece (llama-spm; text without U+2581,
// which decodes to a space) and byte-level BPE without
// clean_up_tokenization_spaces (qwen2, deepseek-coder).
func FuzzEncode(f *testing.F) {
	type fz struct {
		name      string
		roundTrip bool
	}
	var tks []*Tokenizer
	var spec []fz
	for _, c := range []fz{{"llama-spm", true}, {"qwen2", true}, {"deepseek-coder", true}, {"llama-bpe", false},
		{"gpt-2", false}, {"deepseek-llm", false}, {"falcon", false}, {"bert-bge", false}, {"phi-3", false}} {
		tks = append(tks, loadVocab(f, c.name))
		spec = append(spec, c)
	}
	for _, c := range loadVectors(f, "llama-spm") {
		f.Add(c.text, false)
	}
	for _, s := range []string{"\xff\xfe", "a\xe4\xb8", "\xed\xa0\x80", "\xf7\xbf\xbf\xbf", "<s>x</s>", "<|im_start|>user\n<|im_end|>",
		"  \r\n\t\v\f\u00a0\u3000 x", "'S'T'Re'vE", "１２３4567", "\u2581\u2581 a"} {
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, s string, special bool) {
		for i, tk := range tks {
			ids, err := tk.Encode(s, false, special)
			if err != nil {
				t.Fatalf("%s: Encode(%q): %v", spec[i].name, s, err)
			}
			st := NewStreamer(tk)
			var streamed []byte
			for _, id := range ids {
				if id < 0 || int(id) >= tk.NVocab() {
					t.Fatalf("%s: id %d out of range", spec[i].name, id)
				}
				streamed = append(streamed, st.Add(id)...)
			}
			streamed = append(streamed, st.Flush()...)
			if !utf8.Valid(streamed) {
				t.Fatalf("%s: streamed text is not valid UTF-8: %q", spec[i].name, streamed)
			}
			dec := tk.Decode(ids)
			if !spec[i].roundTrip || special || !utf8.ValidString(s) || containsSpecial(tk, s) {
				continue
			}
			if tk.Model() == ModelSPM && strings.Contains(s, "\u2581") {
				continue
			}
			if dec != s {
				t.Fatalf("%s: Decode(Encode(%q)) = %q (ids %v)", spec[i].name, s, dec, ids)
			}
		}
	})
}

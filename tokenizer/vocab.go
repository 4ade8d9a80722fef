// Package tokenizer implements llama.cpp-compatible host-side tokenizers
// for GGUF models: SentencePiece-style BPE ("llama"), GPT-2 style
// byte-level BPE with llama.cpp's pre-tokenizers ("gpt2") and WordPiece
// ("bert").
//
// The core works on a plain Vocab; FromGGUF fills one from GGUF metadata.
// Encode reproduces llama_tokenize, Piece llama_token_to_piece and Decode
// llama_detokenize (remove_special=false, unparse_special=false).
package tokenizer

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// TokenType is a tokenizer.ggml.token_type value.
type TokenType int32

// Token types as stored in GGUF files.
const (
	TypeUndefined   TokenType = 0
	TypeNormal      TokenType = 1
	TypeUnknown     TokenType = 2
	TypeControl     TokenType = 3
	TypeUserDefined TokenType = 4
	TypeUnused      TokenType = 5
	TypeByte        TokenType = 6
)

// Model is the tokenizer algorithm of a vocabulary.
type Model int

// Supported tokenizer models.
const (
	ModelSPM Model = iota + 1 // tokenizer.ggml.model "llama"
	ModelBPE                  // "gpt2"
	ModelWPM                  // "bert"
)

// String returns the GGUF name of the model.
func (m Model) String() string {
	switch m {
	case ModelSPM:
		return "llama"
	case ModelBPE:
		return "gpt2"
	case ModelWPM:
		return "bert"
	}
	return fmt.Sprintf("model(%d)", int(m))
}

// NoToken marks an absent special token id.
const NoToken int32 = -1

// Vocab is everything a tokenizer needs, independent of the file format.
// Special ids are NoToken when absent. Use DefaultVocab for the defaults
// llama.cpp applies per model before reading metadata.
type Vocab struct {
	Model  Model
	Pre    string      // tokenizer.ggml.pre (BPE pre-tokenizer); "" = default
	Name   string      // general.name (llama.cpp keys a few fixes on it)
	Tokens []string    // token texts, id = index
	Scores []float32   // optional, len(Tokens)
	Types  []TokenType // optional, len(Tokens); nil = all normal
	Merges []string    // BPE merges "left right", rank = index

	BOS, EOS, UNK, PAD, SEP, EOT, EOM int32
	FIMPad, FIMRep, FIMSep            int32

	AddBOS, AddEOS, AddSEP bool
	AddSpacePrefix         bool // SPM: prepend a space to the text
	Lowercase              bool // WPM normalizer
	StripAccents           bool // WPM normalizer
}

// DefaultVocab returns a Vocab with llama.cpp's defaults for a model and
// pre-tokenizer (special ids, add_bos/add_eos, add_space_prefix) and no
// tokens. Metadata then overrides these fields.
func DefaultVocab(m Model, pre string) Vocab {
	v := Vocab{Model: m, Pre: pre,
		BOS: NoToken, EOS: NoToken, UNK: NoToken, PAD: NoToken, SEP: NoToken,
		EOT: NoToken, EOM: NoToken, FIMPad: NoToken, FIMRep: NoToken, FIMSep: NoToken}
	switch m {
	case ModelSPM:
		v.BOS, v.EOS, v.UNK = 1, 2, 0
		v.AddBOS, v.AddSpacePrefix = true, true
	case ModelWPM:
		v.BOS, v.UNK, v.SEP, v.PAD = 101, 100, 102, 0
		v.AddBOS, v.AddSEP = true, true
		v.Lowercase, v.StripAccents = true, true
	case ModelBPE:
		v.BOS, v.EOS = 11, 11
		if _, set, err := newPreTokenizer(pre); err == nil {
			v.AddBOS = set.addBOS
			if set.noBOS {
				v.BOS = NoToken
			}
		}
	}
	return v
}

// token attributes (llama.cpp's llama_token_attr bits).
const (
	attrUnknown     uint16 = 1 << 0
	attrUnused      uint16 = 1 << 1
	attrNormal      uint16 = 1 << 2
	attrControl     uint16 = 1 << 3
	attrUserDefined uint16 = 1 << 4
	attrByte        uint16 = 1 << 5
	attrLStrip      uint16 = 1 << 7
	attrRStrip      uint16 = 1 << 8
)

func typeAttr(t TokenType) uint16 {
	switch t {
	case TypeUnknown:
		return attrUnknown
	case TypeUnused:
		return attrUnused
	case TypeNormal:
		return attrNormal
	case TypeControl:
		return attrControl
	case TypeUserDefined:
		return attrUserDefined
	case TypeByte:
		return attrByte
	}
	return 0
}

// Tokenizer encodes text to token ids and back. It is immutable after
// construction and safe for concurrent use.
type Tokenizer struct {
	v       Vocab
	attrs   []uint16
	toID    map[string]int32
	special []int32 // CONTROL/USER_DEFINED/UNKNOWN tokens, longest first
	trie    specialTrie
	eog     map[int32]bool
	pieces  []string // piece of every token with special=true

	// SPM
	byteTok  [256]int32
	spmSplit bool // no token has U+2581 after another character

	// BPE
	pre      *preTokenizer
	set      bpeSettings
	byteSym  [256]int32        // token of each byte's GPT-2 character
	mergeIDs map[uint64]uint64 // left<<32|right token ids -> rank<<32|result id
	ranks    map[string]int32  // "left right" -> rank, merges of non-tokens
	benc     *byteEncoder
	maxToken int
}

var errEmptyVocab = errors.New("tokenizer: empty vocabulary")

// New builds a tokenizer from a vocabulary; the vocabulary's slices are
// copied and all lookup tables are built here, once.
func New(v Vocab) (*Tokenizer, error) {
	n := len(v.Tokens)
	if n == 0 {
		return nil, errEmptyVocab
	}
	if n > 1<<31-1 {
		return nil, fmt.Errorf("tokenizer: %d tokens is too many", n)
	}
	if v.Scores != nil && len(v.Scores) < n {
		return nil, fmt.Errorf("tokenizer: %d scores for %d tokens", len(v.Scores), n)
	}
	if v.Types != nil && len(v.Types) < n {
		return nil, fmt.Errorf("tokenizer: %d token types for %d tokens", len(v.Types), n)
	}
	t := &Tokenizer{v: v, attrs: make([]uint16, n), toID: make(map[string]int32, n), eog: map[int32]bool{}}
	t.v.Tokens = make([]string, n)
	t.v.Scores = append([]float32(nil), v.Scores...)
	t.v.Types = append([]TokenType(nil), v.Types...)
	t.v.Merges = nil // only the rank map is kept
	if len(v.Scores) == 0 {
		t.v.Scores = nil
	}
	for i, s := range v.Tokens {
		if s == "" {
			s = fmt.Sprintf("[EMPTY_%d]", i)
		}
		if j, dup := t.toID[s]; dup {
			return nil, fmt.Errorf("tokenizer: duplicate token %q has ids %d and %d", s, j, i)
		}
		t.toID[s] = int32(i)
		t.v.Tokens[i] = s
		if len(s) > t.maxToken {
			t.maxToken = len(s)
		}
		a := attrNormal
		if v.Types != nil {
			a = typeAttr(v.Types[i])
		}
		t.attrs[i] = a
	}
	for _, id := range []struct {
		name string
		p    *int32
	}{{"bos", &t.v.BOS}, {"eos", &t.v.EOS}, {"unk", &t.v.UNK}, {"pad", &t.v.PAD}, {"sep", &t.v.SEP},
		{"eot", &t.v.EOT}, {"eom", &t.v.EOM}, {"fim_pad", &t.v.FIMPad}, {"fim_rep", &t.v.FIMRep}, {"fim_sep", &t.v.FIMSep}} {
		if *id.p < NoToken || *id.p >= int32(n) {
			return nil, fmt.Errorf("tokenizer: %s token id %d out of range [0,%d)", id.name, *id.p, n)
		}
	}
	switch v.Model {
	case ModelSPM:
		for b := 0; b < 256; b++ {
			t.byteTok[b] = t.lookupByteToken(byte(b))
		}
		t.spmSplit = true
		for _, s := range t.v.Tokens {
			for k := 1; k < len(s) && t.spmSplit; k++ {
				if strings.HasPrefix(s[k:], "\u2581") && (k < 3 || s[k-3:k] != "\u2581") {
					t.spmSplit = false
				}
			}
		}
	case ModelBPE:
		pre, set, err := newPreTokenizer(v.Pre)
		if err != nil {
			return nil, err
		}
		t.pre, t.set = pre, set
		t.benc = newByteEncoder()
		for b := 0; b < 256; b++ {
			t.byteSym[b] = NoToken
			if id, ok := t.toID[t.benc.enc[b]]; ok {
				t.byteSym[b] = id
			}
		}
		t.mergeIDs = make(map[uint64]uint64, len(v.Merges))
		t.ranks = make(map[string]int32)
		for i, m := range v.Merges {
			if len(m) < 2 {
				continue
			}
			k := strings.IndexByte(m[1:], ' ')
			if k < 0 {
				// llama.cpp stores such a merge as an ("", "") pair, which
				// never matches.
				continue
			}
			first, second := m[:k+1], m[k+2:]
			l, okl := t.toID[first]
			r, okr := t.toID[second]
			if !okl || !okr {
				if _, dup := t.ranks[m]; !dup {
					t.ranks[m] = int32(i)
				}
				continue
			}
			key := uint64(uint32(l))<<32 | uint64(uint32(r))
			if _, dup := t.mergeIDs[key]; dup {
				continue
			}
			res := NoToken
			if id, ok := t.toID[first+second]; ok {
				res = id
			}
			t.mergeIDs[key] = uint64(uint32(i))<<32 | uint64(uint32(res))
		}
	case ModelWPM:
	default:
		return nil, fmt.Errorf("tokenizer: unsupported model %v", v.Model)
	}
	if t.v.AddBOS && t.v.BOS == NoToken {
		return nil, errors.New("tokenizer: add_bos_token is true, but bos_token_id is not set")
	}
	if t.v.AddEOS && t.v.EOS == NoToken {
		return nil, errors.New("tokenizer: add_eos_token is true, but eos_token_id is not set")
	}
	if t.v.AddSEP && t.v.SEP == NoToken {
		return nil, errors.New("tokenizer: add_sep_token is true, but seperator_token_id is not set")
	}
	t.detectSpecial()
	t.buildSpecialCache()
	t.buildPieces()
	return t, nil
}

// lookupByteToken finds the SPM byte-fallback token of b: <0xXX>, else the
// byte itself as a token, else NoToken.
func (t *Tokenizer) lookupByteToken(b byte) int32 {
	if id, ok := t.toID[fmt.Sprintf("<0x%02X>", b)]; ok {
		return id
	}
	if id, ok := t.toID[string([]byte{b})]; ok {
		return id
	}
	return NoToken
}

// detectSpecial applies llama.cpp's text-based detection of EOT/EOM/FIM
// tokens, "unused" control tokens and the end-of-generation set.
func (t *Tokenizer) detectSpecial() {
	// llama.cpp iterates an unordered map here, so which candidate wins a
	// first-match detection is unspecified; take the first text of the
	// candidate list that exists, for determinism.
	ids := func(texts ...string) []int32 {
		var r []int32
		for _, s := range texts {
			if id, ok := t.toID[s]; ok {
				r = append(r, id)
			}
		}
		sort.Slice(r, func(i, j int) bool { return r[i] < r[j] })
		return r
	}
	first := func(p *int32, texts ...string) {
		if *p != NoToken {
			return
		}
		for _, s := range texts {
			if id, ok := t.toID[s]; ok {
				*p = id
				t.attrs[id] |= attrControl
				return
			}
		}
	}
	first(&t.v.EOT, "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
		"<EOT>", "_<EOT>", "[EOT]", "<｜end▁of▁sentence｜>", "<end_of_utterance>")
	first(&t.v.EOM, "<|eom_id|>")
	first(&t.v.FIMPad, "<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]")
	first(&t.v.FIMRep, "<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>")
	first(&t.v.FIMSep, "<|file_sep|>")
	for i, s := range t.v.Tokens {
		if t.attrs[i]&attrControl != 0 && strings.Contains(s, "unused") {
			t.attrs[i] |= attrUnused
		}
	}
	for _, id := range []int32{t.v.FIMPad, t.v.FIMRep, t.v.FIMSep} {
		if id != NoToken {
			t.eog[id] = true
		}
	}
	for _, id := range ids("<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
		"<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
		"<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>", "<｜end▁of▁sentence｜>", "[e~[") {
		t.eog[id] = true
		t.attrs[id] |= attrControl
	}
	for _, s := range []string{"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"} {
		if id, ok := t.toID[s]; ok {
			t.attrs[id] = attrUserDefined
		}
	}
	for _, id := range []int32{t.v.EOS, t.v.EOT, t.v.EOM} {
		if id != NoToken {
			t.eog[id] = true
		}
	}
	// o200k_harmony / solar-open: "<|end|>" is not end-of-generation there.
	has := func(s string) bool { id, ok := t.toID[s]; return ok && t.eog[id] }
	if end, ok := t.toID["<|end|>"]; ok && t.eog[end] &&
		(has("<|call|>") || has("<|calls|>")) && (has("<|return|>") || has("<|flush|>")) {
		delete(t.eog, end)
		t.attrs[end] = attrUserDefined
	}
	if s, ok := t.toID["</s>"]; ok && t.eog[s] && has("<|tool_response>") {
		delete(t.eog, s)
		t.attrs[s] = attrNormal
	}
}

// buildSpecialCache collects the tokens split out of the text before
// tokenization, longest first, and applies llama.cpp's per-model strip
// attributes.
func (t *Tokenizer) buildSpecialCache() {
	for i, a := range t.attrs {
		if a&(attrControl|attrUserDefined|attrUnknown) != 0 {
			t.special = append(t.special, int32(i))
		}
	}
	sort.SliceStable(t.special, func(i, j int) bool {
		return len(t.v.Tokens[t.special[i]]) > len(t.v.Tokens[t.special[j]])
	})
	t.trie = newSpecialTrie(t.v.Tokens, t.special)
	name := strings.ToLower(t.v.Name)
	if strings.Contains(name, "phi-3") || strings.Contains(name, "phi3") {
		for _, id := range t.special {
			t.attrs[id] |= attrRStrip
		}
		if id, ok := t.toID["</s>"]; ok {
			t.attrs[id] |= attrRStrip
		}
		for _, s := range []string{"<unk>", "<s>", "<|endoftext|>"} {
			if id, ok := t.toID[s]; ok {
				t.attrs[id] &^= attrRStrip
			}
		}
	}
}

// NVocab returns the number of tokens.
func (t *Tokenizer) NVocab() int { return len(t.v.Tokens) }

// BOS returns the beginning-of-sequence token id, or NoToken.
func (t *Tokenizer) BOS() int32 { return t.v.BOS }

// EOS returns the end-of-sequence token id, or NoToken.
func (t *Tokenizer) EOS() int32 { return t.v.EOS }

// EOT returns the end-of-turn token id, or NoToken.
func (t *Tokenizer) EOT() int32 { return t.v.EOT }

// UNK returns the unknown token id, or NoToken.
func (t *Tokenizer) UNK() int32 { return t.v.UNK }

// Model returns the tokenizer model.
func (t *Tokenizer) Model() Model { return t.v.Model }

// Pre returns the BPE pre-tokenizer name ("" for non-BPE models).
func (t *Tokenizer) Pre() string { return t.v.Pre }

// AddBOSDefault reports whether llama.cpp adds BOS when the caller asks
// for the model's default special tokens: tokenizer.ggml.add_bos_token if
// present, else true for SentencePiece and WordPiece vocabularies and, for
// BPE, true only for the pre-tokenizers llama.cpp marks so (llama-bpe and
// its aliases). Callers pass it as Encode's addBOS, as llama.cpp's tools
// pass llama_vocab_get_add_bos as add_special.
func (t *Tokenizer) AddBOSDefault() bool { return t.v.AddBOS }

// AddEOSDefault reports whether llama.cpp appends EOS to the prompt.
func (t *Tokenizer) AddEOSDefault() bool { return t.v.AddEOS }

// IsEOG reports whether id ends generation: EOS, EOT, EOM and the tokens
// llama.cpp recognizes by their text (<|im_end|>, <|endoftext|>, ...).
func (t *Tokenizer) IsEOG(id int32) bool { return id != NoToken && t.eog[id] }

// EOGs returns the end-of-generation ids in increasing order.
func (t *Tokenizer) EOGs() []int32 {
	r := make([]int32, 0, len(t.eog))
	for id := range t.eog {
		r = append(r, id)
	}
	sort.Slice(r, func(i, j int) bool { return r[i] < r[j] })
	return r
}

// Token returns the text of token id as stored in the vocabulary, or ""
// when id is out of range.
func (t *Tokenizer) Token(id int32) string {
	if id < 0 || int(id) >= len(t.v.Tokens) {
		return ""
	}
	return t.v.Tokens[id]
}

// TokenID returns the id of a token text.
func (t *Tokenizer) TokenID(text string) (int32, bool) {
	id, ok := t.toID[text]
	return id, ok
}

// IsControl reports whether id is a control token.
func (t *Tokenizer) IsControl(id int32) bool {
	return id >= 0 && int(id) < len(t.attrs) && t.attrs[id]&attrControl != 0
}

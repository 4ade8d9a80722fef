package tokenizer

import (
	"errors"
	"fmt"

	"github.com/realmrt/realm/gguf"
)

// GGUF metadata keys read by FromGGUF.
const (
	keyModel          = "tokenizer.ggml.model"
	keyPre            = "tokenizer.ggml.pre"
	keyTokens         = "tokenizer.ggml.tokens"
	keyScores         = "tokenizer.ggml.scores"
	keyTokenType      = "tokenizer.ggml.token_type"
	keyMerges         = "tokenizer.ggml.merges"
	keyAddBOS         = "tokenizer.ggml.add_bos_token"
	keyAddEOS         = "tokenizer.ggml.add_eos_token"
	keyAddSEP         = "tokenizer.ggml.add_sep_token"
	keyAddSpacePrefix = "tokenizer.ggml.add_space_prefix"
	keyLowercase      = "tokenizer.ggml.normalizer.lowercase"
	keyStripAccents   = "tokenizer.ggml.normalizer.strip_accents"
	keyName           = "general.name"
)

// ErrNoTokenizer is returned by FromGGUF for a file without a vocabulary.
var ErrNoTokenizer = errors.New("tokenizer: no tokenizer in GGUF metadata")

// FromGGUF builds the tokenizer described by a GGUF file's metadata
// (tokenizer.ggml.*). It needs only the header: a vocab-only file read
// with gguf.Read works. Supported models: "llama" (SentencePiece), "gpt2"
// (byte-level BPE, with the pre-tokenizer named by tokenizer.ggml.pre) and
// "bert" (WordPiece). Defaults follow llama.cpp. An explicit special
// token id out of range is an error, except -1 (also as uint32
// 0xFFFFFFFF), which some converters write for "none" and which, as in
// llama.cpp, leaves the default in place.
func FromGGUF(f *gguf.File) (*Tokenizer, error) {
	if f == nil {
		return nil, errors.New("tokenizer: nil GGUF file")
	}
	name, ok := f.String(keyModel)
	if !ok {
		if _, present := f.Lookup(keyModel); present {
			return nil, fmt.Errorf("tokenizer: %s is not a string", keyModel)
		}
		return nil, ErrNoTokenizer
	}
	var m Model
	switch name {
	case "llama":
		m = ModelSPM
	case "gpt2":
		m = ModelBPE
	case "bert":
		m = ModelWPM
	case "no_vocab", "none":
		return nil, fmt.Errorf("%w (model %q)", ErrNoTokenizer, name)
	default:
		return nil, fmt.Errorf("tokenizer: unsupported tokenizer model %q (want llama, gpt2 or bert)", name)
	}
	pre := ""
	if m == ModelBPE {
		if p, present := f.Lookup(keyPre); present {
			s, ok := p.AsString()
			if !ok {
				return nil, fmt.Errorf("tokenizer: %s is not a string", keyPre)
			}
			pre = s
		}
	}
	v := DefaultVocab(m, pre)
	if m == ModelBPE {
		// validate the pre-tokenizer now for a clear error
		if _, _, err := newPreTokenizer(pre); err != nil {
			return nil, err
		}
	}
	v.Name, _ = f.String(keyName)

	toks, ok := f.Strings(keyTokens)
	if !ok {
		if _, present := f.Lookup(keyTokens); present {
			return nil, fmt.Errorf("tokenizer: %s is not an array of strings", keyTokens)
		}
		return nil, fmt.Errorf("tokenizer: %s missing", keyTokens)
	}
	v.Tokens = toks
	n := len(toks)
	if val, present := f.Lookup(keyScores); present {
		sc, ok := val.AsFloat32s()
		if !ok {
			is, ok2 := val.AsInt32s()
			if !ok2 {
				return nil, fmt.Errorf("tokenizer: %s is not an array of float32 or int32", keyScores)
			}
			sc = make([]float32, len(is))
			for i, x := range is {
				sc[i] = float32(x)
			}
		}
		if len(sc) < n {
			return nil, fmt.Errorf("tokenizer: %s has %d entries for %d tokens", keyScores, len(sc), n)
		}
		v.Scores = sc
	}
	if val, present := f.Lookup(keyTokenType); present {
		ts, ok := val.AsInt32s()
		if !ok {
			return nil, fmt.Errorf("tokenizer: %s is not an array of int32", keyTokenType)
		}
		if len(ts) < n {
			return nil, fmt.Errorf("tokenizer: %s has %d entries for %d tokens", keyTokenType, len(ts), n)
		}
		v.Types = make([]TokenType, len(ts))
		for i, x := range ts {
			v.Types[i] = TokenType(x)
		}
	}
	if m == ModelBPE {
		mg, ok := f.Strings(keyMerges)
		if !ok {
			if _, present := f.Lookup(keyMerges); present {
				return nil, fmt.Errorf("tokenizer: %s is not an array of strings", keyMerges)
			}
			return nil, fmt.Errorf("tokenizer: %s missing (required for gpt2 vocabularies)", keyMerges)
		}
		v.Merges = mg
	}

	// default ids out of range are disabled, as in llama.cpp
	for _, p := range []*int32{&v.BOS, &v.EOS, &v.UNK, &v.PAD, &v.SEP} {
		if *p >= int32(n) {
			*p = NoToken
		}
	}
	for _, sid := range []struct {
		key string
		p   *int32
	}{
		{"tokenizer.ggml.bos_token_id", &v.BOS},
		{"tokenizer.ggml.eos_token_id", &v.EOS},
		{"tokenizer.ggml.eot_token_id", &v.EOT},
		{"tokenizer.ggml.eom_token_id", &v.EOM},
		{"tokenizer.ggml.unknown_token_id", &v.UNK},
		{"tokenizer.ggml.seperator_token_id", &v.SEP},
		{"tokenizer.ggml.padding_token_id", &v.PAD},
		{"tokenizer.ggml.fim_pad_token_id", &v.FIMPad},
		{"tokenizer.ggml.fim_rep_token_id", &v.FIMRep},
		{"tokenizer.ggml.fim_sep_token_id", &v.FIMSep},
	} {
		val, present := f.Lookup(sid.key)
		if !present {
			continue
		}
		if x, ok := val.AsInt(); ok && (x == -1 || x == 0xFFFFFFFF) {
			// "none" written as -1 (or its uint32 form): llama.cpp warns
			// and keeps the default
			continue
		}
		id, ok := val.AsUint()
		if !ok {
			return nil, fmt.Errorf("tokenizer: %s is not a non-negative integer (%v)", sid.key, val)
		}
		if id >= uint64(n) {
			return nil, fmt.Errorf("tokenizer: %s = %d out of range (vocabulary of %d tokens)", sid.key, id, n)
		}
		*sid.p = int32(id)
	}
	for _, b := range []struct {
		key string
		p   *bool
	}{
		{keyAddBOS, &v.AddBOS}, {keyAddEOS, &v.AddEOS}, {keyAddSEP, &v.AddSEP},
		{keyAddSpacePrefix, &v.AddSpacePrefix}, {keyLowercase, &v.Lowercase},
	} {
		val, present := f.Lookup(b.key)
		if !present {
			continue
		}
		x, ok := val.AsBool()
		if !ok {
			return nil, fmt.Errorf("tokenizer: %s is not a bool (%v)", b.key, val)
		}
		*b.p = x
	}
	v.StripAccents = v.Lowercase
	if val, present := f.Lookup(keyStripAccents); present {
		x, ok := val.AsBool()
		if !ok {
			return nil, fmt.Errorf("tokenizer: %s is not a bool (%v)", keyStripAccents, val)
		}
		v.StripAccents = x
	}
	return New(v)
}

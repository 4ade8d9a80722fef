package tokenizer

import (
	"errors"
	"strings"
	"testing"

	"github.com/realmrt/realm/gguf"
	"github.com/realmrt/realm/internal/refdata"
)

// spmVocab is a small hand-made SentencePiece vocabulary.
func spmVocab() Vocab {
	v := DefaultVocab(ModelSPM, "")
	v.Tokens = []string{"<unk>", "<s>", "</s>", "▁", "a", "b", "c", "ab", "bc", "▁a", "▁ab", "abc", "<0x41>", "<0xC3>", "<0xA9>", "<|user|>"}
	v.Scores = []float32{0, 0, 0, -1, -2, -2, -2, -1, -0.5, -0.7, -0.2, -3, 0, 0, 0, 0}
	v.Types = []TokenType{TypeUnknown, TypeControl, TypeControl, 1, 1, 1, 1, 1, 1, 1, 1, 1, TypeByte, TypeByte, TypeByte, TypeUserDefined}
	return v
}

func mustNew(t testing.TB, v Vocab) *Tokenizer {
	t.Helper()
	tk, err := New(v)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func TestSPMHandMade(t *testing.T) {
	tk := mustNew(t, spmVocab())
	for _, c := range []struct {
		text         string
		bos, special bool
		want         []int32
	}{
		// "▁abc": bigrams ▁a(-0.7) ab(-1) bc(-0.5): bc first, then ▁a, then no ▁a+bc token
		{"abc", false, false, []int32{9, 8}},
		{"ab", true, false, []int32{1, 10}},
		{"", true, false, []int32{1}},
		{"", false, false, []int32{}},
		// ties: "ba" is not a token; "a b" -> ▁a ▁ b
		{"a b", false, false, []int32{9, 3, 5}},
		// byte fallback: 'A' has <0x41>, 'é' = C3 A9; 'Z' has no byte token -> UNK
		{"A", false, false, []int32{3, 12}},
		{"é", false, false, []int32{3, 13, 14}},
		{"Z", false, false, []int32{3, 0}},
		// control text stays text without parseSpecial (bytes '<','s','>' -> UNK)
		{"<s>a", false, false, []int32{3, 0, 0, 0, 4}},
		{"<s>a", false, true, []int32{1, 9}},
		// user-defined tokens are always split; the space prefix follows them
		{"<|user|>a", false, false, []int32{15, 9}},
	} {
		got, err := tk.Encode(c.text, c.bos, c.special)
		if err != nil {
			t.Fatalf("%q: %v", c.text, err)
		}
		if !equalIDs(got, c.want) {
			t.Errorf("Encode(%q, %v, %v) = %v, want %v", c.text, c.bos, c.special, got, c.want)
		}
	}
	if got := tk.Decode([]int32{9, 8, 3, 13, 14, 2}); got != "abc é" {
		t.Errorf("Decode = %q", got)
	}
	if got := string(tk.Piece(10)); got != " ab" {
		t.Errorf("Piece(▁ab) = %q", got)
	}
	if p := tk.Piece(1); len(p) != 0 {
		t.Errorf("Piece(<s>) = %q, want empty", p)
	}
	if p := tk.Piece(99); p != nil {
		t.Errorf("Piece(out of range) = %q", p)
	}
	if !tk.AddBOSDefault() || !tk.IsEOG(2) || tk.IsEOG(1) || tk.BOS() != 1 || tk.EOS() != 2 {
		t.Errorf("defaults: addBOS %v eog(2) %v eog(1) %v", tk.AddBOSDefault(), tk.IsEOG(2), tk.IsEOG(1))
	}
}

func TestSPMTieLeftmost(t *testing.T) {
	v := DefaultVocab(ModelSPM, "")
	v.AddSpacePrefix = false
	v.Tokens = []string{"<unk>", "<s>", "</s>", "a", "aa"}
	v.Scores = []float32{0, 0, 0, -1, -1}
	tk := mustNew(t, v)
	// "aaa": bigrams (0,1) and (1,2) tie; the left-most wins -> aa a
	got, err := tk.Encode("aaa", false, false)
	if err != nil {
		t.Fatal(err)
	}
	if !equalIDs(got, []int32{4, 3}) {
		t.Errorf("got %v, want [4 3]", got)
	}
}

// bpeVocab is a small byte-level BPE vocabulary with the gpt-2 splitter.
func bpeVocab() Vocab {
	v := DefaultVocab(ModelBPE, "gpt-2")
	be := newByteEncoder()
	for b := 0; b < 256; b++ {
		v.Tokens = append(v.Tokens, be.enc[b])
	}
	v.Tokens = append(v.Tokens, "Ġh", "Ġhe", "ll", "Ġhell", "<|endoftext|>", "Ġhello")
	v.Merges = []string{"l l", "Ġ h", "Ġh e", "Ġhe ll", "Ġhell o"}
	v.BOS, v.EOS = 260, 260
	v.Types = make([]TokenType, len(v.Tokens))
	for i := range v.Types {
		v.Types[i] = TypeNormal
	}
	v.Types[260] = TypeControl
	return v
}

func TestBPEHandMade(t *testing.T) {
	tk := mustNew(t, bpeVocab())
	got, err := tk.Encode(" hello hell<|endoftext|>", false, true)
	if err != nil {
		t.Fatal(err)
	}
	want := []int32{261, 259, 260}
	if !equalIDs(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if tk.AddBOSDefault() {
		t.Error("gpt-2 should not add BOS by default")
	}
	got, _ = tk.Encode("hé", true, false)
	// 'h' then bytes C3 A9 mapped through bytes_to_unicode
	if want := []int32{260, 'h', 0xC3, 0xA9}; !equalIDs(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if s := tk.Decode(got); s != "hé" {
		t.Errorf("Decode = %q", s)
	}
	if !tk.IsEOG(260) {
		t.Error("<|endoftext|> should end generation")
	}
}

func TestCleanSpaces(t *testing.T) {
	for in, want := range map[string]string{
		"Hello , world !":   "Hello, world!",
		"a ' b":             "a'b",
		"it 's I 'm we 're": "it's I'm we're",
		"don 't you 'll":    "don 't you 'll",
		"":                  "",
	} {
		if got := string(cleanSpaces([]byte(in))); got != want {
			t.Errorf("cleanSpaces(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestStreamer(t *testing.T) {
	tk := mustNew(t, spmVocab())
	s := NewStreamer(tk)
	var out []byte
	steps := []struct {
		id   int32
		want string
	}{
		{9, " a"}, {13, ""}, {14, "é"}, {1, ""}, {13, ""},
	}
	for _, st := range steps {
		got := s.Add(st.id)
		if string(got) != st.want {
			t.Errorf("Add(%d) = %q, want %q", st.id, got, st.want)
		}
		out = append(out, got...)
	}
	if got := string(s.Flush()); got != "\uFFFD" {
		t.Errorf("Flush = %q, want U+FFFD", got)
	}
	if got := string(s.Flush()); got != "" {
		t.Errorf("second Flush = %q", got)
	}
	// an invalid byte followed by text is replaced at once
	if got := string(s.Add(14)); got != "\uFFFD" {
		t.Errorf("lone continuation byte: %q", got)
	}
	_ = out
}

func TestNewErrors(t *testing.T) {
	v := spmVocab()
	v.Tokens = append([]string(nil), v.Tokens...)
	v.Tokens[5] = "a"
	if _, err := New(v); err == nil || !strings.Contains(err.Error(), "duplicate") {
		t.Errorf("duplicate token: %v", err)
	}
	v = spmVocab()
	v.EOS = 1000
	if _, err := New(v); err == nil {
		t.Error("out-of-range EOS accepted")
	}
	v = spmVocab()
	v.Scores = v.Scores[:3]
	if _, err := New(v); err == nil {
		t.Error("short scores accepted")
	}
	if _, err := New(Vocab{Model: ModelSPM}); err == nil {
		t.Error("empty vocab accepted")
	}
	v = bpeVocab()
	v.Pre = "no-such-pre"
	if _, err := New(v); err == nil || !strings.Contains(err.Error(), "no-such-pre") {
		t.Errorf("unknown pre: %v", err)
	}
	v = spmVocab()
	v.BOS = NoToken
	tk, err := New(func() Vocab { v.AddBOS = false; return v }())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tk.Encode("a", true, false); !errors.Is(err, ErrNoBOS) {
		t.Errorf("Encode with BOS but no BOS token: %v", err)
	}
}

func kv(k string, v gguf.Value) gguf.KV { return gguf.KV{Key: k, Value: v} }

func TestFromGGUFErrors(t *testing.T) {
	toks := gguf.NewStrings([]string{"<unk>", "<s>", "</s>", "a"})
	for _, c := range []struct {
		name string
		md   []gguf.KV
		want string
	}{
		{"no tokenizer", nil, "no tokenizer"},
		{"unknown model", []gguf.KV{kv(keyModel, gguf.NewString("rwkv")), kv(keyTokens, toks)}, `unsupported tokenizer model "rwkv"`},
		{"model type", []gguf.KV{kv(keyModel, gguf.NewUint32(1))}, "not a string"},
		{"no tokens", []gguf.KV{kv(keyModel, gguf.NewString("llama"))}, "tokens missing"},
		{"bad bos", []gguf.KV{kv(keyModel, gguf.NewString("llama")), kv(keyTokens, toks),
			kv("tokenizer.ggml.bos_token_id", gguf.NewUint32(4))}, "out of range"},
		{"short scores", []gguf.KV{kv(keyModel, gguf.NewString("llama")), kv(keyTokens, toks),
			kv(keyScores, gguf.NewFloat32s([]float32{1}))}, "scores has 1 entries"},
		{"no merges", []gguf.KV{kv(keyModel, gguf.NewString("gpt2")), kv(keyPre, gguf.NewString("gpt-2")), kv(keyTokens, toks)}, "merges missing"},
		{"bad pre", []gguf.KV{kv(keyModel, gguf.NewString("gpt2")), kv(keyPre, gguf.NewString("tekken9")), kv(keyTokens, toks)}, `unsupported pre-tokenizer "tekken9"`},
		{"bad eos", []gguf.KV{kv(keyModel, gguf.NewString("llama")), kv(keyTokens, toks),
			kv("tokenizer.ggml.eos_token_id", gguf.NewInt32(-2))}, "not a non-negative integer"},
		{"bad add_bos", []gguf.KV{kv(keyModel, gguf.NewString("llama")), kv(keyTokens, toks), kv(keyAddBOS, gguf.NewUint8(1))}, "not a bool"},
	} {
		_, err := FromGGUF(&gguf.File{Metadata: c.md})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
	}
	f := &gguf.File{Metadata: []gguf.KV{kv(keyModel, gguf.NewString("llama")), kv(keyTokens, toks),
		kv(keyAddBOS, gguf.NewBool(false)), kv(keyAddSpacePrefix, gguf.NewBool(false))}}
	tk, err := FromGGUF(f)
	if err != nil {
		t.Fatal(err)
	}
	if tk.AddBOSDefault() || tk.BOS() != 1 || tk.UNK() != 0 {
		t.Errorf("add_bos_token=false not honoured or defaults wrong")
	}
	if got, _ := tk.Encode("a", false, false); !equalIDs(got, []int32{3}) {
		t.Errorf("add_space_prefix=false: got %v", got)
	}
}

// TestReferenceModels checks the prompts and generations llama.cpp
// produced on the reference models.
func TestReferenceModels(t *testing.T) {
	for _, c := range []struct{ model, output string }{
		{"stories260K.gguf", "stories260K.once-upon"},
		{"llama-2-tiny-random.gguf", "llama-2-tiny-random.hello"},
		{"stories260K-Q8_0.gguf", "stories260K-Q8_0.once-upon"},
		{"stories260K-Q4_0.gguf", "stories260K-Q4_0.once-upon"},
	} {
		t.Run(c.output, func(t *testing.T) {
			tk := loadGGUF(t, "models", c.model)
			ref, err := refdata.LoadOutput(c.output)
			if err != nil {
				t.Fatal(err)
			}
			if tk.NVocab() != ref.NVocab {
				t.Errorf("NVocab = %d, want %d", tk.NVocab(), ref.NVocab)
			}
			if !ref.AddBOS || !tk.AddBOSDefault() {
				t.Errorf("add_bos: reference %v, AddBOSDefault %v", ref.AddBOS, tk.AddBOSDefault())
			}
			got, err := tk.Encode(ref.Prompt, true, true)
			if err != nil {
				t.Fatal(err)
			}
			if !equalIDs(got, ref.PromptIDs) {
				t.Errorf("Encode(%q) = %v, want %v", ref.Prompt, got, ref.PromptIDs)
			}
			if got := tk.Decode(ref.GenIDs); got != ref.GenText {
				t.Errorf("Decode(gen_ids) = %q, want %q", got, ref.GenText)
			}
			s := NewStreamer(tk)
			var streamed []byte
			for _, id := range ref.GenIDs {
				streamed = append(streamed, s.Add(id)...)
			}
			streamed = append(streamed, s.Flush()...)
			if string(streamed) != ref.GenText {
				t.Errorf("streamed = %q, want %q", streamed, ref.GenText)
			}
		})
	}
	tk := loadGGUF(t, "models", "stories260K.gguf")
	got, err := tk.Encode("Once upon a time", true, true)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int32{1, 403, 407, 261, 378}; !equalIDs(got, want) {
		t.Errorf("stories260K: got %v, want %v", got, want)
	}
}

// TestSpecialTokens checks parseSpecial on the real vocabularies.
func TestSpecialTokens(t *testing.T) {
	for _, c := range []struct {
		vocab   string
		text    string
		bos     bool
		special bool
		want    []int32
	}{
		{"llama-bpe", "<|begin_of_text|>Hello", false, true, []int32{128000, 9906}},
		{"llama-bpe", "Hello<|eot_id|>", true, true, []int32{128000, 9906, 128009}},
		{"llama-spm", "<s>Hello", false, true, []int32{1, 15043}},
		{"qwen2", "<|im_start|>user", false, true, []int32{151644, 872}},
	} {
		tk := loadVocab(t, c.vocab)
		got, err := tk.Encode(c.text, c.bos, c.special)
		if err != nil {
			t.Fatal(err)
		}
		if !equalIDs(got, c.want) {
			t.Errorf("%s: Encode(%q) = %v, want %v", c.vocab, c.text, got, c.want)
		}
		plain, err := tk.Encode(c.text, false, false)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range plain {
			if tk.IsControl(id) {
				t.Errorf("%s: control token %d produced with parseSpecial=false from %q", c.vocab, id, c.text)
			}
		}
	}
}

func TestDefaultsAndEOG(t *testing.T) {
	for _, c := range []struct {
		vocab  string
		addBOS bool
		eog    []string
	}{
		{"llama-spm", true, []string{"</s>"}},
		{"llama-bpe", true, []string{"<|end_of_text|>", "<|eot_id|>"}},
		{"qwen2", false, []string{"<|endoftext|>", "<|im_end|>"}},
		{"gpt-2", false, []string{"<|endoftext|>"}},
	} {
		tk := loadVocab(t, c.vocab)
		if tk.AddBOSDefault() != c.addBOS {
			t.Errorf("%s: AddBOSDefault = %v, want %v", c.vocab, tk.AddBOSDefault(), c.addBOS)
		}
		for _, s := range c.eog {
			id, ok := tk.TokenID(s)
			if !ok || !tk.IsEOG(id) {
				t.Errorf("%s: %q (id %d, found %v) should be EOG; EOGs %v", c.vocab, s, id, ok, tk.EOGs())
			}
		}
		if tk.IsEOG(tk.BOS()) && tk.BOS() != tk.EOS() {
			t.Errorf("%s: BOS is EOG", c.vocab)
		}
	}
}

// TestSPMSegmentation checks that encoding U+2581-separated words one by
// one gives exactly what the single merge loop over the whole text gives.
func TestSPMSegmentation(t *testing.T) {
	for _, name := range []string{"llama-spm", "phi-3"} {
		tk := loadVocab(t, name)
		if !tk.spmSplit {
			t.Fatalf("%s: expected word segmentation to be safe", name)
		}
		whole := *tk
		whole.spmSplit = false
		var all strings.Builder
		for _, c := range loadVectors(t, name) {
			all.WriteString(c.text)
			all.WriteString(" \n ")
		}
		for _, s := range []string{all.String(), "  a  b   c\xff\xfe  ▁▁x"} {
			a, err := tk.Encode(s, true, true)
			if err != nil {
				t.Fatal(err)
			}
			b, err := whole.Encode(s, true, true)
			if err != nil {
				t.Fatal(err)
			}
			if !equalIDs(a, b) {
				t.Errorf("%s: segmented %v\n whole %v", name, a, b)
			}
		}
	}
}

// TestDecodeLeadingSpace pins llama.cpp's detokenize rule: only the very
// first token loses one leading space, so a leading BOS keeps it.
func TestDecodeLeadingSpace(t *testing.T) {
	tk := mustNew(t, spmVocab())
	for _, c := range []struct {
		ids  []int32
		want string
	}{
		{[]int32{9, 3, 4}, "a a"},
		{[]int32{1, 9}, " a"},
		{[]int32{3, 3, 4}, " a"},
		{nil, ""},
		{[]int32{-1, 99, 4}, "a"},
	} {
		if got := tk.Decode(c.ids); got != c.want {
			t.Errorf("Decode(%v) = %q, want %q", c.ids, got, c.want)
		}
	}
}

// TestEOGDetection checks llama.cpp's text-based end-of-generation rules
// on hand-made vocabularies.
func TestEOGDetection(t *testing.T) {
	base := func(extra ...string) Vocab {
		v := bpeVocab()
		v.Tokens = append(append([]string(nil), v.Tokens...), extra...)
		v.Types = nil
		return v
	}
	tk := mustNew(t, base("<|im_start|>", "<|im_end|>", "<|fim_pad|>"))
	for _, s := range []string{"<|endoftext|>", "<|im_end|>", "<|fim_pad|>"} {
		if id, _ := tk.TokenID(s); !tk.IsEOG(id) || !tk.IsControl(id) {
			t.Errorf("%s: EOG %v control %v", s, tk.IsEOG(id), tk.IsControl(id))
		}
	}
	if id, _ := tk.TokenID("<|im_start|>"); tk.IsEOG(id) {
		t.Error("<|im_start|> is not EOG")
	}
	if id, _ := tk.TokenID("<|im_end|>"); tk.EOT() != id {
		t.Errorf("EOT = %d, want <|im_end|> %d", tk.EOT(), id)
	}
	// gpt-oss style: <|end|> is not EOG when <|return|> and <|call|> exist
	tk = mustNew(t, base("<|end|>", "<|return|>", "<|call|>"))
	if id, _ := tk.TokenID("<|end|>"); tk.IsEOG(id) {
		t.Error("<|end|> should not be EOG next to <|return|> and <|call|>")
	}
	tk = mustNew(t, base("<|end|>"))
	if id, _ := tk.TokenID("<|end|>"); !tk.IsEOG(id) {
		t.Error("<|end|> should be EOG")
	}
	if got := tk.EOGs(); len(got) != 2 {
		t.Errorf("EOGs = %v", got)
	}
}

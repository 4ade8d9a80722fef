package tokenizer

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/realmrt/realm/gguf"
	"github.com/realmrt/realm/internal/refdata"
)

// vocabCache loads each reference vocabulary once per test binary.
type vocabCache struct {
	mu sync.Mutex
	m  map[string]*Tokenizer
}

var vocabs = &vocabCache{m: map[string]*Tokenizer{}}

func loadGGUF(t testing.TB, elem ...string) *Tokenizer {
	t.Helper()
	p, err := refdata.Path(elem...)
	if err != nil {
		t.Fatal(err)
	}
	vocabs.mu.Lock()
	defer vocabs.mu.Unlock()
	if tk, ok := vocabs.m[p]; ok {
		return tk
	}
	fh, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Read(fh, st.Size())
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	tk, err := FromGGUF(f)
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	vocabs.m[p] = tk
	return tk
}

func loadVocab(t testing.TB, name string) *Tokenizer {
	return loadGGUF(t, "vocab", "ggml-vocab-"+name+".gguf")
}

// vectorCase is one test string of a reference vocabulary.
type vectorCase struct {
	text string
	ids  []int32
}

// loadVectors reads NAME.gguf.inp (strings each followed by
// "\n__ggml_vocab_test__\n") and NAME.gguf.out (one line of ids each).
func loadVectors(t testing.TB, name string) []vectorCase {
	t.Helper()
	base, err := refdata.Path("vocab", "ggml-vocab-"+name+".gguf")
	if err != nil {
		t.Fatal(err)
	}
	inp, err := os.ReadFile(base + ".inp")
	if err != nil {
		t.Fatal(err)
	}
	outb, err := os.ReadFile(base + ".out")
	if err != nil {
		t.Fatal(err)
	}
	const sep = "\n__ggml_vocab_test__\n"
	texts := strings.Split(string(inp), sep)
	if texts[len(texts)-1] != "" {
		t.Fatalf("%s.inp does not end with the separator", name)
	}
	texts = texts[:len(texts)-1]
	lines := strings.Split(strings.TrimSuffix(string(outb), "\n"), "\n")
	if len(lines) != len(texts) {
		t.Fatalf("%s: %d strings but %d output lines", name, len(texts), len(lines))
	}
	cases := make([]vectorCase, len(texts))
	for i := range texts {
		var ids []int32
		for _, f := range strings.Fields(lines[i]) {
			n, err := strconv.ParseInt(f, 10, 32)
			if err != nil {
				t.Fatalf("%s.out line %d: %v", name, i+1, err)
			}
			ids = append(ids, int32(n))
		}
		cases[i] = vectorCase{texts[i], ids}
	}
	return cases
}

func equalIDs(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestVectors checks every llama.cpp test vector of the reference
// vocabularies (Encode with addBOS=false, parseSpecial=false).
func TestVectors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		model Model
	}{
		{"llama-spm", ModelSPM},
		{"phi-3", ModelSPM},
		{"gpt-2", ModelBPE},
		{"llama-bpe", ModelBPE},
		{"qwen2", ModelBPE},
		{"deepseek-llm", ModelBPE},
		{"deepseek-coder", ModelBPE},
		{"falcon", ModelBPE},
		{"mpt", ModelBPE},
		{"starcoder", ModelBPE},
		{"refact", ModelBPE},
		{"bert-bge", ModelWPM},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tk := loadVocab(t, tc.name)
			if tk.Model() != tc.model {
				t.Fatalf("model %v, want %v", tk.Model(), tc.model)
			}
			for i, c := range loadVectors(t, tc.name) {
				got, err := tk.Encode(c.text, false, false)
				if err != nil {
					t.Errorf("#%d %q: %v", i, c.text, err)
					continue
				}
				if !equalIDs(got, c.ids) {
					t.Errorf("#%d %q:\n got %v\nwant %v", i, c.text, got, c.ids)
				}
			}
		})
	}
}

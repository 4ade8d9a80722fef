package grammar_test

import (
	"math/rand/v2"
	"testing"

	"github.com/realmrt/realm/gguf"
	"github.com/realmrt/realm/internal/grammar"
	"github.com/realmrt/realm/internal/refdata"
	"github.com/realmrt/realm/tokenizer"
)

// vocabTokenizer loads one of llama.cpp's vocabulary files.
func vocabTokenizer(tb testing.TB, name string) *tokenizer.Tokenizer {
	tb.Helper()
	p, err := refdata.Path("vocab", name)
	if err != nil {
		tb.Skip(err)
	}
	f, err := gguf.Open(p)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	tok, err := tokenizer.FromGGUF(f.File)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

const benchSchema = `{"type":"object","properties":{"name":{"type":"string","maxLength":16},"age":{"type":"integer"},` +
	`"role":{"enum":["admin","user","guest"]},"tags":{"type":"array","items":{"type":"string","maxLength":10},"maxItems":4},` +
	`"active":{"type":"boolean"}},"required":["name","age","role","tags","active"],"additionalProperties":false}`

// benchMask runs masked sampling steps over a vocabulary: mask the
// logits, pick a random allowed token, accept it; a finished sentence
// starts the next. cold gives every sentence a fresh cache (every mask
// computed), warm shares one cache (the steady state of a server that
// sees the schema again).
func benchMask(b *testing.B, vocab string, cold bool) {
	tok := vocabTokenizer(b, vocab)
	text, err := grammar.FromJSONSchema([]byte(benchSchema))
	if err != nil {
		b.Fatal(err)
	}
	cache := grammar.NewCache(0)
	cache.Vocab(tok) // the trie is built once per tokenizer
	rng := rand.New(rand.NewPCG(1, 2))
	logits := make([]float32, tok.NVocab())
	var m *grammar.Matcher
	allowed := make([]int32, 0, tok.NVocab())
	b.ResetTimer()
	for range b.N {
		if m == nil || m.Done() {
			if cold {
				b.StopTimer()
				cache = grammar.NewCache(0)
				cache.Vocab(tok)
				b.StartTimer()
			}
			if m, err = cache.Matcher(tok, text); err != nil {
				b.Fatal(err)
			}
		}
		clear(logits)
		if _, err := m.Apply(logits); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		allowed = allowed[:0]
		for i, l := range logits {
			if l == 0 {
				allowed = append(allowed, int32(i))
			}
		}
		id := allowed[rng.IntN(len(allowed))]
		if m.Complete() && rng.IntN(2) == 0 {
			id = tok.EOS()
		}
		b.StartTimer()
		if err := m.Accept(id); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMaskWarm: one masked step (mask + accept) over the 32000
// tokens of Llama 2's vocabulary, the schema's mask cache warm.
func BenchmarkMaskWarm(b *testing.B) { benchMask(b, "ggml-vocab-llama-spm.gguf", false) }

// BenchmarkMaskCold: the same with every mask computed (a new cache
// for each sentence).
func BenchmarkMaskCold(b *testing.B) { benchMask(b, "ggml-vocab-llama-spm.gguf", true) }

// BenchmarkMaskWarmQwen2: the 151936-token vocabulary of Qwen 2.
func BenchmarkMaskWarmQwen2(b *testing.B) { benchMask(b, "ggml-vocab-qwen2.gguf", false) }

// BenchmarkMaskColdQwen2: the same, cold.
func BenchmarkMaskColdQwen2(b *testing.B) { benchMask(b, "ggml-vocab-qwen2.gguf", true) }

// BenchmarkVocab: building the trie of Llama 2's vocabulary.
func BenchmarkVocab(b *testing.B) {
	tok := vocabTokenizer(b, "ggml-vocab-llama-spm.gguf")
	for range b.N {
		grammar.NewVocab(tok)
	}
}

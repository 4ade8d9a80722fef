package tokenizer

import (
	"os"
	"strings"
	"testing"

	"github.com/realmrt/realm/gguf"
	"github.com/realmrt/realm/internal/refdata"
)

// benchText is a long mixed text (the llama-spm vectors repeated, ~1 MiB).
func benchText(b *testing.B) string {
	var sb strings.Builder
	cases := loadVectors(b, "llama-spm")
	for sb.Len() < 1<<20 {
		for _, c := range cases {
			sb.WriteString(c.text)
			sb.WriteString(" The quick brown fox jumps over the lazy dog; it's 2024-06-01.\n")
		}
	}
	return sb.String()
}

// uniqueText is ~1 MiB of pseudo-random words (few repeats, so the
// per-call word cache rarely hits).
func uniqueText() string {
	var sb strings.Builder
	x := uint32(12345)
	for sb.Len() < 1<<20 {
		x = x*1664525 + 1013904223
		n := 2 + int(x>>28)
		for i := 0; i < n; i++ {
			x = x*1664525 + 1013904223
			sb.WriteByte(byte('a' + (x>>24)%26))
		}
		sb.WriteByte(' ')
	}
	return sb.String()
}

func BenchmarkEncodeUnique(b *testing.B) {
	text := uniqueText()
	for _, name := range []string{"llama-spm", "llama-bpe"} {
		tk := loadVocab(b, name)
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			for b.Loop() {
				if _, err := tk.Encode(text, true, true); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkEncode(b *testing.B) {
	text := benchText(b)
	for _, name := range []string{"llama-spm", "llama-bpe", "qwen2", "gpt-2", "deepseek-llm"} {
		tk := loadVocab(b, name)
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			for b.Loop() {
				if _, err := tk.Encode(text, true, true); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	text := benchText(b)
	tk := loadVocab(b, "llama-bpe")
	ids, err := tk.Encode(text, false, false)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		_ = tk.Decode(ids)
	}
}

// BenchmarkFromGGUF measures loading the 151k-token qwen2 vocabulary
// (header parse plus all lookup tables).
func BenchmarkFromGGUF(b *testing.B) {
	p, err := refdata.Path("vocab", "ggml-vocab-qwen2.gguf")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		fh, err := os.Open(p)
		if err != nil {
			b.Fatal(err)
		}
		st, _ := fh.Stat()
		f, err := gguf.Read(fh, st.Size())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := FromGGUF(f); err != nil {
			b.Fatal(err)
		}
		fh.Close()
	}
}

package tokenizer

import (
	"slices"
	"testing"
)

func splitWords(t *testing.T, pre, text string) []string {
	t.Helper()
	p, _, err := newPreTokenizer(pre)
	if err != nil {
		t.Fatal(err)
	}
	var pt ptext
	var offs []int
	var norm []byte
	for i := 0; i < len(text); {
		c, n := decodeCpt(text, i)
		offs = append(offs, len(norm))
		norm = appendCpt(norm, c)
		pt.cpts = append(pt.cpts, c)
		pt.flags = append(pt.flags, cptFlags(c))
		i += n
	}
	offs = append(offs, len(norm))
	var words []string
	for _, sp := range p.split(&pt) {
		words = append(words, string(norm[offs[sp.s]:offs[sp.e]]))
	}
	return words
}

// TestPreTokenizers pins the regex semantics of the hand-written
// splitters on small cases worked out from the regexes.
func TestPreTokenizers(t *testing.T) {
	for _, c := range []struct {
		pre, text string
		want      []string
	}{
		{"gpt-2", "Hello  world", []string{"Hello", " ", " world"}},
		{"gpt-2", "x   ", []string{"x", "   "}},
		{"gpt-2", "'s'S", []string{"'s", "'", "S"}},
		{"gpt-2", "a1b 123 !?x", []string{"a", "1", "b", " 123", " !?", "x"}},
		{"gpt-2", "", nil},
		{"llama-bpe", "Hello\n\nworld", []string{"Hello", "\n\n", "world"}},
		{"llama-bpe", "12345", []string{"123", "45"}},
		{"llama-bpe", "a  \n b", []string{"a", "  \n", " b"}},
		{"llama-bpe", "I'M 'Re", []string{"I", "'M", " '", "Re"}},
		{"llama-bpe", "!!\n\nx", []string{"!!\n\n", "x"}},
		{"llama-bpe", "a \xff", []string{"a", " \uFFFD"}},
		{"qwen2", "x123", []string{"x", "1", "2", "3"}},
		{"deepseek-coder", "foo+bar 12", []string{"foo", "+", "bar", " ", "1", "2"}},
		{"deepseek-coder", "a\r\nb", []string{"a", "\r", "\n", "b"}},
		{"deepseek-llm", "Hi,  there 你好123  ", []string{"Hi", ",", " ", " there", " ", "你好", "123", "  "}},
		{"falcon", "a==b 12345", []string{"a", "==", "b", " ", "123", "45"}},
		{"starcoder", "x 42", []string{"x", " ", "4", "2"}},
		{"default", "a.b 1234", []string{"a", ".", "b", " ", "123", "4"}},
	} {
		if got := splitWords(t, c.pre, c.text); !slices.Equal(got, c.want) {
			t.Errorf("%s %q: got %q, want %q", c.pre, c.text, got, c.want)
		}
	}
}

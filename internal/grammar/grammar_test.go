package grammar

import (
	"errors"
	"math"
	"strings"
	"testing"
)

// fakeTokens is a vocabulary given as pieces; the last token is EOS.
type fakeTokens []string

func (f fakeTokens) NVocab() int           { return len(f) }
func (f fakeTokens) Piece(id int32) []byte { return []byte(f[id]) }
func (f fakeTokens) IsEOG(id int32) bool   { return int(id) == len(f)-1 }
func (f fakeTokens) EOGs() []int32         { return []int32{int32(len(f) - 1)} }

// accepts reports whether g (a grammar text) matches s as a whole.
func accepts(t *testing.T, g *Grammar, s string) bool {
	t.Helper()
	m, err := NewMatcher(g, NewVocab(fakeTokens{"x", "</s>"}))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.AcceptBytes([]byte(s)); err != nil {
		if !errors.Is(err, ErrRejected) {
			t.Fatal(err)
		}
		return false
	}
	return m.Complete()
}

func TestParseAndMatch(t *testing.T) {
	for _, c := range []struct {
		grammar string
		yes, no []string
	}{
		{`root ::= "a" | "b"`, []string{"a", "b"}, []string{"", "ab", "c"}},
		{`root ::= [a-c]+`, []string{"a", "abcabc"}, []string{"", "d", "abd"}},
		{`root ::= [^a-c]*`, []string{"", "xyz", "é€𝄞"}, []string{"a", "xa"}},
		{`root ::= "ab"*`, []string{"", "ab", "abab"}, []string{"a", "aba"}},
		{`root ::= "x"{2,3}`, []string{"xx", "xxx"}, []string{"x", "xxxx"}},
		{`root ::= "x"{2}`, []string{"xx"}, []string{"x", "xxx"}},
		{`root ::= "x"{2,}`, []string{"xx", "xxxxx"}, []string{"x"}},
		{`root ::= ("a" | "b" "c")? "d"`, []string{"d", "ad", "bcd"}, []string{"bd", "acd"}},
		{"root ::= item (\",\" item)*\nitem ::= [0-9]+ # a number\n", []string{"1", "1,22,333"}, []string{"1,", ",1"}},
		{"root ::= a\na ::= \"(\" a \")\" | \"\"", []string{"", "()", "((()))"}, []string{"(()", ")("}},
		{`root ::= . "\n" "\x41\u00e9\U0001F600"`, []string{"é\nAé😀", "\n\nAé😀"}, []string{"\nAé😀"}},
		{"root ::= (\n  \"a\" |\n  \"b\"\n)", []string{"a", "b"}, []string{"ab"}},
		{`root ::= [\]\-\\]`, []string{"]", "-", `\`}, []string{"a"}},
	} {
		g, err := Parse(c.grammar)
		if err != nil {
			t.Errorf("%q: %v", c.grammar, err)
			continue
		}
		for _, s := range c.yes {
			if !accepts(t, g, s) {
				t.Errorf("%q does not accept %q", c.grammar, s)
			}
		}
		for _, s := range c.no {
			if accepts(t, g, s) {
				t.Errorf("%q accepts %q", c.grammar, s)
			}
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct{ grammar, want string }{
		{`root ::= foo`, `undefined rule "foo"`},
		{`item ::= "a"`, "no root rule"},
		{`root ::= root "a"`, "left-recursive"},
		{"root ::= a\na ::= b? a \"x\"\nb ::= \"y\"", "left-recursive"},
		{`root ::= "a`, "unterminated string"},
		{`root ::= [a`, "unterminated character class"},
		{`root ::= "a"{3,1}`, "below the minimum"},
		{`root ::= "a"{5000}`, "limit"},
		{`root ::= "\q"`, "unknown escape"},
		{`root ::= <hello>`, "token references"},
		{"root ::= \"a\"\nroot ::= \"b\"", "defined twice"},
		{`root ::= * "a"`, "nothing before it"},
		{`root ::= ("a"`, "expecting )"},
		{`root = "a"`, "expecting ::="},
		{"root ::= \"\\xZZ\"", "hex"},
	} {
		_, err := Parse(c.grammar)
		if err == nil || !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want an error with %q", c.grammar, err, c.want)
		}
	}
}

func TestMask(t *testing.T) {
	toks := fakeTokens{"a", "b", "ab", "ba", "{", "}", "é", "\xc3", "\xa9", "\xff", "aé", "</s>"}
	g, err := Parse(`root ::= ("a" | "é")+ "b"?`)
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewMatcher(g, NewVocab(toks))
	if err != nil {
		t.Fatal(err)
	}
	allowed := func() string {
		l := make([]float32, len(toks))
		if _, err := m.Apply(l); err != nil {
			t.Fatal(err)
		}
		var s []string
		for i, x := range l {
			if !math.IsInf(float64(x), -1) {
				s = append(s, toks[i])
			}
		}
		return strings.Join(s, " ")
	}
	steps := []struct {
		accept int32
		want   string
	}{
		{-1, "a ab é \xc3 aé"},
		{0, "a b ab é \xc3 aé </s>"},
		{7, "\xa9"},
		{8, "a b ab é \xc3 aé </s>"},
		{1, "</s>"},
		{11, ""},
	}
	for i, s := range steps {
		if s.accept >= 0 {
			if err := m.Accept(s.accept); err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
		}
		if got := allowed(); got != s.want {
			t.Errorf("step %d: allowed %q, want %q", i, got, s.want)
		}
	}
	if !m.Done() {
		t.Error("not done after EOS")
	}
	m2, _ := NewMatcher(g, NewVocab(toks))
	if err := m2.Accept(11); !errors.Is(err, ErrRejected) {
		t.Errorf("EOS before complete: %v", err)
	}
	if err := m2.Accept(4); !errors.Is(err, ErrRejected) {
		t.Errorf("'{': %v", err)
	}
	for id, want := range map[int32]bool{0: true, 1: false, 2: true, 3: false, 9: false, 11: false} {
		if got := m2.Allowed(id); got != want {
			t.Errorf("Allowed(%q) = %v", toks[id], got)
		}
	}
}

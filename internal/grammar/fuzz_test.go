package grammar

import (
	"errors"
	"testing"
)

// FuzzParse: any text either parses or fails with ErrSyntax; a grammar
// that parses can be run over any input without panicking.
func FuzzParse(f *testing.F) {
	for _, s := range []string{`root ::= "a" | [b-c]+ x?` + "\nx ::= (\"y\" .){1,3}", `root ::= [^\x00-\x1F"]*`, "root ::= \"\\u00e9\" # c\n", JSONObjectGrammar()} {
		f.Add(s, []byte(`{"a": "é"}`))
	}
	voc := NewVocab(byteVocab())
	f.Fuzz(func(t *testing.T, text string, input []byte) {
		g, err := Parse(text)
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("error without ErrSyntax: %v", err)
			}
			return
		}
		m, err := NewMatcher(g, voc)
		if err != nil {
			if !errors.Is(err, ErrTooComplex) {
				t.Fatal(err)
			}
			return
		}
		logits := make([]float32, voc.N())
		if _, err := m.Apply(logits); err != nil && !errors.Is(err, ErrTooComplex) {
			t.Fatal(err)
		}
		for _, b := range input {
			if m.AcceptBytes([]byte{b}) != nil {
				break
			}
		}
		m.Complete()
	})
}

// FuzzFromJSONSchema: any document either compiles to a grammar that
// parses, or fails with a *SchemaError.
func FuzzFromJSONSchema(f *testing.F) {
	for _, s := range testSchemas {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, schema []byte) {
		text, err := FromJSONSchema(schema)
		if err != nil {
			var se *SchemaError
			if !errors.As(err, &se) {
				t.Fatalf("error not a SchemaError: %v", err)
			}
			return
		}
		if _, err := Parse(text); err != nil {
			t.Fatalf("compiled grammar does not parse: %v\n%s", err, text)
		}
	})
}

package server

import (
	"testing"
)

// TestParseOpenAIEmbed: each accepted input shape and each refusal,
// naming the field.
func TestParseOpenAIEmbed(t *testing.T) {
	for _, c := range []struct {
		body          string
		texts, tokens int
		base64        bool
		param         string // "" : accepted
	}{
		{`{"model":"m","input":"a"}`, 1, 0, false, ""},
		{`{"model":"m","input":["a","b"],"encoding_format":"base64","user":"u"}`, 2, 0, true, ""},
		{`{"model":"m","input":[1,2,3]}`, 0, 1, false, ""},
		{`{"model":"m","input":[[1],[2,3]],"encoding_format":"float"}`, 0, 2, false, ""},
		{`{"model":"m","input":""}`, 0, 0, false, "input"},
		{`{"model":"m","input":[]}`, 0, 0, false, "input"},
		{`{"model":"m","input":[[]]}`, 0, 0, false, "input"},
		{`{"model":"m","input":["a",1]}`, 0, 0, false, "input"},
		{`{"model":"m","input":[1.5]}`, 0, 0, false, "input"},
		{`{"model":"m","input":null}`, 0, 0, false, "input"},
		{`{"model":"m"}`, 0, 0, false, "input"},
		{`{"input":"a"}`, 0, 0, false, "model"},
		{`{"model":"","input":"a"}`, 0, 0, false, "model"},
		{`{"model":"m","input":"a","encoding_format":"x"}`, 0, 0, false, "encoding_format"},
		{`{"model":"m","input":"a","dimensions":8}`, 0, 0, false, "dimensions"},
		{`{"model":"m","input":"a","extra":1}`, 0, 0, false, "extra"},
	} {
		req, b64, e := parseOpenAIEmbed([]byte(c.body))
		switch {
		case c.param != "" && (e == nil || e.param != c.param || e.status != 400):
			t.Errorf("%s: %+v, want a 400 on %s", c.body, e, c.param)
		case c.param == "" && e != nil:
			t.Errorf("%s: %v", c.body, e)
		case c.param == "" && (len(req.texts) != c.texts || len(req.tokens) != c.tokens || b64 != c.base64 || !req.normalize):
			t.Errorf("%s: %+v base64 %v", c.body, req, b64)
		}
	}
}

// FuzzParseEmbed: the parsers never panic, and what they accept has
// a model and only non-empty inputs, at most maxEmbedInputs of them.
func FuzzParseEmbed(f *testing.F) {
	for _, s := range []string{`{"model":"m","input":"a"}`, `{"model":"m","input":[[1,2],[3]]}`, `{"model":"m","input":["a","b"]}`,
		`{"model":"m","prompt":"p"}`, `{"model":"m","input":"a","truncate":false,"options":{}}`, `[`, `{"input":[[[1]]]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		check := func(req *embedReq) {
			if req.model == "" || (req.texts == nil && req.tokens == nil) || len(req.texts)+len(req.tokens) > maxEmbedInputs {
				t.Fatalf("accepted %q: %+v", body, req)
			}
			for _, s := range req.texts {
				if s == "" {
					t.Fatalf("accepted an empty text: %q", body)
				}
			}
			for _, ids := range req.tokens {
				if len(ids) == 0 {
					t.Fatalf("accepted an empty token array: %q", body)
				}
			}
		}
		if req, _, e := parseOpenAIEmbed(body); e == nil {
			check(req)
		}
		for _, legacy := range []bool{false, true} {
			if req, e := parseOllamaEmbed(body, legacy); e == nil {
				check(req)
			}
		}
	})
}

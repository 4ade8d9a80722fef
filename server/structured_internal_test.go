package server

import (
	"strings"
	"testing"

	"github.com/realmrt/realm/internal/grammar"
)

// matches reports whether text is a whole sentence of the grammar.
func matches(t *testing.T, text, g string) bool {
	t.Helper()
	p, err := grammar.Parse(g)
	if err != nil {
		t.Fatal(err)
	}
	m, err := grammar.NewMatcher(p, grammar.NewVocab(noTokens{}))
	if err != nil {
		t.Fatal(err)
	}
	return m.AcceptBytes([]byte(text)) == nil && m.Complete()
}

func TestToolGrammar(t *testing.T) {
	tools := []byte(`[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}},` +
		`{"type":"function","function":{"name":"ping"}}]`)
	for _, c := range []struct {
		format, force string
		yes, no       []string
	}{
		{toolsHermes, "*", []string{"<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>", "<tool_call>\n{\"name\": \"ping\", \"arguments\": {}}\n</tool_call>"},
			[]string{`{"name": "ping", "arguments": {}}`, "<tool_call>\n{\"name\": \"other\", \"arguments\": {}}\n</tool_call>", "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {}}\n</tool_call>"}},
		{toolsHermes, "ping", []string{"<tool_call>\n{\"name\": \"ping\", \"arguments\": {\"x\": 1}}\n</tool_call>"}, []string{"<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>"}},
		{toolsLlama3, "get_weather", []string{`{"name": "get_weather", "parameters": {"city": "Paris"}}`}, []string{`{"name": "get_weather", "arguments": {"city": "Paris"}}`}},
		{toolsMistral, "*", []string{`[{"name": "ping", "arguments": {}}]`}, []string{`{"name": "ping", "arguments": {}}`}},
	} {
		g, e := toolGrammar(tools, c.force, c.format)
		if e != nil {
			t.Fatalf("%s %s: %v", c.format, c.force, e)
		}
		for _, s := range c.yes {
			if !matches(t, s, g) {
				t.Errorf("%s %s: does not match %q", c.format, c.force, s)
			}
			if _, calls := parseToolCalls(s, c.format, toolNames(tools)); len(calls) != 1 {
				t.Errorf("%s: %q does not parse back into one call", c.format, s)
			}
		}
		for _, s := range c.no {
			if matches(t, s, g) {
				t.Errorf("%s %s: matches %q", c.format, c.force, s)
			}
		}
	}
	if _, e := toolGrammar(tools, "*", ""); e == nil || e.param != "tool_choice" {
		t.Errorf("no format: %v", e)
	}
	bad := []byte(`[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"a":{"type":"string"}}}}},{"type":"function","function":{"name":"g","parameters":{"type":"string","pattern":"x"}}}]`)
	if _, e := toolGrammar(bad, "*", toolsHermes); e == nil || e.param != "tools[1].function.parameters" || !strings.Contains(e.message, "pattern") || e.code != "unsupported_json_schema" {
		t.Errorf("unsupported keyword: %+v", e)
	}
}

func TestParseStructured(t *testing.T) {
	for _, c := range []struct {
		rf, gr   string
		param    string // "" : no error
		matching string // a sentence of the result ("" : no grammar)
	}{
		{`{"type":"text"}`, "", "", ""},
		{`{"type":"json_object"}`, "", "", `{"a": [1]}`},
		{`{"type":"json_schema","json_schema":{"name":"x","strict":true,"schema":{"type":"integer"}}}`, "", "", `42`},
		{"", `"root ::= \"a\"+"`, "", "aaa"},
		{`{"type":"json_schema"}`, "", "response_format.json_schema.schema", ""},
		{`{"type":"json_schema","json_schema":{"schema":{"type":"integer","multipleOf":2}}}`, "", "response_format.json_schema.schema", ""},
		{`{"type":"yaml"}`, "", "response_format.type", ""},
		{`"json"`, "", "response_format", ""},
		{"", `"root ::= x"`, "grammar", ""},
		{"", `42`, "grammar", ""},
		{`{"type":"json_object"}`, `"root ::= \"a\""`, "grammar", ""},
	} {
		g, e := parseStructured(rawRef(c.rf), rawRef(c.gr))
		switch {
		case c.param != "":
			if e == nil || e.param != c.param || e.status != 400 {
				t.Errorf("%s %s: got %+v, want a 400 about %s", c.rf, c.gr, e, c.param)
			}
		case e != nil:
			t.Errorf("%s %s: %v", c.rf, c.gr, e)
		case c.matching == "":
			if g != "" {
				t.Errorf("%s: grammar %q", c.rf, g)
			}
		case !matches(t, c.matching, g):
			t.Errorf("%s %s: %q does not match", c.rf, c.gr, c.matching)
		}
	}
}

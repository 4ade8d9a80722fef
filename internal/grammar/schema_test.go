package grammar

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

// byteVocab is a vocabulary of every single byte plus some longer
// pieces, so that every text is reachable and multi-byte tokens are
// exercised; the last token is EOS.
func byteVocab() fakeTokens {
	var v fakeTokens
	for b := 0; b < 256; b++ {
		v = append(v, string([]byte{byte(b)}))
	}
	v = append(v, `{"`, `":`, `",`, `"}`, `true`, `false`, `null`, ` "`, `12`, `é`, `€`, `ab`, `\u00e9`, `\"`, `], `, `}]`, "</s>")
	return v
}

// walk generates a random sentence of g token by token through the
// mask, preferring tokens that close something so that it ends.
func walk(t *testing.T, m *Matcher, v fakeTokens, rng *rand.Rand) string {
	t.Helper()
	var out strings.Builder
	logits := make([]float32, len(v))
	for step := 0; step < 4000; step++ {
		for i := range logits {
			logits[i] = 0
		}
		n, err := m.Apply(logits)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Fatalf("no token allowed after %q", out.String())
		}
		var allowed, closers []int32
		for i, l := range logits {
			if l == 0 {
				allowed = append(allowed, int32(i))
				if strings.ContainsAny(v[i], `"}],0123456789`) || i == len(v)-1 {
					closers = append(closers, int32(i))
				}
			}
		}
		pick := allowed
		if len(closers) > 0 && rng.IntN(4) != 0 {
			pick = closers
		}
		id := pick[rng.IntN(len(pick))]
		if err := m.Accept(id); err != nil {
			t.Fatalf("accepting an allowed token %q after %q: %v", v[id], out.String(), err)
		}
		if int(id) == len(v)-1 {
			return out.String()
		}
		out.WriteString(v[id])
	}
	t.Fatalf("no end after 4000 tokens: %q", out.String())
	return ""
}

// validate checks a decoded JSON value against the schema subset.
func validate(t *testing.T, root, s map[string]any, v any) bool {
	if r, ok := s["$ref"].(string); ok {
		if r == "#" {
			return validate(t, root, root, v)
		}
		name := r[strings.LastIndex(r, "/")+1:]
		defs, _ := root["$defs"].(map[string]any)
		return validate(t, root, defs[name].(map[string]any), v)
	}
	if c, ok := s["const"]; ok {
		return jsonEq(c, v)
	}
	if e, ok := s["enum"].([]any); ok {
		for _, x := range e {
			if jsonEq(x, v) {
				return true
			}
		}
		return false
	}
	for _, kw := range []string{"anyOf", "oneOf"} {
		if alts, ok := s[kw].([]any); ok {
			n := 0
			for _, a := range alts {
				if validate(t, root, a.(map[string]any), v) {
					n++
				}
			}
			return n > 0 && (kw == "anyOf" || n == 1)
		}
	}
	types := []string{}
	switch ty := s["type"].(type) {
	case string:
		types = append(types, ty)
	case []any:
		for _, x := range ty {
			types = append(types, x.(string))
		}
	}
	if len(types) == 0 {
		return true
	}
	for _, ty := range types {
		if validateType(t, root, s, ty, v) {
			return true
		}
	}
	return false
}

func validateType(t *testing.T, root, s map[string]any, ty string, v any) bool {
	num := func(k string) (int, bool) {
		f, ok := s[k].(float64)
		return int(f), ok
	}
	switch ty {
	case "null":
		return v == nil
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "number":
		_, ok := v.(json.Number)
		return ok
	case "integer":
		n, ok := v.(json.Number)
		return ok && !strings.ContainsAny(string(n), ".eE")
	case "string":
		x, ok := v.(string)
		if !ok {
			return false
		}
		l := utf8.RuneCountInString(x)
		if n, ok := num("minLength"); ok && l < n {
			return false
		}
		if n, ok := num("maxLength"); ok && l > n {
			return false
		}
		return true
	case "array":
		a, ok := v.([]any)
		if !ok {
			return false
		}
		if n, ok := num("minItems"); ok && len(a) < n {
			return false
		}
		if n, ok := num("maxItems"); ok && len(a) > n {
			return false
		}
		if it, ok := s["items"].(map[string]any); ok {
			for _, x := range a {
				if !validate(t, root, it, x) {
					return false
				}
			}
		}
		return true
	case "object":
		o, ok := v.(map[string]any)
		if !ok {
			return false
		}
		props, _ := s["properties"].(map[string]any)
		req, _ := s["required"].([]any)
		for _, r := range req {
			if _, ok := o[r.(string)]; !ok {
				return false
			}
		}
		for k, x := range o {
			ps, ok := props[k].(map[string]any)
			if !ok {
				if s["additionalProperties"] == false {
					return false
				}
				if a, ok := s["additionalProperties"].(map[string]any); ok && !validate(t, root, a, x) {
					return false
				}
				continue
			}
			if !validate(t, root, ps, x) {
				return false
			}
		}
		return true
	}
	t.Fatalf("type %q", ty)
	return false
}

func jsonEq(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

func decodeNum(s string) (any, error) {
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if d.More() {
		return nil, errors.New("trailing data")
	}
	return v, nil
}

var testSchemas = []string{
	`{"type":"object","properties":{"name":{"type":"string","maxLength":6},"age":{"type":"integer"},"ok":{"type":"boolean"}},"required":["name","age","ok"],"additionalProperties":false}`,
	`{"type":"object","properties":{"a":{"type":"number"},"b":{"type":"null"},"c":{"enum":["x",1,null,{"k":[true]}]}},"required":["c"]}`,
	`{"type":"array","items":{"type":"integer"},"minItems":2,"maxItems":4}`,
	`{"type":"array","items":{"const":"z"},"maxItems":1}`,
	`{"anyOf":[{"type":"string","minLength":2,"maxLength":3},{"type":"array","maxItems":2,"items":{"type":"boolean"}}]}`,
	`{"type":["integer","null"]}`,
	`{"$defs":{"node":{"type":"object","properties":{"v":{"type":"integer"},"next":{"anyOf":[{"$ref":"#/$defs/node"},{"type":"null"}]}},"required":["v","next"],"additionalProperties":false}},"$ref":"#/$defs/node"}`,
	`{"type":"object","additionalProperties":{"type":"integer"},"title":"a map","description":"ints"}`,
	`{"type":"object","properties":{"s":{"type":"string"},"o":{"type":"object"},"l":{"type":"array"}},"required":["s","o","l"]}`,
	`{"oneOf":[{"type":"boolean"},{"type":"string","maxLength":1}]}`,
	`{}`,
	`true`,
}

// TestSchemaRandomWalks generates random outputs through the mask for
// each schema and checks that every one parses and validates.
func TestSchemaRandomWalks(t *testing.T) {
	v := byteVocab()
	voc := NewVocab(v)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, sch := range testSchemas {
		text, err := FromJSONSchema([]byte(sch))
		if err != nil {
			t.Fatalf("%s: %v", sch, err)
		}
		g, err := Parse(text)
		if err != nil {
			t.Fatalf("%s: %v\n%s", sch, err, text)
		}
		var root map[string]any
		json.Unmarshal([]byte(sch), &root)
		if root == nil {
			root = map[string]any{}
		}
		for i := 0; i < 40; i++ {
			m, err := NewMatcher(g, voc)
			if err != nil {
				t.Fatal(err)
			}
			out := walk(t, m, v, rng)
			val, err := decodeNum(out)
			if err != nil {
				t.Fatalf("%s: output %q does not parse: %v", sch, out, err)
			}
			if !validate(t, root, root, val) {
				t.Fatalf("%s: output %q does not validate", sch, out)
			}
		}
	}
}

func TestSchemaAcceptsAndRejects(t *testing.T) {
	for _, c := range []struct {
		schema  string
		yes, no []string
	}{
		{testSchemas[0], []string{`{"name":"bob","age":-12,"ok":true}`, `{ "name": "", "age": 0, "ok": false }`},
			[]string{`{"name":"bobbbbb","age":1,"ok":true}`, `{"age":1,"name":"b","ok":true}`, `{"name":"b","age":1}`, `{"name":"b","age":1.5,"ok":true}`, `{"name":"b","age":01,"ok":true}`}},
		{testSchemas[1], []string{`{"c":"x"}`, `{"a":1.5e3,"c":null}`, `{"a":0,"b":null,"c":{"k":[true]}}`}, []string{`{}`, `{"c":"y"}`, `{"c":1,"a":2}`}},
		{testSchemas[2], []string{`[1,2]`, `[1, 2, 3, 4]`}, []string{`[1]`, `[1,2,3,4,5]`, `[1,"a"]`}},
		{testSchemas[6], []string{`{"v":1,"next":{"v":2,"next":null}}`}, []string{`{"v":1}`, `{"v":1,"next":{"v":2}}`}},
		{`{"type":"string"}`, []string{`"a\"b\\c\u00e9\n"`, `"é€😀"`}, []string{`"a`, "\"\x01\"", `"\q"`}},
		{`{"type":"object"}`, []string{`{}`, `{"a":[1,{"b":null}],"c":"d"}`}, []string{`[]`, `{"a"}`}},
	} {
		text, err := FromJSONSchema([]byte(c.schema))
		if err != nil {
			t.Fatal(err)
		}
		g, err := Parse(text)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range c.yes {
			if !accepts(t, g, s) {
				t.Errorf("%s does not accept %s\n%s", c.schema, s, text)
			}
		}
		for _, s := range c.no {
			if accepts(t, g, s) {
				t.Errorf("%s accepts %s", c.schema, s)
			}
		}
	}
	g, _ := Parse(JSONObjectGrammar())
	if !accepts(t, g, `{"a": [1, 2.5, "x", true, null, {}]}`) || accepts(t, g, `[1]`) || accepts(t, g, `"x"`) {
		t.Error("json_object grammar")
	}
}

func TestSchemaErrors(t *testing.T) {
	for _, c := range []struct{ schema, keyword, want string }{
		{`{"type":"string","pattern":"^a$"}`, "pattern", `"pattern" is not supported`},
		{`{"type":"object","properties":{"x":{"type":"string","format":"date"}}}`, "format", "#/properties/x"},
		{`{"type":"integer","minimum":3}`, "minimum", "not supported"},
		{`{"allOf":[{}]}`, "allOf", "not supported"},
		{`{"type":"array","prefixItems":[]}`, "prefixItems", "not supported"},
		{`{"type":"array","items":[{"type":"string"}]}`, "items", "tuple"},
		{`{"type":"strin"}`, "type", `unknown type "strin"`},
		{`{"$ref":"#/$defs/nope"}`, "$ref", "no such definition"},
		{`{"$ref":"http://x/y"}`, "$ref", "not supported"},
		{`{"type":"object","required":["a"],"properties":{"b":{}}}`, "required", `"a" is not in properties`},
		{`{"type":"array","minItems":3,"maxItems":2}`, "maxItems", "below"},
		{`{"type":"string","maxLength":-1}`, "maxLength", "non-negative"},
		{`{"enum":[]}`, "enum", "non-empty"},
		{`{"$ref":"#"}`, "", "left-recursive"},
		{`[1]`, "", "must be an object"},
		{`{"a":`, "", "not valid JSON"},
		{`{"type":"string"} x`, "", "trailing"},
		{`false`, "", "must be an object"},
	} {
		_, err := FromJSONSchema([]byte(c.schema))
		var se *SchemaError
		if !errors.As(err, &se) || se.Keyword != c.keyword || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v (keyword %q), want %q about %q", c.schema, err, func() string {
				if se != nil {
					return se.Keyword
				}
				return ""
			}(), c.want, c.keyword)
		}
	}
}

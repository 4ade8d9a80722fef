package grammar

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// The JSON-schema subset FromJSONSchema compiles (everything else is an
// error naming the keyword, never silently ignored):
//
//   - type: object, array, string, number, integer, boolean, null, or a
//     list of them; no type: any JSON value (within the other keywords)
//   - object: properties (in the schema's order), required,
//     additionalProperties (false, true or a schema: the output only ever
//     holds the declared properties, which validates either way; an
//     object with no properties and an additionalProperties schema is a
//     map of that schema)
//   - array: items, minItems, maxItems
//   - string: minLength, maxLength
//   - enum, const (any JSON values)
//   - anyOf, oneOf (oneOf is compiled as anyOf: give it disjoint branches)
//   - $ref to "#", "#/$defs/NAME" or "#/definitions/NAME" ($defs,
//     definitions); recursion through objects and arrays is allowed
//   - annotations, ignored: title, description, default, examples,
//     $schema, $id, $comment, deprecated, readOnly, writeOnly
//
// Whitespace between tokens is at most one space or a newline and 20
// blanks; numbers have at most 16 integer and 16 fraction digits and a
// two-digit exponent (every number fits a float64), so every value of a
// bounded schema ends in a bounded number of tokens.

// SchemaError is an invalid or unsupported JSON schema.
type SchemaError struct {
	Path    string // JSON pointer of the offending schema, "" for the root
	Keyword string // the keyword at fault, when there is one
	Msg     string
}

func (e *SchemaError) Error() string {
	return fmt.Sprintf("json schema #%s: %s", e.Path, e.Msg)
}

// MaxSchemaBytes caps a schema document.
const MaxSchemaBytes = 256 << 10

// maxSchemaDepth caps the nesting of a schema document.
const maxSchemaDepth = 64

// annotation keywords carry no constraint.
var annotations = map[string]bool{"title": true, "description": true, "default": true, "examples": true,
	"$schema": true, "$id": true, "$comment": true, "deprecated": true, "readOnly": true, "writeOnly": true}

// supported keywords (beyond annotations).
var supported = map[string]bool{"type": true, "properties": true, "required": true, "additionalProperties": true,
	"items": true, "minItems": true, "maxItems": true, "minLength": true, "maxLength": true, "enum": true,
	"const": true, "anyOf": true, "oneOf": true, "$ref": true, "$defs": true, "definitions": true}

// object is a JSON object that keeps its keys' order.
type object struct {
	keys []string
	vals map[string]any
}

// decodeOrdered decodes JSON with objects as *object (numbers as
// json.Number).
func decodeOrdered(dec *json.Decoder, depth int) (any, error) {
	if depth > maxSchemaDepth {
		return nil, &SchemaError{Msg: fmt.Sprintf("nested deeper than %d levels", maxSchemaDepth)}
	}
	t, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := t.(type) {
	case json.Delim:
		switch t {
		case '{':
			o := &object{vals: map[string]any{}}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return nil, err
				}
				key := k.(string)
				v, err := decodeOrdered(dec, depth+1)
				if err != nil {
					return nil, err
				}
				if _, dup := o.vals[key]; dup {
					return nil, &SchemaError{Msg: fmt.Sprintf("duplicate key %q", key)}
				}
				o.keys = append(o.keys, key)
				o.vals[key] = v
			}
			_, err := dec.Token()
			return o, err
		case '[':
			var a []any
			for dec.More() {
				v, err := decodeOrdered(dec, depth+1)
				if err != nil {
					return nil, err
				}
				a = append(a, v)
			}
			_, err := dec.Token()
			return a, err
		}
		return nil, fmt.Errorf("unexpected %v", t)
	default:
		return t, nil
	}
}

// compiler turns a schema into GBNF rules.
type compiler struct {
	root  *object
	rules map[string]string
	order []string
	names map[string]int
	refs  map[string]string // "$ref" target → rule name
}

// FromJSONSchema compiles a JSON schema (the supported subset is listed
// above) to a GBNF grammar whose sentences are the JSON texts that
// validate against it. An unsupported keyword or a malformed schema is
// a *SchemaError.
func FromJSONSchema(schema []byte) (string, error) {
	b := NewBuilder()
	expr, err := b.Schema(schema)
	if err != nil {
		return "", err
	}
	return b.Grammar(expr)
}

// Builder assembles one grammar from several JSON schemas and rules of
// the caller's own (a tool call: fixed text around each tool's
// arguments). Generated rule names start with "s-"; the primitives
// (space, string, value, …) are defined once.
type Builder struct {
	c *compiler
}

// NewBuilder returns an empty Builder.
func NewBuilder() *Builder {
	c := &compiler{rules: map[string]string{}, names: map[string]int{}}
	c.primitives()
	return &Builder{c: c}
}

// Schema compiles a JSON schema and returns a GBNF expression for its
// JSON values (followed by optional space). $refs resolve within this
// schema.
func (b *Builder) Schema(schema []byte) (string, error) {
	if len(schema) > MaxSchemaBytes {
		return "", &SchemaError{Msg: fmt.Sprintf("%d bytes is more than the limit of %d", len(schema), MaxSchemaBytes)}
	}
	dec := json.NewDecoder(bytes.NewReader(schema))
	dec.UseNumber()
	v, err := decodeOrdered(dec, 0)
	if err != nil {
		var se *SchemaError
		if errors.As(err, &se) {
			return "", se
		}
		return "", &SchemaError{Msg: "not valid JSON: " + err.Error()}
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", &SchemaError{Msg: "trailing data after the schema"}
	}
	root, ok := v.(*object)
	if !ok {
		if b, ok := v.(bool); ok && b {
			root = &object{vals: map[string]any{}} // true: any value
		} else {
			return "", &SchemaError{Msg: "a schema must be an object"}
		}
	}
	c := b.c
	c.root, c.refs = root, map[string]string{}
	return c.visit(root, "", "root")
}

// Rule adds the rule name ::= body (name must not start with "s-" nor
// be a primitive's).
func (b *Builder) Rule(name, body string) { b.c.add(name, body) }

// Grammar returns the grammar with root ::= rootExpr and every rule
// added, checked by Parse.
func (b *Builder) Grammar(rootExpr string) (string, error) {
	var sb strings.Builder
	sb.WriteString("root ::= " + rootExpr + "\n")
	for _, n := range b.c.order {
		if n != "root" {
			sb.WriteString(n + " ::= " + b.c.rules[n] + "\n")
		}
	}
	text := sb.String()
	if _, err := Parse(text); err != nil {
		return "", &SchemaError{Msg: "the schema does not compile: " + err.Error()}
	}
	return text, nil
}

// Literal returns the GBNF string literal matching exactly s.
func Literal(s string) string { return literal(s) }

// JSONObjectGrammar is the GBNF grammar of any JSON object (OpenAI's
// response_format json_object).
func JSONObjectGrammar() string {
	c := &compiler{rules: map[string]string{}, names: map[string]int{}}
	c.primitives()
	var b strings.Builder
	b.WriteString("root ::= object\n")
	for _, n := range c.order {
		b.WriteString(n + " ::= " + c.rules[n] + "\n")
	}
	return b.String()
}

// primitives adds the rules every schema may use.
func (c *compiler) primitives() {
	for _, r := range [][2]string{
		{"space", `| " " | "\n" [ \t]{0,20}`},
		{"boolean", `("true" | "false") space`},
		{"null", `"null" space`},
		{"integer", `"-"? ("0" | [1-9] [0-9]{0,15}) space`},
		{"number", `"-"? ("0" | [1-9] [0-9]{0,15}) ("." [0-9]{1,16})? ([eE] [-+]? [0-9]{1,2})? space`},
		{"char", `[^"\\\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})`},
		{"string", `"\"" char* "\"" space`},
		{"value", `object | array | string | number | boolean | null`},
		{"object", `"{" space (string ":" space value ("," space string ":" space value)*)? "}" space`},
		{"array", `"[" space (value ("," space value)*)? "]" space`},
	} {
		c.add(r[0], r[1])
	}
}

func (c *compiler) add(name, body string) {
	if _, ok := c.rules[name]; !ok {
		c.order = append(c.order, name)
	}
	c.rules[name] = body
}

var nonWord = regexp.MustCompile(`[^a-zA-Z0-9]+`)

// fresh returns an unused rule name derived from hint.
func (c *compiler) fresh(hint string) string {
	base := strings.Trim(nonWord.ReplaceAllString(hint, "-"), "-")
	if base == "" {
		base = "r"
	}
	if len(base) > 40 {
		base = base[:40]
	}
	base = "s-" + base
	for {
		c.names[base]++
		n := base + "-" + strconv.Itoa(c.names[base])
		if _, ok := c.rules[n]; !ok {
			c.rules[n] = "" // reserved
			c.order = append(c.order, n)
			return n
		}
	}
}

// literal is the GBNF string literal of s.
func literal(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// jsonText is the compact JSON of a decoded value.
func jsonText(v any) string {
	var b strings.Builder
	var write func(v any)
	write = func(v any) {
		switch v := v.(type) {
		case *object:
			b.WriteByte('{')
			for i, k := range v.keys {
				if i > 0 {
					b.WriteByte(',')
				}
				kb, _ := json.Marshal(k)
				b.Write(kb)
				b.WriteByte(':')
				write(v.vals[k])
			}
			b.WriteByte('}')
		case []any:
			b.WriteByte('[')
			for i, x := range v {
				if i > 0 {
					b.WriteByte(',')
				}
				write(x)
			}
			b.WriteByte(']')
		case json.Number:
			b.WriteString(v.String())
		default:
			x, _ := json.Marshal(v)
			b.Write(x)
		}
	}
	write(v)
	return b.String()
}

// valueLiteral is the grammar of exactly the JSON value v (compact,
// then optional space).
func valueLiteral(v any) string { return literal(jsonText(v)) + " space" }

func (c *compiler) errAt(path, kw, format string, args ...any) error {
	return &SchemaError{Path: path, Keyword: kw, Msg: fmt.Sprintf(format, args...)}
}

// count reads a non-negative integer keyword.
func (c *compiler) count(s *object, path, kw string) (int, bool, error) {
	v, ok := s.vals[kw]
	if !ok {
		return 0, false, nil
	}
	n, isNum := v.(json.Number)
	i, err := strconv.Atoi(string(n))
	if !isNum || err != nil || i < 0 {
		return 0, false, c.errAt(path, kw, "%s must be a non-negative integer", kw)
	}
	if i > MaxRepetition {
		return 0, false, c.errAt(path, kw, "%s of %d is more than the supported %d", kw, i, MaxRepetition)
	}
	return i, true, nil
}

// visit returns a GBNF expression for schema v at path.
func (c *compiler) visit(v any, path, hint string) (string, error) {
	if b, ok := v.(bool); ok {
		if b {
			return "value", nil
		}
		return "", c.errAt(path, "", "the schema false matches nothing")
	}
	s, ok := v.(*object)
	if !ok {
		return "", c.errAt(path, "", "a schema must be an object or a boolean")
	}
	for _, k := range s.keys {
		if !supported[k] && !annotations[k] {
			return "", c.errAt(path, k, "the keyword %q is not supported", k)
		}
	}
	if ref, ok := s.vals["$ref"]; ok {
		if len(s.keys) > 1 {
			for _, k := range s.keys {
				if k != "$ref" && !annotations[k] && k != "$defs" && k != "definitions" {
					return "", c.errAt(path, k, "%q beside $ref is not supported", k)
				}
			}
		}
		r, _ := ref.(string)
		return c.ref(r, path)
	}
	if e, ok := s.vals["const"]; ok {
		return valueLiteral(e), nil
	}
	if e, ok := s.vals["enum"]; ok {
		list, ok := e.([]any)
		if !ok || len(list) == 0 {
			return "", c.errAt(path, "enum", "enum must be a non-empty array")
		}
		alts := make([]string, len(list))
		for i, x := range list {
			alts[i] = valueLiteral(x)
		}
		return "(" + strings.Join(alts, " | ") + ")", nil
	}
	for _, kw := range []string{"anyOf", "oneOf"} {
		if e, ok := s.vals[kw]; ok {
			list, ok := e.([]any)
			if !ok || len(list) == 0 {
				return "", c.errAt(path, kw, "%s must be a non-empty array of schemas", kw)
			}
			alts := make([]string, len(list))
			for i, x := range list {
				sub, err := c.visit(x, fmt.Sprintf("%s/%s/%d", path, kw, i), hint)
				if err != nil {
					return "", err
				}
				alts[i] = sub
			}
			return "(" + strings.Join(alts, " | ") + ")", nil
		}
	}
	var types []string
	switch t := s.vals["type"].(type) {
	case nil:
		if _, has := s.vals["type"]; has {
			return "", c.errAt(path, "type", "type must be a string or an array of strings")
		}
	case string:
		types = []string{t}
	case []any:
		for _, x := range t {
			n, ok := x.(string)
			if !ok {
				return "", c.errAt(path, "type", "type must be a string or an array of strings")
			}
			types = append(types, n)
		}
		if len(types) == 0 {
			return "", c.errAt(path, "type", "type must not be empty")
		}
	default:
		return "", c.errAt(path, "type", "type must be a string or an array of strings")
	}
	if types == nil {
		// No type: what the other keywords describe, else any value.
		switch {
		case s.vals["properties"] != nil || s.vals["additionalProperties"] != nil:
			types = []string{"object"}
		case s.vals["items"] != nil:
			types = []string{"array"}
		default:
			return "value", nil
		}
	}
	alts := make([]string, 0, len(types))
	for _, t := range types {
		var x string
		var err error
		switch t {
		case "object":
			x, err = c.object(s, path, hint)
		case "array":
			x, err = c.array(s, path, hint)
		case "string":
			x, err = c.str(s, path)
		case "number", "integer", "boolean", "null":
			x = t
		default:
			return "", c.errAt(path, "type", "unknown type %q", t)
		}
		if err != nil {
			return "", err
		}
		alts = append(alts, x)
	}
	if len(alts) == 1 {
		return alts[0], nil
	}
	return "(" + strings.Join(alts, " | ") + ")", nil
}

// ref compiles a $ref: one rule per target, so recursion works.
func (c *compiler) ref(r, path string) (string, error) {
	if n, ok := c.refs[r]; ok {
		return n, nil
	}
	var target any
	var name string
	switch {
	case r == "#":
		target, name = c.root, "root-ref"
	case strings.HasPrefix(r, "#/$defs/") || strings.HasPrefix(r, "#/definitions/"):
		i := strings.Index(r[2:], "/") + 2
		section, key := r[2:i], r[i+1:]
		key = strings.ReplaceAll(strings.ReplaceAll(key, "~1", "/"), "~0", "~")
		defs, _ := c.root.vals[section].(*object)
		if defs == nil || defs.vals[key] == nil {
			return "", c.errAt(path, "$ref", "$ref %q: no such definition", r)
		}
		target, name = defs.vals[key], key
	default:
		return "", c.errAt(path, "$ref", "$ref %q is not supported (only #, #/$defs/… and #/definitions/…)", r)
	}
	n := c.fresh(name)
	c.refs[r] = n
	body, err := c.visit(target, strings.TrimPrefix(r, "#"), name)
	if err != nil {
		return "", err
	}
	c.rules[n] = body
	return n, nil
}

func (c *compiler) object(s *object, path, hint string) (string, error) {
	var req map[string]bool
	if r, ok := s.vals["required"]; ok {
		list, ok := r.([]any)
		if !ok {
			return "", c.errAt(path, "required", "required must be an array of strings")
		}
		req = map[string]bool{}
		for _, x := range list {
			k, ok := x.(string)
			if !ok {
				return "", c.errAt(path, "required", "required must be an array of strings")
			}
			req[k] = true
		}
	}
	props, _ := s.vals["properties"].(*object)
	if _, has := s.vals["properties"]; has && props == nil {
		return "", c.errAt(path, "properties", "properties must be an object")
	}
	if props != nil {
		for k := range req {
			if _, ok := props.vals[k]; !ok {
				return "", c.errAt(path, "required", "required property %q is not in properties", k)
			}
		}
	}
	addl := s.vals["additionalProperties"]
	switch addl.(type) {
	case nil, bool, *object:
	default:
		return "", c.errAt(path, "additionalProperties", "additionalProperties must be a boolean or a schema")
	}
	if props == nil || len(props.keys) == 0 {
		if len(req) > 0 {
			return "", c.errAt(path, "required", "required properties need properties")
		}
		switch a := addl.(type) {
		case bool:
			if !a {
				return `"{" space "}" space`, nil
			}
		case *object:
			val, err := c.visit(a, path+"/additionalProperties", hint+"-value")
			if err != nil {
				return "", err
			}
			kv := `string ":" space ` + val
			return `"{" space (` + kv + ` ("," space ` + kv + `)*)? "}" space`, nil
		}
		return "object", nil
	}
	if a, ok := addl.(*object); ok {
		// Checked for support even though no extra property is written.
		if _, err := c.visit(a, path+"/additionalProperties", hint+"-extra"); err != nil {
			return "", err
		}
	}
	kvs := make([]string, len(props.keys))
	for i, k := range props.keys {
		val, err := c.visit(props.vals[k], path+"/properties/"+k, k)
		if err != nil {
			return "", err
		}
		kvs[i] = literal(jsonText(k)) + ` space ":" space ` + val
	}
	// tail(i, first): the properties from i on, none written yet when
	// first; an optional property may be left out.
	names := map[[2]int]string{}
	var tail func(i int, first bool) string
	tail = func(i int, first bool) string {
		if i == len(kvs) {
			return ""
		}
		key := [2]int{i, map[bool]int{true: 1}[first]}
		if n, ok := names[key]; ok {
			return n
		}
		sep := `"," space `
		if first {
			sep = ""
		}
		here := sep + kvs[i] + " " + tail(i+1, false)
		body := here
		if !req[props.keys[i]] {
			body = "(" + here + ") | " + orEmpty(tail(i+1, first))
		}
		n := c.fresh(hint + "-" + strconv.Itoa(i))
		c.rules[n] = body
		names[key] = n
		return n
	}
	return `"{" space ` + tail(0, true) + ` "}" space`, nil
}

func orEmpty(s string) string {
	if s == "" {
		return `""`
	}
	return s
}

func (c *compiler) array(s *object, path, hint string) (string, error) {
	item := "value"
	if it, ok := s.vals["items"]; ok {
		if _, isList := it.([]any); isList {
			return "", c.errAt(path, "items", "items as an array (tuple validation) is not supported")
		}
		x, err := c.visit(it, path+"/items", hint+"-item")
		if err != nil {
			return "", err
		}
		item = x
	}
	lo, _, err := c.count(s, path, "minItems")
	if err != nil {
		return "", err
	}
	hi, hasHi, err := c.count(s, path, "maxItems")
	if err != nil {
		return "", err
	}
	if hasHi && hi < lo {
		return "", c.errAt(path, "maxItems", "maxItems %d is below minItems %d", hi, lo)
	}
	if hasHi && hi == 0 {
		return `"[" space "]" space`, nil
	}
	n := c.fresh(hint + "-item")
	c.rules[n] = item
	more := `("," space ` + n + `)`
	var reps string
	first := max(lo, 1) - 1
	switch {
	case !hasHi:
		reps = fmt.Sprintf("%s{%d,}", more, first)
	default:
		reps = fmt.Sprintf("%s{%d,%d}", more, first, hi-1)
	}
	list := n + " " + reps
	if lo == 0 {
		list = "(" + list + ")?"
	}
	return `"[" space ` + list + ` "]" space`, nil
}

func (c *compiler) str(s *object, path string) (string, error) {
	lo, hasLo, err := c.count(s, path, "minLength")
	if err != nil {
		return "", err
	}
	hi, hasHi, err := c.count(s, path, "maxLength")
	if err != nil {
		return "", err
	}
	if !hasLo && !hasHi {
		return "string", nil
	}
	if hasHi && hi < lo {
		return "", c.errAt(path, "maxLength", "maxLength %d is below minLength %d", hi, lo)
	}
	if !hasHi {
		return fmt.Sprintf(`"\"" char{%d,} "\"" space`, lo), nil
	}
	return fmt.Sprintf(`"\"" char{%d,%d} "\"" space`, lo, hi), nil
}

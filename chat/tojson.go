package chat

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/ardanlabs/jinja"
)

// tojsonFilter is the name the template's tojson filter is rewritten to.
// The engine's own tojson(indent=N) goes through a Go map, which sorts
// the keys and escapes <, > and &; llama.cpp (like Python's json.dumps)
// keeps insertion order and writes those characters as they are, and
// Llama 3.x and Granite print tools with tojson(indent=4).
const tojsonFilter = "realm_tojson"

// rewriteTojson replaces the filter name tojson with tojsonFilter inside
// {{ }} and {% %} tags, outside string literals.
func rewriteTojson(src string) string {
	if !strings.Contains(src, "tojson") {
		return src
	}
	var b strings.Builder
	b.Grow(len(src) + 64)
	inTag := false
	var quote byte
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case !inTag:
			if c == '{' && i+1 < len(src) && (src[i+1] == '{' || src[i+1] == '%') {
				inTag = true
				b.WriteString(src[i : i+2])
				i++
				continue
			}
		case quote != 0:
			if c == '\\' && i+1 < len(src) {
				b.WriteString(src[i : i+2])
				i++
				continue
			}
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case (c == '}' || c == '%') && i+1 < len(src) && src[i+1] == '}':
			inTag = false
		case strings.HasPrefix(src[i:], "tojson") && !identByte(src, i-1) && !identByte(src, i+len("tojson")):
			b.WriteString(tojsonFilter)
			i += len("tojson") - 1
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

func identByte(s string, i int) bool {
	if i < 0 || i >= len(s) {
		return false
	}
	c := s[i]
	return c == '_' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// tojson is llama.cpp's tojson: keys in insertion order, indent
// (default none), separators (default ", " and ": ", or "," with an
// indent), ensure_ascii (default false).
func tojson(args []jinja.Value, kwargs map[string]jinja.Value) (jinja.Value, error) {
	if len(args) < 1 {
		return jinja.Undefined(), fmt.Errorf("tojson: no value")
	}
	arg := func(name string, pos int) jinja.Value {
		if v, ok := kwargs[name]; ok {
			return v
		}
		if pos < len(args) {
			return args[pos]
		}
		return jinja.Undefined()
	}
	indent := -1
	if v := arg("indent", 2); v.IsInt() {
		indent = int(v.AsInt())
		if indent < 0 || indent > 64 {
			return jinja.Undefined(), fmt.Errorf("tojson: indent %d out of range", indent)
		}
	}
	if v := arg("sort_keys", 4); v.IsTruthy() {
		return jinja.Undefined(), fmt.Errorf("tojson: sort_keys is not supported")
	}
	itemSep, keySep := ", ", ": "
	if indent >= 0 {
		itemSep = ","
	}
	if v := arg("separators", 3); v.IsList() {
		l := v.AsList()
		if l.Len() > 0 && l.Get(0).IsString() {
			itemSep = l.Get(0).AsString()
		}
		if l.Len() > 1 && l.Get(1).IsString() {
			keySep = l.Get(1).AsString()
		}
	}
	var b strings.Builder
	if err := writeJSON(&b, args[0], 0, indent, itemSep, keySep, 0); err != nil {
		return jinja.Undefined(), err
	}
	s := b.String()
	if arg("ensure_ascii", 1).IsTruthy() {
		s = ensureASCII(s)
	}
	return jinja.NewString(s), nil
}

func writeJSON(b *strings.Builder, v jinja.Value, level, indent int, itemSep, keySep string, depth int) error {
	if depth > maxJSONDepth {
		return fmt.Errorf("tojson: nested deeper than %d", maxJSONDepth)
	}
	pad := func(l int) {
		if indent > 0 {
			b.WriteString(strings.Repeat(" ", l*indent))
		}
	}
	nl := func() {
		if indent >= 0 {
			b.WriteByte('\n')
		}
	}
	switch {
	case v.IsNone(), v.IsUndefined():
		b.WriteString("null")
	case v.IsBool():
		b.WriteString(strconv.FormatBool(v.AsBool()))
	case v.IsInt():
		b.WriteString(strconv.FormatInt(v.AsInt(), 10))
	case v.IsFloat():
		b.WriteString(strconv.FormatFloat(v.AsFloat(), 'g', -1, 64))
	case v.IsString():
		writeJSONString(b, v.AsString())
	case v.IsList():
		l := v.AsList()
		b.WriteByte('[')
		if l.Len() > 0 {
			nl()
			for i, item := range l.Items {
				pad(level + 1)
				if err := writeJSON(b, item, level+1, indent, itemSep, keySep, depth+1); err != nil {
					return err
				}
				if i < l.Len()-1 {
					b.WriteString(itemSep)
				}
				nl()
			}
			pad(level)
		}
		b.WriteByte(']')
	case v.IsDict():
		d := v.AsDict()
		b.WriteByte('{')
		if d.Len() > 0 {
			nl()
			for i, k := range d.Keys {
				pad(level + 1)
				writeJSONString(b, k)
				b.WriteString(keySep)
				if err := writeJSON(b, d.Data[k], level+1, indent, itemSep, keySep, depth+1); err != nil {
					return err
				}
				if i < d.Len()-1 {
					b.WriteString(itemSep)
				}
				nl()
			}
			pad(level)
		}
		b.WriteByte('}')
	default:
		b.WriteString("null")
	}
	return nil
}

func writeJSONString(b *strings.Builder, s string) {
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if c < 0x20 {
				fmt.Fprintf(b, `\u%04x`, c)
			} else {
				b.WriteByte(c)
			}
		}
	}
	b.WriteByte('"')
}

// ensureASCII escapes every non-ASCII character as \uXXXX (UTF-16
// surrogate pairs above the BMP), as json.dumps(ensure_ascii=True).
func ensureASCII(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r < utf8.RuneSelf:
			b.WriteRune(r)
		case r > 0xFFFF:
			r -= 0x10000
			fmt.Fprintf(&b, `\u%04x\u%04x`, 0xD800+(r>>10), 0xDC00+(r&0x3FF))
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	return b.String()
}

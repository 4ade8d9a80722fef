package chat

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ardanlabs/jinja"
)

// state is the per-render budget shared by the globals the template
// calls: a cancelled render stops at its next call, and range() draws
// its items from a fixed allowance.
type state struct {
	stop      atomic.Bool
	rangeLeft int
	rangeMax  int
}

var errStopped = fmt.Errorf("%w: rendering was stopped", ErrTemplate)

// variables builds the template's global scope: what llama.cpp's
// common_chat_template_direct_apply passes, plus the globals it defines.
func (t *Template) variables(msgs []Message, in Input, now time.Time, st *state) (map[string]jinja.Value, error) {
	list := make([]jinja.Value, len(msgs))
	for i, m := range msgs {
		d := jinja.NewDict()
		d.AsDict().Set("role", jinja.NewString(m.Role))
		d.AsDict().Set("content", jinja.NewString(m.Content))
		if m.Name != "" {
			d.AsDict().Set("name", jinja.NewString(m.Name))
		}
		if len(bytes.TrimSpace(m.ToolCalls)) > 0 && string(bytes.TrimSpace(m.ToolCalls)) != "null" {
			calls, err := decodeOrdered(m.ToolCalls)
			if err != nil {
				return nil, fmt.Errorf("messages[%d].tool_calls: %w", i, err)
			}
			if !calls.IsList() {
				return nil, fmt.Errorf("messages[%d].tool_calls must be a JSON array", i)
			}
			d.AsDict().Set("tool_calls", calls)
		}
		if m.ToolCallID != "" {
			d.AsDict().Set("tool_call_id", jinja.NewString(m.ToolCallID))
		}
		list[i] = d
	}
	vars := map[string]jinja.Value{
		"messages":        jinja.NewList(list),
		"bos_token":       jinja.NewString(t.opt.BOS),
		"eos_token":       jinja.NewString(t.opt.EOS),
		"enable_thinking": jinja.NewBool(!in.DisableThinking),
		"date_string":     jinja.NewString(strftime("%d %b %Y", now)),
		"datetime":        jinja.NewString(strftime("%b %d %Y", now)),
		"raise_exception": jinja.NewCallable("raise_exception", func(args []jinja.Value, _ map[string]jinja.Value) (jinja.Value, error) {
			msg := "raise_exception called"
			if len(args) > 0 && args[0].IsString() {
				msg = args[0].AsString()
			}
			return jinja.Undefined(), &RaiseError{Message: msg}
		}),
		"strftime_now": jinja.NewCallable("strftime_now", func(args []jinja.Value, _ map[string]jinja.Value) (jinja.Value, error) {
			if st.stop.Load() {
				return jinja.Undefined(), errStopped
			}
			if len(args) != 1 || !args[0].IsString() {
				return jinja.Undefined(), fmt.Errorf("strftime_now: want one format string")
			}
			return jinja.NewString(strftime(args[0].AsString(), now)), nil
		}),
		tojsonFilter: jinja.NewCallable(tojsonFilter, tojson),
		"range": jinja.NewCallable("range", func(args []jinja.Value, _ map[string]jinja.Value) (jinja.Value, error) {
			return boundedRange(st, args)
		}),
	}
	if in.AddGenerationPrompt {
		// llama.cpp leaves it undefined when false.
		vars["add_generation_prompt"] = jinja.NewBool(true)
	}
	if len(bytes.TrimSpace(in.Tools)) > 0 && string(bytes.TrimSpace(in.Tools)) != "null" {
		tools, err := decodeOrdered(in.Tools)
		if err != nil {
			return nil, fmt.Errorf("tools: %w", err)
		}
		if !tools.IsList() {
			return nil, fmt.Errorf("tools must be a JSON array")
		}
		if tools.AsList().Len() > 0 {
			vars["tools"] = tools
		}
	}
	return vars, nil
}

func boundedRange(st *state, args []jinja.Value) (jinja.Value, error) {
	if st.stop.Load() {
		return jinja.Undefined(), errStopped
	}
	var start, stop, step int64 = 0, 0, 1
	ints := make([]int64, len(args))
	for i, a := range args {
		if !a.IsInt() {
			return jinja.Undefined(), fmt.Errorf("range: argument %d is not an integer", i+1)
		}
		ints[i] = a.AsInt()
	}
	switch len(ints) {
	case 1:
		stop = ints[0]
	case 2:
		start, stop = ints[0], ints[1]
	case 3:
		start, stop, step = ints[0], ints[1], ints[2]
	default:
		return jinja.Undefined(), fmt.Errorf("range: want 1 to 3 arguments, got %d", len(args))
	}
	if step == 0 {
		return jinja.Undefined(), fmt.Errorf("range: step must not be zero")
	}
	var n int64
	if step > 0 && stop > start {
		n = (stop - start + step - 1) / step
	} else if step < 0 && start > stop {
		n = (start - stop - step - 1) / -step
	}
	if n < 0 || n > int64(st.rangeLeft) {
		return jinja.Undefined(), limitErr("range() over the limit of %d items per render", st.rangeMax)
	}
	st.rangeLeft -= int(n)
	items := make([]jinja.Value, n)
	for i := range items {
		items[i] = jinja.NewInt(start + int64(i)*step)
	}
	return jinja.NewList(items), nil
}

// decodeOrdered decodes JSON into engine values, keeping object key
// order (Go maps would lose it, and templates print tools with tojson).
func decodeOrdered(b []byte) (jinja.Value, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	v, err := decodeValue(dec, 0)
	if err != nil {
		return jinja.Undefined(), err
	}
	if _, err := dec.Token(); err == nil {
		return jinja.Undefined(), fmt.Errorf("trailing data after the JSON value")
	}
	return v, nil
}

const maxJSONDepth = 64

func decodeValue(dec *json.Decoder, depth int) (jinja.Value, error) {
	if depth > maxJSONDepth {
		return jinja.Undefined(), fmt.Errorf("nested deeper than %d", maxJSONDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		return jinja.Undefined(), err
	}
	switch x := tok.(type) {
	case json.Delim:
		switch x {
		case '[':
			var items []jinja.Value
			for dec.More() {
				v, err := decodeValue(dec, depth+1)
				if err != nil {
					return jinja.Undefined(), err
				}
				items = append(items, v)
			}
			if _, err := dec.Token(); err != nil {
				return jinja.Undefined(), err
			}
			return jinja.NewList(items), nil
		case '{':
			d := jinja.NewDict()
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return jinja.Undefined(), err
				}
				k, ok := kt.(string)
				if !ok {
					return jinja.Undefined(), fmt.Errorf("object key is not a string")
				}
				v, err := decodeValue(dec, depth+1)
				if err != nil {
					return jinja.Undefined(), err
				}
				d.AsDict().Set(k, v)
			}
			if _, err := dec.Token(); err != nil {
				return jinja.Undefined(), err
			}
			return d, nil
		}
		return jinja.Undefined(), fmt.Errorf("unexpected %v", x)
	case json.Number:
		return jinja.FromGoValue(x), nil
	case string:
		return jinja.NewString(x), nil
	case bool:
		return jinja.NewBool(x), nil
	case nil:
		return jinja.None(), nil
	}
	return jinja.Undefined(), fmt.Errorf("unexpected JSON token %v", tok)
}

// strftime formats t with the C/Python directives templates use
// (strftime_now("%d %b %Y") in Llama 3.x); unknown directives are kept
// as written.
func strftime(format string, t time.Time) string {
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' || i+1 == len(format) {
			b.WriteByte(c)
			continue
		}
		i++
		switch format[i] {
		case 'Y':
			fmt.Fprintf(&b, "%04d", t.Year())
		case 'y':
			fmt.Fprintf(&b, "%02d", t.Year()%100)
		case 'm':
			fmt.Fprintf(&b, "%02d", int(t.Month()))
		case 'd':
			fmt.Fprintf(&b, "%02d", t.Day())
		case 'e':
			fmt.Fprintf(&b, "%2d", t.Day())
		case 'j':
			fmt.Fprintf(&b, "%03d", t.YearDay())
		case 'H':
			fmt.Fprintf(&b, "%02d", t.Hour())
		case 'I':
			h := t.Hour() % 12
			if h == 0 {
				h = 12
			}
			fmt.Fprintf(&b, "%02d", h)
		case 'M':
			fmt.Fprintf(&b, "%02d", t.Minute())
		case 'S':
			fmt.Fprintf(&b, "%02d", t.Second())
		case 'p':
			if t.Hour() < 12 {
				b.WriteString("AM")
			} else {
				b.WriteString("PM")
			}
		case 'b', 'h':
			b.WriteString(t.Month().String()[:3])
		case 'B':
			b.WriteString(t.Month().String())
		case 'a':
			b.WriteString(t.Weekday().String()[:3])
		case 'A':
			b.WriteString(t.Weekday().String())
		case 'F':
			b.WriteString(t.Format("2006-01-02"))
		case 'T':
			b.WriteString(t.Format("15:04:05"))
		case '%':
			b.WriteByte('%')
		default:
			b.WriteByte('%')
			b.WriteByte(format[i])
		}
	}
	return b.String()
}

package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/realmrt/realm/core"
)

// Tool calling: the request's tools are rendered by the model's own
// chat template, and the model's answer is parsed back into OpenAI
// tool_calls, in the format the template teaches: Hermes/Qwen
// <tool_call>{"name":…,"arguments":…}</tool_call> blocks, or Llama 3.x
// JSON {"name":…,"parameters":…} (after an optional <|python_tag|>), or
// Mistral's [TOOL_CALLS] (a JSON array, or name[ARGS]{…}).
// tool_choice "required" or a named function are enforced by a grammar
// of the format (server/structured.go).

// Tool-call formats.
const (
	toolsHermes  = "hermes"
	toolsLlama3  = "llama3"
	toolsMistral = "mistral"
)

// maxTools caps the tools of one request.
const maxTools = 128

// toolFormat returns the tool-call format a chat template teaches, ""
// when it renders no tools.
func toolFormat(tmpl string) string {
	switch {
	case strings.Contains(tmpl, "<tool_call>"):
		return toolsHermes
	case strings.Contains(tmpl, "[TOOL_CALLS]"):
		return toolsMistral
	case strings.Contains(tmpl, "<|python_tag|>"), strings.Contains(tmpl, "ipython") && strings.Contains(tmpl, "tools"):
		return toolsLlama3
	}
	return ""
}

// parseTools validates tools and tool_choice. It returns the tools to
// render (nil: none, also for tool_choice "none").
func parseTools(tools, choice rawRef) ([]byte, *apiError) {
	if len(tools) == 0 || string(tools) == "null" {
		if len(choice) > 0 && string(choice) != "null" && string(choice) != `"none"` && string(choice) != `"auto"` {
			return nil, badRequest("tool_choice", "tool_choice needs tools")
		}
		return nil, nil
	}
	var list []struct {
		Type     string `json:"type"`
		Function *struct {
			Name       string          `json:"name"`
			Parameters json.RawMessage `json:"parameters"`
		} `json:"function"`
	}
	if err := json.Unmarshal(tools, &list); err != nil {
		return nil, badRequest("tools", "tools must be an array of {type: \"function\", function: {name, description, parameters}}")
	}
	if len(list) > maxTools {
		return nil, badRequest("tools", "at most %d tools, got %d", maxTools, len(list))
	}
	for i, t := range list {
		if t.Type != "function" {
			return nil, badRequest(fmt.Sprintf("tools[%d].type", i), "tool type %s is not supported (only function)", quote(t.Type))
		}
		if t.Function == nil || t.Function.Name == "" {
			return nil, badRequest(fmt.Sprintf("tools[%d].function.name", i), "a tool needs function.name")
		}
		if p := bytes.TrimSpace(t.Function.Parameters); len(p) > 0 && p[0] != '{' && string(p) != "null" {
			return nil, badRequest(fmt.Sprintf("tools[%d].function.parameters", i), "function.parameters must be a JSON schema object")
		}
	}
	if len(choice) > 0 {
		switch string(choice) {
		case "null", `"auto"`:
		case `"none"`:
			return nil, nil
		default:
			names := map[string]bool{}
			for _, t := range list {
				names[t.Function.Name] = true
			}
			if e := checkToolChoice(choice, names); e != nil {
				return nil, e
			}
		}
	}
	if len(list) == 0 {
		return nil, nil
	}
	return tools, nil
}

// normalizeToolCalls checks an assistant message's tool_calls and gives
// each function's arguments as the JSON object a template expects
// (OpenAI sends them as a string holding JSON).
func normalizeToolCalls(raw json.RawMessage, param string) (json.RawMessage, *apiError) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	type function struct {
		Name      string          `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
	}
	var calls []struct {
		ID       string   `json:"id"`
		Type     string   `json:"type"`
		Function function `json:"function"`
	}
	if err := json.Unmarshal(raw, &calls); err != nil {
		return nil, badRequest(param, "tool_calls must be an array of {id, type, function: {name, arguments}}")
	}
	for i := range calls {
		f := &calls[i].Function
		if f.Name == "" {
			return nil, badRequest(fmt.Sprintf("%s[%d].function.name", param, i), "a tool call needs function.name")
		}
		var s string
		if json.Unmarshal(f.Arguments, &s) == nil {
			if !json.Valid([]byte(s)) {
				return nil, badRequest(fmt.Sprintf("%s[%d].function.arguments", param, i), "function.arguments must hold JSON")
			}
			f.Arguments = json.RawMessage(s)
		}
		if len(f.Arguments) == 0 {
			f.Arguments = json.RawMessage("{}")
		}
	}
	b, err := json.Marshal(calls)
	if err != nil {
		return nil, badRequest(param, "tool_calls: %v", err)
	}
	return b, nil
}

// toolCall is one parsed call, as OpenAI returns it.
type toolCall struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"` // JSON text
	} `json:"function"`
}

// callID returns a new tool call id: Mistral's templates require nine
// alphanumerics, the others take OpenAI's "call_..." form.
func callID(format string) string {
	if format == toolsMistral {
		const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
		id := []byte(newID(""))[:9]
		for i := range id {
			id[i] = alnum[int(id[i])%len(alnum)]
		}
		return string(id)
	}
	return newID("call_")
}

// toolNames returns the function names of a validated tools array.
func toolNames(tools []byte) map[string]bool {
	var list []struct {
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if json.Unmarshal(tools, &list) != nil {
		return nil
	}
	names := map[string]bool{}
	for _, t := range list {
		names[t.Function.Name] = true
	}
	return names
}

// parseToolCalls splits a model's answer into its text and the tool
// calls it makes in format. A call must name one of names (nil: any).
// Text that does not parse as calls stays text. The markers of the
// formats (<tool_call>, <|python_tag|>, [TOOL_CALLS]) may be control
// tokens that the detokenizer drops, so the bare JSON they introduce is
// recognized too, when all of the answer is calls.
func parseToolCalls(text, format string, names map[string]bool) (string, []toolCall) {
	var calls []toolCall
	add := func(name string, args json.RawMessage) bool {
		if name == "" || names != nil && !names[name] {
			return false
		}
		if len(args) == 0 || string(args) == "null" {
			args = json.RawMessage("{}")
		}
		var s string
		if json.Unmarshal(args, &s) == nil && json.Valid([]byte(s)) {
			args = json.RawMessage(s)
		}
		var tc toolCall
		tc.ID, tc.Type = callID(format), "function"
		tc.Function.Name, tc.Function.Arguments = name, string(args)
		calls = append(calls, tc)
		return true
	}
	addObj := func(obj json.RawMessage) bool {
		var c struct {
			Name       string          `json:"name"`
			Arguments  json.RawMessage `json:"arguments"`
			Parameters json.RawMessage `json:"parameters"`
		}
		if json.Unmarshal(obj, &c) != nil {
			return false
		}
		args := c.Arguments
		if len(args) == 0 {
			args = c.Parameters
		}
		return add(c.Name, args)
	}
	// allObjects adds every object of s: JSON objects (or arrays of
	// them) one after another; all of s must be such.
	allObjects := func(s string) bool {
		dec := json.NewDecoder(strings.NewReader(s))
		n := 0
		for {
			var v json.RawMessage
			err := dec.Decode(&v)
			if err == io.EOF {
				return n > 0
			}
			if err != nil {
				return false
			}
			var list []json.RawMessage
			if json.Unmarshal(v, &list) != nil {
				list = []json.RawMessage{v}
			}
			for _, o := range list {
				if !addObj(o) {
					return false
				}
				n++
			}
		}
	}
	whole := func(s string) (string, []toolCall) {
		calls = nil
		if allObjects(s) {
			return "", calls
		}
		return text, nil
	}
	switch format {
	case toolsHermes:
		if !strings.Contains(text, "<tool_call>") {
			if t := strings.TrimSpace(text); strings.HasPrefix(t, "{") {
				return whole(t)
			}
			return text, nil
		}
		var rest strings.Builder
		s := text
		for {
			i := strings.Index(s, "<tool_call>")
			if i < 0 {
				rest.WriteString(s)
				break
			}
			body := s[i+len("<tool_call>"):]
			j := strings.Index(body, "</tool_call>")
			end := len(body)
			if j >= 0 {
				end = j
			}
			if !addObj(json.RawMessage(strings.TrimSpace(body[:end]))) {
				rest.WriteString(s) // not a call: keep it all as text
				break
			}
			rest.WriteString(s[:i])
			if j < 0 {
				break
			}
			s = body[j+len("</tool_call>"):]
		}
		return strings.TrimSpace(rest.String()), calls
	case toolsLlama3:
		s := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(text), "<|python_tag|>"))
		if !strings.HasPrefix(s, "{") {
			return text, nil
		}
		// One call, or several separated by ";".
		for _, part := range splitTopLevel(s, ';') {
			if !addObj(json.RawMessage(strings.TrimSpace(part))) {
				return text, nil
			}
		}
		return "", calls
	case toolsMistral:
		content, s := "", strings.TrimSpace(text)
		if i := strings.Index(text, "[TOOL_CALLS]"); i >= 0 {
			content, s = strings.TrimSpace(text[:i]), strings.TrimSpace(text[i+len("[TOOL_CALLS]"):])
		}
		if strings.HasPrefix(s, "[") { // Nemo: a JSON array of calls
			if _, c := whole(s); c != nil {
				return content, c
			}
			return text, nil
		}
		// Small 3.x: name[ARGS]{...}, repeated after [TOOL_CALLS].
		for s != "" {
			j := strings.IndexAny(s, "[{")
			if j <= 0 {
				return text, nil
			}
			name := strings.TrimSpace(s[:j])
			if strings.IndexFunc(name, func(r rune) bool {
				return !(r == '_' || r == '-' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
			}) >= 0 {
				return text, nil // not a function name: text
			}
			s = strings.TrimPrefix(s[j:], "[ARGS]")
			dec := json.NewDecoder(strings.NewReader(s))
			var args json.RawMessage
			if dec.Decode(&args) != nil || !add(name, args) {
				return text, nil
			}
			s = strings.TrimSpace(s[dec.InputOffset():])
			s = strings.TrimSpace(strings.TrimPrefix(s, "[TOOL_CALLS]"))
		}
		return content, calls
	}
	return text, nil
}

// splitTopLevel splits s at sep outside JSON strings and brackets.
func splitTopLevel(s string, sep byte) []string {
	var parts []string
	depth, start, inStr, esc := 0, 0, false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case esc:
			esc = false
		case inStr && c == '\\':
			esc = true
		case c == '"':
			inStr = !inStr
		case inStr:
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			depth--
		case c == sep && depth == 0:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	if strings.TrimSpace(s[start:]) != "" {
		parts = append(parts, s[start:])
	}
	return parts
}

// answerTools writes the answer of a chat with tools: the text the
// guest wrote, parsed into content and tool_calls; streamed as one
// content chunk and one tool_calls chunk when the request streams.
func (s *Server) answerTools(out *output, format, finish string, u usage, g GuestRequest, p *parsed, res *core.RunResult, backend string) {
	content, calls := parseToolCalls(out.buf.String(), format, toolNames(p.tools))
	if len(calls) > 0 {
		finish = "tool_calls"
	}
	var lp any
	if g.Logprobs {
		lp = logprobsObject(res.Logprobs, true)
	}
	if !g.Stream {
		msg := map[string]any{"role": "assistant", "content": content}
		if len(calls) > 0 {
			msg["tool_calls"] = calls
			if content == "" {
				msg["content"] = nil
			}
		}
		writeJSON(out.w, http.StatusOK, map[string]any{
			"id": out.id, "object": out.object(false), "created": out.created, "model": p.model,
			"choices":            []any{map[string]any{"index": 0, "message": msg, "logprobs": lp, "finish_reason": finish}},
			"usage":              u,
			"system_fingerprint": "realm-" + backend,
		})
		return
	}
	out.logprobs = lp
	if content != "" {
		if out.sendText(content) != nil {
			return
		}
	}
	if len(calls) > 0 {
		if out.begin() != nil {
			return
		}
		deltas := make([]map[string]any, len(calls))
		for i, c := range calls {
			deltas[i] = map[string]any{"index": i, "id": c.ID, "type": c.Type,
				"function": map[string]any{"name": c.Function.Name, "arguments": c.Function.Arguments}}
		}
		if out.event(out.chunk(map[string]any{"tool_calls": deltas}, "", nil)) != nil {
			return
		}
	}
	out.finish(finish, u, p.includeUsage)
}

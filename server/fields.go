package server

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Fields inside the request's objects: like the top-level ones
// (checkFields), a documented field this server does not implement is a
// 400 naming it, unless it is sent with its "off" value.

// knownNested are the fields each nested object may carry.
var knownNested = map[string]map[string]bool{
	"messages":       {"role": true, "content": true, "name": true, "tool_calls": true, "tool_call_id": true},
	"tools":          {"type": true, "function": true},
	"function":       {"name": true, "description": true, "parameters": true},
	"stream_options": {"include_usage": true},
}

// nestedWhy says why a nested field clients send is refused.
var nestedWhy = map[string]string{
	"refusal":       "an assistant message's refusal is not supported",
	"audio":         "audio is not supported",
	"function_call": "function_call is not supported (use tool_calls)",
	"strict":        "strict function schemas need constrained decoding of the arguments, which is not supported yet",
}

// isOff reports whether a JSON value asks for nothing.
func isOff(v []byte) bool {
	switch strings.TrimSpace(string(v)) {
	case "null", "false", `""`, "[]", "{}":
		return true
	}
	return false
}

// checkNested refuses unknown or unimplemented fields inside messages,
// tools and stream_options. Values that are not objects are left to the
// parsers, which say what they want.
func checkNested(body []byte, chat bool) *apiError {
	var top struct {
		Messages      []map[string]json.RawMessage `json:"messages"`
		Tools         []map[string]json.RawMessage `json:"tools"`
		StreamOptions map[string]json.RawMessage   `json:"stream_options"`
	}
	if json.Unmarshal(body, &top) != nil {
		return nil
	}
	if chat {
		for i, m := range top.Messages {
			if e := checkObject(m, "messages", fmt.Sprintf("messages[%d]", i)); e != nil {
				return e
			}
		}
		for i, t := range top.Tools {
			param := fmt.Sprintf("tools[%d]", i)
			if e := checkObject(t, "tools", param); e != nil {
				return e
			}
			var f map[string]json.RawMessage
			if json.Unmarshal(t["function"], &f) == nil {
				if e := checkObject(f, "function", param+".function"); e != nil {
					return e
				}
			}
		}
	}
	return checkObject(top.StreamOptions, "stream_options", "stream_options")
}

// checkObject refuses the first (by name) field of obj that kind does
// not know and that is not off.
func checkObject(obj map[string]json.RawMessage, kind, param string) *apiError {
	var bad []string
	for k, v := range obj {
		if !knownNested[kind][k] && !isOff(v) {
			bad = append(bad, k)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	k := bad[0]
	for _, b := range bad[1:] {
		k = min(k, b)
	}
	msg := fmt.Sprintf("%s.%s is not supported by this server", param, k)
	if why := nestedWhy[k]; why != "" {
		msg = fmt.Sprintf("%s.%s: %s", param, k, why)
	}
	e := badRequest(param+"."+k, "%s", msg)
	e.code = "unsupported_parameter"
	return e
}

package server

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/realmrt/realm/core"
)

// The OpenAI request fields beyond the basics: which fields exist at
// all (a field this server does not implement is a 400 naming it, never
// silently ignored), and the logprobs of the answers.

// knownFields are the request fields this server implements, per
// endpoint (true: chat).
var knownFields = map[bool]map[string]bool{
	true: {"model": true, "messages": true, "max_tokens": true, "max_completion_tokens": true,
		"temperature": true, "top_p": true, "top_k": true, "min_p": true, "repeat_penalty": true, "seed": true,
		"stop": true, "stream": true, "stream_options": true, "n": true, "logprobs": true, "top_logprobs": true,
		"presence_penalty": true, "frequency_penalty": true, "user": true, "tools": true, "tool_choice": true,
		"response_format": true, "grammar": true},
	false: {"model": true, "prompt": true, "max_tokens": true, "max_completion_tokens": true,
		"temperature": true, "top_p": true, "top_k": true, "min_p": true, "repeat_penalty": true, "seed": true,
		"stop": true, "stream": true, "stream_options": true, "n": true, "logprobs": true,
		"presence_penalty": true, "frequency_penalty": true, "user": true,
		"response_format": true, "grammar": true},
}

// notYet says what a field clients commonly send is waiting for.
var notYet = map[string]string{
	"tools":               "tool calling is only supported in chat completions",
	"tool_choice":         "tool calling is only supported in chat completions",
	"functions":           "function calling is not supported",
	"function_call":       "function calling is not supported",
	"parallel_tool_calls": "parallel_tool_calls is not supported (every call the model makes is returned)",
	"logit_bias":          "logit_bias is not supported",
}

// checkFields refuses a body with a field this server does not
// implement. A field sent with its "off" value (null, false, an empty
// string, array or object; response_format {"type":"text"}; tool_choice
// "none" or "auto" without tools) asks for nothing and passes.
func checkFields(body []byte, chat bool) *apiError {
	var top map[string]rawRef // references into body: no copies
	if err := json.Unmarshal(body, &top); err != nil {
		return nil // not an object: parseRequest says why
	}
	names := make([]string, 0, len(top))
	for k := range top {
		if !knownFields[chat][k] {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	for _, k := range names {
		v := strings.TrimSpace(string(top[k]))
		switch v {
		case "null", "false", `""`, "[]", "{}":
			continue
		}
		if k == "response_format" {
			var rf struct{ Type string }
			if json.Unmarshal(top[k], &rf) == nil && rf.Type == "text" {
				continue
			}
		}
		if k == "tool_choice" && (v == `"none"` || v == `"auto"`) {
			continue
		}
		msg := fmt.Sprintf("%s is not supported by this server", k)
		if why := notYet[k]; why != "" {
			msg = fmt.Sprintf("%s: %s", k, why)
		}
		e := badRequest(k, "%s", msg)
		e.code = "unsupported_parameter"
		return e
	}
	return nil
}

// parseLogprobs validates logprobs and top_logprobs: chat takes
// logprobs true/false and top_logprobs 0–20 (which needs logprobs);
// completions take logprobs 0–5, the number of alternatives. It sets
// the guest request's fields and returns whether logprobs are wanted.
func parseLogprobs(raw rawRef, top *int, chat bool, g *GuestRequest) *apiError {
	if len(raw) == 0 || string(raw) == "null" {
		if top != nil && *top != 0 {
			return badRequest("top_logprobs", "top_logprobs needs logprobs: true")
		}
		return nil
	}
	if chat {
		var on bool
		if err := json.Unmarshal(raw, &on); err != nil {
			return badRequest("logprobs", "logprobs must be a boolean")
		}
		k := 0
		if top != nil {
			k = *top
			if k < 0 || k > 20 {
				return badRequest("top_logprobs", "top_logprobs must be between 0 and 20, got %d", k)
			}
			if k > 0 && !on {
				return badRequest("top_logprobs", "top_logprobs needs logprobs: true")
			}
		}
		g.Logprobs, g.TopLogprobs = on, k
		return nil
	}
	var k int
	if err := json.Unmarshal(raw, &k); err != nil || k < 0 || k > 5 {
		return badRequest("logprobs", "logprobs must be an integer between 0 and 5")
	}
	g.Logprobs, g.TopLogprobs = true, k
	return nil
}

// tokenString is OpenAI's "token" of a logprob entry: its text, or
// "bytes:\xNN..." for a piece that is not whole UTF-8.
func tokenString(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var s strings.Builder
	s.WriteString("bytes:")
	for _, c := range b {
		fmt.Fprintf(&s, "\\x%02x", c)
	}
	return s.String()
}

// byteList is a token's bytes as OpenAI writes them: numbers, not base64.
func byteList(b []byte) []int {
	out := make([]int, len(b))
	for i, c := range b {
		out[i] = int(c)
	}
	return out
}

// logprobsObject is the choice's logprobs: chat's {"content": [...]},
// or the completions API's parallel arrays.
func logprobsObject(lps []core.TokenLogprob, chat bool) any { return logprobsAt(lps, chat, 0) }

// logprobsAt is logprobsObject for tokens whose text starts at byte off
// of the completion (the legacy shape's text_offset): a streamed chunk's.
func logprobsAt(lps []core.TokenLogprob, chat bool, off int) any {
	if chat {
		content := make([]map[string]any, 0, len(lps))
		for _, lp := range lps {
			top := make([]map[string]any, 0, len(lp.Top))
			for _, t := range lp.Top {
				top = append(top, map[string]any{"token": tokenString(t.Bytes), "logprob": t.Logprob, "bytes": byteList(t.Bytes)})
			}
			content = append(content, map[string]any{"token": tokenString(lp.Bytes), "logprob": lp.Logprob,
				"bytes": byteList(lp.Bytes), "top_logprobs": top})
		}
		return map[string]any{"content": content, "refusal": nil}
	}
	tokens := make([]string, 0, len(lps))
	values := make([]float32, 0, len(lps))
	tops := make([]map[string]float32, 0, len(lps))
	offsets := make([]int, 0, len(lps))
	for _, lp := range lps {
		tokens = append(tokens, tokenString(lp.Bytes))
		values = append(values, lp.Logprob)
		top := map[string]float32{}
		for _, t := range lp.Top {
			top[tokenString(t.Bytes)] = t.Logprob
		}
		tops = append(tops, top)
		offsets = append(offsets, off)
		off += len(lp.Bytes)
	}
	return map[string]any{"tokens": tokens, "token_logprobs": values, "top_logprobs": tops, "text_offset": offsets}
}

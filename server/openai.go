package server

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/realmrt/realm/core"
)

// The OpenAI request and response shapes this server speaks.

// completionRequest is the body of /v1/chat/completions and
// /v1/completions (the fields of both).
type completionRequest struct {
	Model               string   `json:"model"`
	Messages            rawRef   `json:"messages"`
	Prompt              rawRef   `json:"prompt"`
	MaxTokens           *int     `json:"max_tokens"`
	MaxCompletionTokens *int     `json:"max_completion_tokens"`
	Temperature         *float64 `json:"temperature"`
	TopP                *float64 `json:"top_p"`
	TopK                *int     `json:"top_k"`
	MinP                *float64 `json:"min_p"`
	RepeatPenalty       *float64 `json:"repeat_penalty"`
	Seed                *int64   `json:"seed"`
	Stop                rawRef   `json:"stop"`
	Stream              bool     `json:"stream"`
	StreamOptions       *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	N                *int     `json:"n"`
	Logprobs         rawRef   `json:"logprobs"` // chat: a boolean; completions: 0–5
	TopLogprobs      *int     `json:"top_logprobs"`
	PresencePenalty  *float64 `json:"presence_penalty"`
	FrequencyPenalty *float64 `json:"frequency_penalty"`
	User             string   `json:"user"` // the end user's id: accepted, not used
	Tools            rawRef   `json:"tools"`
	ToolChoice       rawRef   `json:"tool_choice"`
	ResponseFormat   rawRef   `json:"response_format"`
	Grammar          rawRef   `json:"grammar"` // GBNF, as llama-server takes it
}

// rawRef is a JSON value kept as a reference into the request body,
// decoded later. Unlike json.RawMessage it does not copy: a prompt may
// be megabytes, and the body outlives the parsing.
type rawRef []byte

// UnmarshalJSON implements json.Unmarshaler.
func (r *rawRef) UnmarshalJSON(b []byte) error {
	*r = b
	return nil
}

// GuestRequest is the JSON document a guest app reads from stdin for one
// HTTP request. Prompt is the text to generate from: the chat messages
// rendered with the model's template (chat) or the request's prompt
// (completions); Messages are the original chat messages (chat only).
// MaxTokens is always set (the request's, the default, capped by the
// app's policy); the sampling fields are those of the request (zero:
// greedy / off). The guest writes the generated text, and nothing else,
// to stdout.
type GuestRequest struct {
	Endpoint      string    `json:"endpoint"` // "chat" or "completions"
	Model         string    `json:"model"`
	Prompt        string    `json:"prompt"`
	Messages      []Message `json:"messages,omitempty"`
	MaxTokens     int       `json:"max_tokens"`
	Temperature   float32   `json:"temperature"`
	TopK          int       `json:"top_k,omitempty"`
	TopP          float32   `json:"top_p,omitempty"`
	MinP          float32   `json:"min_p,omitempty"`
	RepeatPenalty float32   `json:"repeat_penalty,omitempty"`
	Seed          uint64    `json:"seed,omitempty"`
	Stop          []string  `json:"stop,omitempty"`
	Stream        bool      `json:"stream"`
	// Logprobs and TopLogprobs ask the host's generate for each token's
	// log-probability and its top alternatives (core.RunResult.Logprobs);
	// the penalties are OpenAI's presence and frequency penalties. The
	// names are those of abi.GenerateParams, so a guest passes them on.
	Logprobs         bool    `json:"logprobs,omitempty"`
	TopLogprobs      int     `json:"top_logprobs,omitempty"`
	PresencePenalty  float32 `json:"presence_penalty,omitempty"`
	FrequencyPenalty float32 `json:"frequency_penalty,omitempty"`
	// Grammar (GBNF) constrains the output: response_format, the
	// request's grammar or a forced tool call, compiled by the server
	// (abi.SampleParams.Grammar: the app passes it on to generate).
	Grammar string `json:"grammar,omitempty"`
}

// DefaultMaxTokens is max_tokens when a request sets none: the host's.
const DefaultMaxTokens = core.DefaultMaxTokens

// maxStops caps the stop strings of a request.
const maxStops = 16

// apiError is an error answered in OpenAI's shape.
type apiError struct {
	status  int
	typ     string // invalid_request_error, authentication_error, ...
	code    string // model_not_found, ... or ""
	param   string
	message string
	kind    string // the metrics label
}

func (e *apiError) Error() string { return e.message }

func badRequest(param, format string, args ...any) *apiError {
	return &apiError{status: 400, typ: "invalid_request_error", param: param, message: fmt.Sprintf(format, args...), kind: "bad_request"}
}

// errorBody is the JSON of an error response.
func (e *apiError) body() map[string]any {
	var param, code any
	if e.param != "" {
		param = e.param
	}
	if e.code != "" {
		code = e.code
	}
	return map[string]any{"error": map[string]any{"message": e.message, "type": e.typ, "param": param, "code": code}}
}

// fieldRange says what a numeric field accepts, for the error about a
// number out of range of its type.
var fieldRange = map[string]string{
	"temperature":           "between 0 and 2",
	"top_p":                 "in (0, 1]",
	"min_p":                 "in [0, 1]",
	"repeat_penalty":        "in [0, 10]",
	"top_k":                 "an integer ≥ 0",
	"max_tokens":            "an integer ≥ 1",
	"max_completion_tokens": "an integer ≥ 1",
	"seed":                  "a 64-bit integer",
	"n":                     "an integer between 1 and 128",
	"presence_penalty":      "between -2 and 2",
	"frequency_penalty":     "between -2 and 2",
	"top_logprobs":          "an integer between 0 and 20",
}

// parsed is a validated request.
type parsed struct {
	chat         bool
	model        string
	messages     []Message
	prompt       string
	maxTokens    int    // 0: not set
	n            int    // choices (≥ 1)
	tools        []byte // the tools to render (chat), nil: none
	forceTool    string // tool_choice: "" auto/none, "*" required, or a function name
	guest        GuestRequest
	includeUsage bool
}

// parseRequest decodes and validates a request body.
func parseRequest(body []byte, chat bool) (*parsed, *apiError) {
	if e := checkFields(body, chat); e != nil {
		return nil, e
	}
	if e := checkNested(body, chat); e != nil {
		return nil, e
	}
	var r completionRequest
	// Unmarshal, not a Decoder: a Decoder copies the body into a
	// buffer of its own, and rawRef keeps references into body.
	if err := json.Unmarshal(body, &r); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			if strings.HasPrefix(te.Value, "number") {
				// A number the field's type cannot hold (1e400, 2^70).
				e := badRequest(te.Field, "%s: the number is out of range", quote(te.Field))
				if want := fieldRange[te.Field]; want != "" {
					e.message = fmt.Sprintf("%s must be %s", te.Field, want)
				}
				return nil, e
			}
			return nil, badRequest(te.Field, "invalid type for %s: expected %s", quote(te.Field), te.Type)
		}
		return nil, badRequest("", "invalid JSON body: %v", err)
	}
	p := &parsed{chat: chat, model: r.Model}
	if r.Model == "" {
		return nil, badRequest("model", "you must provide a model parameter")
	}
	if chat {
		if len(r.Messages) == 0 || string(r.Messages) == "null" {
			return nil, badRequest("messages", "messages is required")
		}
		msgs, err := parseMessages(json.RawMessage(r.Messages))
		if err != nil {
			return nil, err
		}
		p.messages = msgs
		tools, e := parseTools(r.Tools, r.ToolChoice)
		if e != nil {
			return nil, e
		}
		p.tools = tools
		if tools != nil {
			p.forceTool = parseToolChoice(r.ToolChoice)
		}
	} else {
		if len(r.Prompt) == 0 || string(r.Prompt) == "null" {
			return nil, badRequest("prompt", "prompt is required")
		}
		s, err := parsePrompt(json.RawMessage(r.Prompt))
		if err != nil {
			return nil, err
		}
		if s == "" {
			return nil, badRequest("prompt", "prompt must not be empty")
		}
		p.prompt = s
	}
	n, e := parseN(r.N, p.tools != nil)
	if e != nil {
		return nil, e
	}
	p.n = n
	mt := r.MaxTokens
	param := "max_tokens"
	if r.MaxCompletionTokens != nil {
		mt, param = r.MaxCompletionTokens, "max_completion_tokens"
	}
	if mt != nil {
		if *mt < 1 {
			return nil, badRequest(param, "%s must be at least 1, got %d", param, *mt)
		}
		p.maxTokens = *mt
	}
	g := &p.guest
	gr, aerr := parseStructured(r.ResponseFormat, r.Grammar)
	if aerr != nil {
		return nil, aerr
	}
	if gr != "" && p.forceTool != "" {
		return nil, badRequest("tool_choice", "a forced tool call cannot be combined with response_format or grammar")
	}
	g.Grammar = gr
	// OpenAI's default temperature is 1; 0 is greedy decoding.
	g.Temperature = 1
	if r.Temperature != nil {
		if *r.Temperature < 0 || *r.Temperature > 2 || math.IsNaN(*r.Temperature) {
			return nil, badRequest("temperature", "temperature must be between 0 and 2, got %g", *r.Temperature)
		}
		g.Temperature = float32(*r.Temperature)
	}
	if r.TopP != nil {
		if !(*r.TopP > 0 && *r.TopP <= 1) {
			return nil, badRequest("top_p", "top_p must be in (0, 1], got %g", *r.TopP)
		}
		if *r.TopP < 1 {
			g.TopP = float32(*r.TopP)
		}
	}
	if r.TopK != nil {
		if *r.TopK < 0 {
			return nil, badRequest("top_k", "top_k must be ≥ 0, got %d", *r.TopK)
		}
		g.TopK = *r.TopK
	}
	if r.MinP != nil {
		if !(*r.MinP >= 0 && *r.MinP <= 1) {
			return nil, badRequest("min_p", "min_p must be in [0, 1], got %g", *r.MinP)
		}
		g.MinP = float32(*r.MinP)
	}
	if r.RepeatPenalty != nil {
		if !(*r.RepeatPenalty >= 0 && *r.RepeatPenalty <= 10) {
			return nil, badRequest("repeat_penalty", "repeat_penalty must be in [0, 10], got %g", *r.RepeatPenalty)
		}
		g.RepeatPenalty = float32(*r.RepeatPenalty)
	}
	for _, f := range []struct {
		name string
		v    *float64
		dst  *float32
	}{{"presence_penalty", r.PresencePenalty, &g.PresencePenalty}, {"frequency_penalty", r.FrequencyPenalty, &g.FrequencyPenalty}} {
		if f.v != nil {
			if !(*f.v >= -2 && *f.v <= 2) {
				return nil, badRequest(f.name, "%s must be between -2 and 2, got %g", f.name, *f.v)
			}
			*f.dst = float32(*f.v)
		}
	}
	if e := parseLogprobs(r.Logprobs, r.TopLogprobs, chat, g); e != nil {
		return nil, e
	}
	if r.Seed != nil {
		g.Seed = uint64(*r.Seed)
	} else {
		// No seed: a fresh one per request, as OpenAI samples (seed 0
		// would give every unseeded request the same answer).
		var b [8]byte
		rand.Read(b[:])
		g.Seed = binary.LittleEndian.Uint64(b[:])
	}
	stops, err := parseStop(json.RawMessage(r.Stop))
	if err != nil {
		return nil, err
	}
	g.Stop = stops
	g.Stream = r.Stream
	if r.StreamOptions != nil {
		if !r.Stream {
			return nil, badRequest("stream_options", "stream_options is only allowed when stream is true")
		}
		p.includeUsage = r.StreamOptions.IncludeUsage
	}
	return p, nil
}

// parseMessages accepts content as a string or an array of parts of
// type "text" (other part types are refused).
func parseMessages(raw json.RawMessage) ([]Message, *apiError) {
	var in []struct {
		Role       string          `json:"role"`
		Content    json.RawMessage `json:"content"`
		Name       string          `json:"name"`
		ToolCalls  json.RawMessage `json:"tool_calls"`
		ToolCallID string          `json:"tool_call_id"`
	}
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, badRequest("messages", "messages must be an array of {role, content} objects: %v", err)
	}
	if len(in) == 0 {
		return nil, badRequest("messages", "messages must not be empty")
	}
	out := make([]Message, 0, len(in))
	for i, m := range in {
		param := fmt.Sprintf("messages[%d]", i)
		switch m.Role {
		case "system", "developer", "user", "assistant", "tool":
		default:
			return nil, badRequest(param+".role", "invalid role %s (want system, developer, user, assistant or tool)", quote(m.Role))
		}
		var text string
		if len(m.Content) > 0 && string(m.Content) != "null" {
			if err := json.Unmarshal(m.Content, &text); err != nil {
				var parts []struct {
					Type string `json:"type"`
					Text string `json:"text"`
				}
				if err := json.Unmarshal(m.Content, &parts); err != nil {
					return nil, badRequest(param+".content", "content must be a string or an array of text parts")
				}
				var b strings.Builder
				for _, pt := range parts {
					if pt.Type != "text" {
						return nil, badRequest(param+".content", "content part type %s is not supported (only text)", quote(pt.Type))
					}
					b.WriteString(pt.Text)
				}
				text = b.String()
			}
		} else if m.Role != "assistant" {
			return nil, badRequest(param+".content", "content is required")
		}
		calls, e := normalizeToolCalls(m.ToolCalls, param+".tool_calls")
		if e != nil {
			return nil, e
		}
		if calls != nil && m.Role != "assistant" {
			return nil, badRequest(param+".tool_calls", "only assistant messages carry tool_calls")
		}
		out = append(out, Message{Role: m.Role, Content: text, Name: m.Name, ToolCalls: calls, ToolCallID: m.ToolCallID})
	}
	return out, nil
}

// parsePrompt accepts a string or an array of exactly one string.
func parsePrompt(raw json.RawMessage) (string, *apiError) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var ss []string
	if err := json.Unmarshal(raw, &ss); err != nil {
		return "", badRequest("prompt", "prompt must be a string or an array of one string")
	}
	if len(ss) != 1 {
		return "", badRequest("prompt", "prompt must hold exactly one string (batched prompts are not supported), got %d", len(ss))
	}
	return ss[0], nil
}

// parseStop accepts null, a string or an array of strings.
func parseStop(raw json.RawMessage) ([]string, *apiError) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		if s == "" {
			return nil, badRequest("stop", "stop must not be empty")
		}
		return []string{s}, nil
	}
	var ss []string
	if err := json.Unmarshal(raw, &ss); err != nil {
		return nil, badRequest("stop", "stop must be a string or an array of strings")
	}
	if len(ss) > maxStops {
		return nil, badRequest("stop", "at most %d stop strings, got %d", maxStops, len(ss))
	}
	for _, x := range ss {
		if x == "" {
			return nil, badRequest("stop", "stop strings must not be empty")
		}
	}
	return ss, nil
}

// usage is OpenAI's token usage object.
type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

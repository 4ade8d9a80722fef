package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/realmrt/realm/internal/grammar"
)

// Structured output: response_format (json_object, json_schema), a raw
// GBNF grammar (llama-server's "grammar" field), Ollama's format, and
// tool_choice "required" or a named function. Each becomes one GBNF
// grammar, checked here (a bad schema or grammar is a 400 before any
// guest runs) and handed to the app in GuestRequest.Grammar; the host
// masks the logits with it while sampling (abi.SampleParams.Grammar).

// maxGuestGrammar caps the grammar sent to the app: it travels in the
// app's GenerateParams, which the host caps at abi.MaxJSONLen.
const maxGuestGrammar = 48 << 10

// schemaParam is the param of errors in a response_format schema.
const schemaParam = "response_format.json_schema.schema"

// parseStructured validates response_format and grammar and returns the
// grammar they ask for ("" for none).
func parseStructured(rf, gr rawRef) (string, *apiError) {
	var text string
	if len(rf) > 0 && string(rf) != "null" {
		var f struct {
			Type       string `json:"type"`
			JSONSchema *struct {
				Name   string          `json:"name"`
				Schema json.RawMessage `json:"schema"`
				Strict *bool           `json:"strict"`
			} `json:"json_schema"`
		}
		if err := json.Unmarshal(rf, &f); err != nil {
			return "", badRequest("response_format", "response_format must be an object {type: \"text\" | \"json_object\" | \"json_schema\", ...}")
		}
		switch f.Type {
		case "text":
		case "json_object":
			text = grammar.JSONObjectGrammar()
		case "json_schema":
			if f.JSONSchema == nil || len(bytes.TrimSpace(f.JSONSchema.Schema)) == 0 || string(f.JSONSchema.Schema) == "null" {
				return "", badRequest("response_format.json_schema.schema", "response_format.json_schema.schema is required with type json_schema")
			}
			t, e := schemaGrammar(f.JSONSchema.Schema, schemaParam)
			if e != nil {
				return "", e
			}
			text = t
		default:
			return "", badRequest("response_format.type", "response_format.type must be \"text\", \"json_object\" or \"json_schema\", got %s", quote(f.Type))
		}
	}
	if len(gr) > 0 && string(gr) != "null" && string(gr) != `""` {
		if text != "" {
			return "", badRequest("grammar", "grammar and response_format cannot be combined")
		}
		var g string
		if err := json.Unmarshal(gr, &g); err != nil {
			return "", badRequest("grammar", "grammar must be a string (GBNF)")
		}
		if _, err := grammar.Parse(g); err != nil {
			e := badRequest("grammar", "invalid %v", err)
			e.code = "invalid_grammar"
			return "", e
		}
		text = g
	}
	if len(text) > maxGuestGrammar {
		return "", badRequest("response_format", "the grammar is %d bytes; at most %d are supported", len(text), maxGuestGrammar)
	}
	return text, nil
}

// schemaGrammar compiles a JSON schema; an invalid or unsupported one is
// a 400 naming the keyword.
func schemaGrammar(schema []byte, param string) (string, *apiError) {
	text, err := grammar.FromJSONSchema(schema)
	if err != nil {
		return "", schemaError(err, param)
	}
	return text, nil
}

func schemaError(err error, param string) *apiError {
	var se *grammar.SchemaError
	e := badRequest(param, "%s: %v", param, err)
	e.code = "invalid_json_schema"
	if errors.As(err, &se) && se.Keyword != "" && strings.Contains(se.Msg, "not supported") {
		e.code = "unsupported_json_schema"
	}
	return e
}

// parseToolChoice returns the tool a request forces: "" (none: auto or
// none), "*" (tool_choice "required": any tool) or a function's name.
// parseTools has validated the choice against the tools.
func parseToolChoice(choice rawRef) string {
	switch strings.TrimSpace(string(choice)) {
	case "", "null", `"auto"`, `"none"`:
		return ""
	case `"required"`:
		return "*"
	}
	var c struct {
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if json.Unmarshal(choice, &c) != nil {
		return ""
	}
	return c.Function.Name
}

// checkToolChoice validates a tool_choice other than "auto"/"none"
// against the declared tool names.
func checkToolChoice(choice rawRef, names map[string]bool) *apiError {
	switch strings.TrimSpace(string(choice)) {
	case "", "null", `"auto"`, `"none"`, `"required"`:
		return nil
	}
	var c struct {
		Type     string `json:"type"`
		Function *struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if err := json.Unmarshal(choice, &c); err != nil || c.Type != "function" || c.Function == nil || c.Function.Name == "" {
		return badRequest("tool_choice", `tool_choice must be "auto", "none", "required" or {"type": "function", "function": {"name": ...}}`)
	}
	if !names[c.Function.Name] {
		return badRequest("tool_choice", "tool_choice names the function %s, which is not among the tools", quote(c.Function.Name))
	}
	return nil
}

// toolGrammar is the grammar of one call, in the model family's format,
// of the tool named force ("*": any of them), with its arguments
// constrained by the tool's parameters schema.
func toolGrammar(tools []byte, force, format string) (string, *apiError) {
	var list []struct {
		Function struct {
			Name       string          `json:"name"`
			Parameters json.RawMessage `json:"parameters"`
		} `json:"function"`
	}
	if err := json.Unmarshal(tools, &list); err != nil {
		return "", badRequest("tools", "tools: %v", err)
	}
	argsKey := "arguments"
	if format == toolsLlama3 {
		argsKey = "parameters"
	}
	b := grammar.NewBuilder()
	var calls []string
	for i, t := range list {
		if force != "*" && t.Function.Name != force {
			continue
		}
		params := t.Function.Parameters
		if len(bytes.TrimSpace(params)) == 0 || string(params) == "null" {
			params = []byte(`{"type":"object"}`)
		}
		args, err := b.Schema(params)
		if err != nil {
			return "", schemaError(err, fmt.Sprintf("tools[%d].function.parameters", i))
		}
		name, _ := json.Marshal(t.Function.Name)
		calls = append(calls, grammar.Literal(`{"name": `+string(name)+`, "`+argsKey+`": `)+" "+args+` "}"`)
	}
	if len(calls) == 0 {
		return "", badRequest("tool_choice", "tool_choice names no declared tool")
	}
	b.Rule("tool-call", strings.Join(calls, " | "))
	var root string
	switch format {
	case toolsHermes:
		root = `"<tool_call>\n" tool-call "\n</tool_call>"`
	case toolsLlama3:
		root = "tool-call"
	case toolsMistral:
		root = `"[" tool-call "]"`
	default:
		return "", badRequest("tool_choice", "this model's chat template has no tool-call format to enforce")
	}
	text, err := b.Grammar(root)
	if err != nil {
		return "", schemaError(err, "tools")
	}
	if len(text) > maxGuestGrammar {
		return "", badRequest("tools", "the tools' grammar is %d bytes; at most %d are supported", len(text), maxGuestGrammar)
	}
	return text, nil
}

// ollamaFormat translates Ollama's format ("json" or a JSON schema) into
// an OpenAI response_format (nil: none).
func ollamaFormat(raw json.RawMessage) (any, error) {
	t := bytes.TrimSpace(raw)
	switch {
	case len(t) == 0 || string(t) == "null" || string(t) == `""`:
		return nil, nil
	case string(t) == `"json"`:
		return map[string]string{"type": "json_object"}, nil
	case t[0] == '{':
		return map[string]any{"type": "json_schema", "json_schema": map[string]any{"name": "format", "schema": json.RawMessage(t)}}, nil
	}
	return nil, fmt.Errorf(`format must be "json" or a JSON schema object`)
}

// grammarUnmet checks a buffered answer against the grammar the app was
// given. An app that does not pass GuestRequest.Grammar on to the host's
// sampler (one with its own sampler) would otherwise return unconstrained
// text as structured output. Only a whole answer is checked: none cut by
// max_tokens or a stop string.
func grammarUnmet(g GuestRequest, finish, text string) *apiError {
	if g.Grammar == "" || finish != "stop" || len(g.Stop) > 0 {
		return nil
	}
	p, err := grammar.Parse(g.Grammar)
	if err != nil {
		return nil // checked before the run
	}
	m, err := grammar.NewMatcher(p, grammar.NewVocab(noTokens{}))
	if err == nil && m.AcceptBytes([]byte(text)) == nil && m.Complete() {
		return nil
	}
	return &apiError{status: http.StatusInternalServerError, typ: "server_error", code: "grammar_not_applied",
		message: "the app's answer does not follow the requested response_format, grammar or tool_choice (the app must pass the request's grammar on to the host's sampler)",
		kind:    "app_error"}
}

// noTokens is an empty vocabulary: matching text needs no tokens.
type noTokens struct{}

func (noTokens) NVocab() int        { return 0 }
func (noTokens) Piece(int32) []byte { return nil }
func (noTokens) IsEOG(int32) bool   { return false }
func (noTokens) EOGs() []int32      { return nil }

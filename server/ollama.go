package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/realmrt/realm/gguf"
	"github.com/realmrt/realm/loader"
)

// Ollama's API (https://github.com/ollama/ollama/blob/main/docs/api.md)
// over the OpenAI one: /api/chat and /api/generate are translated into
// a chat or text completion request and served by the same handler
// (complete) — the same app selection and policy, API keys, model
// registry, admission queue, WASM app run and metrics — and its answer
// (JSON or Server-Sent Events) is translated back into Ollama's JSON or
// NDJSON stream. No second generation path exists.

// OllamaVersion is what GET /api/version reports: the Ollama API
// version whose shapes this server speaks (clients gate features on it).
const OllamaVersion = "0.6.4"

// endpointLabel is the context key carrying the metrics label of a
// request that complete serves on behalf of another endpoint.
type endpointLabel struct{}

// endpointLabelOf returns the metrics label ctx carries, or def.
func endpointLabelOf(ctx context.Context, def string) string {
	if l, ok := ctx.Value(endpointLabel{}).(string); ok {
		return l
	}
	return def
}

// ollamaOptions maps the Ollama options this server implements to the
// OpenAI request field that carries them.
var ollamaOptions = map[string]string{
	"temperature":       "temperature",
	"top_k":             "top_k",
	"top_p":             "top_p",
	"min_p":             "min_p",
	"seed":              "seed",
	"stop":              "stop",
	"num_predict":       "max_tokens",
	"repeat_penalty":    "repeat_penalty",
	"presence_penalty":  "presence_penalty",
	"frequency_penalty": "frequency_penalty",
}

// ollamaFields lists the top-level fields of /api/chat and
// /api/generate that are implemented; any other field is refused by
// name rather than ignored.
var ollamaFields = map[bool]map[string]bool{
	true:  {"model": true, "messages": true, "stream": true, "options": true, "tools": true, "format": true},
	false: {"model": true, "prompt": true, "system": true, "raw": true, "stream": true, "options": true, "format": true},
}

// ollamaError answers an error in Ollama's shape: {"error": "..."}.
func ollamaError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// ollamaRequest is a parsed /api/chat or /api/generate body.
type ollamaRequest struct {
	model  string
	stream bool
	body   map[string]any // the OpenAI request
	chat   bool           // served as a chat completion
	empty  bool           // /api/generate without a prompt: load only
}

// parseOllama translates an Ollama body into an OpenAI request. chat
// says /api/chat.
func parseOllama(body []byte, chat bool) (*ollamaRequest, error) {
	var in map[string]json.RawMessage
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, fmt.Errorf("invalid JSON body: %v", err)
	}
	keys := make([]string, 0, len(in))
	for k := range in {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if ollamaFields[chat][k] {
			continue
		}
		// Fields clients send with their zero value are no request for
		// the feature.
		switch string(in[k]) {
		case "null", `""`, "[]", "{}", "false":
			continue
		}
		return nil, fmt.Errorf("the field %q is not supported by this server", k)
	}
	out := &ollamaRequest{stream: true, chat: chat, body: map[string]any{}}
	if err := jsonField(in, "model", &out.model); err != nil {
		return nil, err
	}
	if out.model == "" {
		return nil, errors.New("model is required")
	}
	if raw, ok := in["stream"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &out.stream); err != nil {
			return nil, fmt.Errorf("stream must be a boolean")
		}
	}
	b := out.body
	b["model"] = out.model
	b["stream"] = out.stream
	if out.stream {
		b["stream_options"] = map[string]bool{"include_usage": true}
	}
	if chat {
		var msgs []struct {
			Role     string `json:"role"`
			Content  string `json:"content"`
			Images   []any  `json:"images"`
			ToolName string `json:"tool_name"`
			Tools    []struct {
				Function struct {
					Name      string          `json:"name"`
					Arguments json.RawMessage `json:"arguments"`
				} `json:"function"`
			} `json:"tool_calls"`
		}
		if raw, ok := in["messages"]; ok {
			if err := json.Unmarshal(raw, &msgs); err != nil {
				return nil, fmt.Errorf("messages must be an array of {role, content} objects")
			}
		}
		if len(msgs) == 0 {
			return nil, errors.New("messages is required")
		}
		list := make([]map[string]any, len(msgs))
		for i, m := range msgs {
			if len(m.Images) > 0 {
				return nil, fmt.Errorf("messages[%d].images: images are not supported", i)
			}
			msg := map[string]any{"role": m.Role, "content": m.Content}
			if m.ToolName != "" {
				msg["name"] = m.ToolName
			}
			if len(m.Tools) > 0 {
				// OpenAI's shape; the arguments stay an object.
				calls := make([]map[string]any, len(m.Tools))
				for j, c := range m.Tools {
					calls[j] = map[string]any{"id": fmt.Sprintf("call_%d_%d", i, j), "type": "function",
						"function": map[string]any{"name": c.Function.Name, "arguments": c.Function.Arguments}}
				}
				msg["tool_calls"] = calls
			}
			list[i] = msg
		}
		b["messages"] = list
		if raw, ok := in["tools"]; ok && string(raw) != "null" {
			b["tools"] = json.RawMessage(raw)
		}
	} else {
		var prompt, system string
		var raw bool
		if err := jsonField(in, "prompt", &prompt); err != nil {
			return nil, err
		}
		if err := jsonField(in, "system", &system); err != nil {
			return nil, err
		}
		if err := jsonField(in, "raw", &raw); err != nil {
			return nil, err
		}
		switch {
		case prompt == "" && system == "":
			out.empty = true
		case raw:
			if system != "" {
				return nil, errors.New("system cannot be combined with raw")
			}
			b["prompt"] = prompt
		default:
			// Ollama renders a generate prompt with the model's
			// template: here, as a chat of one user turn.
			out.chat = true
			var msgs []map[string]string
			if system != "" {
				msgs = append(msgs, map[string]string{"role": "system", "content": system})
			}
			b["messages"] = append(msgs, map[string]string{"role": "user", "content": prompt})
		}
	}
	if rf, err := ollamaFormat(in["format"]); err != nil {
		return nil, err
	} else if rf != nil {
		b["response_format"] = rf
	}
	if raw, ok := in["options"]; ok && string(raw) != "null" {
		var opts map[string]json.RawMessage
		if err := json.Unmarshal(raw, &opts); err != nil {
			return nil, fmt.Errorf("options must be an object")
		}
		names := make([]string, 0, len(opts))
		for k := range opts {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			field, ok := ollamaOptions[k]
			if !ok {
				return nil, fmt.Errorf("the option %q is not supported by this server", k)
			}
			v := opts[k]
			if k == "num_predict" {
				var n int
				if err := json.Unmarshal(v, &n); err != nil {
					return nil, fmt.Errorf("options.num_predict must be an integer")
				}
				if n == -1 {
					continue // no limit: the server's default
				}
				if n < 1 {
					return nil, fmt.Errorf("options.num_predict must be ≥ 1 or -1, got %d", n)
				}
			}
			b[field] = v
		}
	}
	return out, nil
}

// jsonField decodes in[key] into v when present.
func jsonField(in map[string]json.RawMessage, key string, v any) error {
	raw, ok := in[key]
	if !ok || string(raw) == "null" {
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("invalid type for %q", key)
	}
	return nil
}

// ollamaGenerate serves POST /api/chat (chat) and /api/generate.
func (s *Server) ollamaGenerate(w http.ResponseWriter, r *http.Request, chat bool) {
	start := time.Now()
	label := "ollama_generate"
	if chat {
		label = "ollama_chat"
	}
	// The body counts against the budget of bodies being read, as in
	// complete, until it is translated.
	reserve := int64(maxBodyBytes)
	if r.ContentLength >= 0 && r.ContentLength <= maxBodyBytes {
		reserve = r.ContentLength
	}
	reserve *= 2
	if !s.bodies.take(reserve) {
		s.metrics.request(label, "", "", http.StatusServiceUnavailable)
		w.Header().Set("Connection", "close")
		w.Header().Set("Retry-After", retryAfterSec)
		ollamaError(w, http.StatusServiceUnavailable, "the server is reading too many request bodies at once; retry shortly")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		s.bodies.give(reserve)
		status := http.StatusBadRequest
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			status = http.StatusRequestEntityTooLarge
		}
		s.metrics.request(label, "", "", status)
		ollamaError(w, status, "reading the request body: "+redact(err.Error()))
		return
	}
	req, err := parseOllama(body, chat)
	s.bodies.give(reserve)
	if err != nil {
		s.metrics.request(label, "", "", http.StatusBadRequest)
		s.metrics.error("bad_request", "", "")
		ollamaError(w, http.StatusBadRequest, err.Error())
		return
	}
	if req.empty {
		s.ollamaLoad(w, r, req.model, label, start)
		return
	}
	ob, err := json.Marshal(req.body)
	if err != nil {
		ollamaError(w, http.StatusInternalServerError, err.Error())
		return
	}
	path := "/v1/completions"
	if req.chat {
		path = "/v1/chat/completions"
	}
	r2 := r.Clone(context.WithValue(r.Context(), endpointLabel{}, label))
	r2.URL.Path = path
	r2.Body = io.NopCloser(bytes.NewReader(ob))
	r2.ContentLength = int64(len(ob))
	tw := &ollamaWriter{w: w, rc: http.NewResponseController(w), hdr: http.Header{}, chat: chat, stream: req.stream, model: req.model, start: start}
	s.complete(tw, r2, req.chat, "")
	tw.end()
}

// ollamaLoad answers a /api/generate without a prompt: the model is
// loaded (and kept, as the cache keeps idle models), as Ollama does.
func (s *Server) ollamaLoad(w http.ResponseWriter, r *http.Request, name, label string, start time.Time) {
	a := s.def
	if ma := s.modelApps[name]; ma != nil {
		a = ma
	}
	if !a.allows(name) {
		s.metrics.request(label, name, "", http.StatusNotFound)
		ollamaError(w, http.StatusNotFound, fmt.Sprintf("model %s not found", quote(name)))
		return
	}
	lm, err := s.models.Acquire(r.Context(), name)
	if err != nil {
		e := acquireError(name, err)
		s.metrics.request(label, name, "", e.status)
		ollamaError(w, e.status, e.message)
		return
	}
	s.models.Release(lm)
	s.metrics.request(label, lm.Name, lm.BackendName, http.StatusOK)
	writeJSON(w, http.StatusOK, map[string]any{
		"model": name, "created_at": time.Now().UTC().Format(time.RFC3339Nano), "response": "",
		"done": true, "done_reason": "load", "total_duration": time.Since(start).Nanoseconds(),
	})
}

// ollamaWriter receives complete's OpenAI answer and writes it to w in
// Ollama's shape: NDJSON lines as the SSE events arrive when streaming,
// one JSON object (or {"error"}) at the end otherwise.
type ollamaWriter struct {
	w      http.ResponseWriter
	rc     *http.ResponseController
	hdr    http.Header
	chat   bool // /api/chat: "message"; /api/generate: "response"
	stream bool
	model  string
	start  time.Time

	status  int
	sse     bool // complete answered with an event stream
	started bool // our headers are out
	ended   bool
	pending bytes.Buffer // SSE bytes not yet a whole event; or the whole body
	firstAt time.Time
	finish  string
	usage   *usage
}

// Header implements http.ResponseWriter.
func (o *ollamaWriter) Header() http.Header { return o.hdr }

// WriteHeader implements http.ResponseWriter.
func (o *ollamaWriter) WriteHeader(code int) {
	if o.status != 0 {
		return
	}
	o.status = code
	o.sse = code == http.StatusOK && strings.HasPrefix(o.hdr.Get("Content-Type"), "text/event-stream")
}

// Write implements http.ResponseWriter.
func (o *ollamaWriter) Write(p []byte) (int, error) {
	if o.status == 0 {
		o.WriteHeader(http.StatusOK)
	}
	o.pending.Write(p)
	if !o.sse {
		return len(p), nil
	}
	for {
		b := o.pending.Bytes()
		i := bytes.Index(b, []byte("\n\n"))
		if i < 0 {
			return len(p), nil
		}
		ev := bytes.TrimPrefix(b[:i], []byte("data: "))
		err := o.event(ev)
		o.pending.Next(i + 2)
		if err != nil {
			return 0, err
		}
	}
}

// Flush implements http.Flusher.
func (o *ollamaWriter) Flush() {
	if o.started {
		_ = o.rc.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection's deadlines.
func (o *ollamaWriter) Unwrap() http.ResponseWriter { return o.w }

// begin sends the NDJSON stream's headers.
func (o *ollamaWriter) begin() {
	if o.started {
		return
	}
	o.started = true
	o.w.Header().Set("Content-Type", "application/x-ndjson")
	o.w.WriteHeader(http.StatusOK)
}

// line writes one NDJSON line.
func (o *ollamaWriter) line(v any) error {
	o.begin()
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := o.w.Write(append(b, '\n')); err != nil {
		return err
	}
	return o.rc.Flush()
}

// event handles one SSE event of a streamed completion.
func (o *ollamaWriter) event(data []byte) error {
	if string(data) == "[DONE]" {
		o.ended = true
		return o.line(o.final(""))
	}
	var ev struct {
		Choices []struct {
			Text  *string `json:"text"`
			Delta struct {
				Content   *string
				ToolCalls []openAICall `json:"tool_calls"`
			}
			FinishReason *string `json:"finish_reason"`
		}
		Usage *usage
		Error *struct{ Message string }
	}
	if err := json.Unmarshal(data, &ev); err != nil {
		return fmt.Errorf("server: translating to Ollama: %w", err)
	}
	if ev.Error != nil {
		o.ended = true
		return o.line(map[string]string{"error": ev.Error.Message})
	}
	if ev.Usage != nil {
		o.usage = ev.Usage
	}
	for _, c := range ev.Choices {
		if c.FinishReason != nil {
			o.finish = ollamaDoneReason(*c.FinishReason)
		}
		if len(c.Delta.ToolCalls) > 0 {
			m := o.piece("", false)
			m["message"].(map[string]any)["tool_calls"] = ollamaCalls(c.Delta.ToolCalls)
			if err := o.line(m); err != nil {
				return err
			}
		}
		text := c.Text
		if text == nil {
			text = c.Delta.Content
		}
		if text == nil || *text == "" {
			continue
		}
		if o.firstAt.IsZero() {
			o.firstAt = time.Now()
		}
		if err := o.line(o.piece(*text, false)); err != nil {
			return err
		}
	}
	return nil
}

// piece is one object of the answer with text.
func (o *ollamaWriter) piece(text string, done bool) map[string]any {
	m := map[string]any{"model": o.model, "created_at": time.Now().UTC().Format(time.RFC3339Nano), "done": done}
	if o.chat {
		m["message"] = map[string]any{"role": "assistant", "content": text}
	} else {
		m["response"] = text
	}
	return m
}

// final is the last object: done, with the stop reason, counts and
// durations (nanoseconds, as Ollama reports them).
func (o *ollamaWriter) final(text string) map[string]any {
	m := o.piece(text, true)
	now := time.Now()
	first := o.firstAt
	if first.IsZero() {
		first = now
	}
	m["done_reason"] = o.finish
	m["total_duration"] = now.Sub(o.start).Nanoseconds()
	m["load_duration"] = 0
	m["prompt_eval_duration"] = first.Sub(o.start).Nanoseconds()
	m["eval_duration"] = now.Sub(first).Nanoseconds()
	if o.usage != nil {
		m["prompt_eval_count"] = o.usage.PromptTokens
		m["eval_count"] = o.usage.CompletionTokens
	}
	return m
}

// end writes what a non-streamed answer (or an error) became.
func (o *ollamaWriter) end() {
	if o.sse {
		// Streamed: every event was translated as it came (a stream
		// that broke off has nothing more to say).
		return
	}
	status := o.status
	if status == 0 {
		status = http.StatusOK
	}
	if ra := o.hdr.Get("Retry-After"); ra != "" {
		o.w.Header().Set("Retry-After", ra)
	}
	if c := o.hdr.Get("Connection"); c != "" {
		o.w.Header().Set("Connection", c)
	}
	if status != http.StatusOK {
		var e struct{ Error struct{ Message string } }
		msg := strings.TrimSpace(o.pending.String())
		if json.Unmarshal(o.pending.Bytes(), &e) == nil && e.Error.Message != "" {
			msg = e.Error.Message
		}
		ollamaError(o.w, status, msg)
		return
	}
	if o.pending.Len() == 0 {
		return // the client went away: complete wrote nothing
	}
	var res struct {
		Choices []struct {
			Text    string `json:"text"`
			Message struct {
				Content   string
				ToolCalls []openAICall `json:"tool_calls"`
			}
			FinishReason string `json:"finish_reason"`
		}
		Usage usage
	}
	if err := json.Unmarshal(o.pending.Bytes(), &res); err != nil || len(res.Choices) == 0 {
		ollamaError(o.w, http.StatusInternalServerError, "server: translating to Ollama: unexpected answer")
		return
	}
	c := res.Choices[0]
	text := c.Text
	if text == "" {
		text = c.Message.Content
	}
	if text != "" {
		o.firstAt = o.start // no stream: the prompt and generation are not timed apart
	}
	o.finish, o.usage = ollamaDoneReason(c.FinishReason), &res.Usage
	m := o.final(text)
	if len(c.Message.ToolCalls) > 0 {
		m["message"].(map[string]any)["tool_calls"] = ollamaCalls(c.Message.ToolCalls)
	}
	writeJSON(o.w, http.StatusOK, m)
}

// ollamaModel is an entry of /api/tags and /api/ps.
func ollamaModel(e loader.ModelEntry) map[string]any {
	var mod string
	if fi, err := os.Stat(e.Path); err == nil {
		mod = fi.ModTime().UTC().Format(time.RFC3339Nano)
	}
	var families []string
	if e.Arch != "" {
		families = []string{e.Arch}
	}
	return map[string]any{
		"name": e.Name, "model": e.Name, "modified_at": mod, "size": e.Size, "digest": e.SHA256,
		"details": map[string]any{"parent_model": "", "format": "gguf", "family": e.Arch, "families": families,
			"parameter_size": "", "quantization_level": e.Type},
	}
}

// ollamaTags serves GET /api/tags: the servable models.
func (s *Server) ollamaTags(w http.ResponseWriter, r *http.Request) {
	s.ollamaList(w, r, "ollama_tags", false)
}

// ollamaPS serves GET /api/ps: the models loaded now.
func (s *Server) ollamaPS(w http.ResponseWriter, r *http.Request) {
	s.ollamaList(w, r, "ollama_ps", true)
}

func (s *Server) ollamaList(w http.ResponseWriter, r *http.Request, label string, loadedOnly bool) {
	entries := s.models.List(r.Context())
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name < entries[j].Name })
	list := make([]map[string]any, 0, len(entries))
	for _, e := range entries {
		if e.Error != "" || loadedOnly && !e.Loaded {
			continue
		}
		m := ollamaModel(e)
		if loadedOnly {
			// Idle models stay loaded until the budget needs room.
			m["expires_at"] = time.Time{}.Format(time.RFC3339)
			m["size_vram"] = 0
		}
		list = append(list, m)
	}
	s.metrics.request(label, "", "", http.StatusOK)
	writeJSON(w, http.StatusOK, map[string]any{"models": list})
}

// ollamaShow serves POST /api/show: a model's details, GGUF metadata
// and chat template, read from the file's header (the model is not
// loaded).
func (s *Server) ollamaShow(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model   string `json:"model"`
		Name    string `json:"name"` // the older field
		Verbose bool   `json:"verbose"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		s.metrics.request("ollama_show", "", "", http.StatusBadRequest)
		ollamaError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
		return
	}
	if req.Model == "" {
		req.Model = req.Name
	}
	var entry *loader.ModelEntry
	for _, e := range s.models.List(r.Context()) {
		if e.Name == req.Model && e.Error == "" {
			entry = &e
			break
		}
	}
	if entry == nil {
		s.metrics.request("ollama_show", "", "", http.StatusNotFound)
		ollamaError(w, http.StatusNotFound, fmt.Sprintf("model %s not found", quote(req.Model)))
		return
	}
	f, err := readHeader(entry.Path)
	if err != nil {
		s.metrics.request("ollama_show", "", "", http.StatusInternalServerError)
		ollamaError(w, http.StatusInternalServerError, redact(err.Error()))
		return
	}
	info := map[string]any{}
	var template string
	for _, kv := range f.Metadata {
		if kv.Key == "tokenizer.chat_template" {
			template, _ = kv.Value.AsString()
			continue
		}
		if _, isArray := kv.Value.ArrayType(); isArray {
			if req.Verbose {
				info[kv.Key] = kv.Value.Format(1 << 30)
			} else {
				info[kv.Key] = nil
			}
			continue
		}
		if v, ok := kv.Value.AsString(); ok {
			info[kv.Key] = v
		} else if v, ok := kv.Value.AsInt(); ok {
			info[kv.Key] = v
		} else if v, ok := kv.Value.AsUint(); ok {
			info[kv.Key] = v
		} else if v, ok := kv.Value.AsFloat(); ok {
			info[kv.Key] = v
		} else if v, ok := kv.Value.AsBool(); ok {
			info[kv.Key] = v
		}
	}
	var params int64
	for i := range f.Tensors {
		if n := f.Tensors[i].Elements(); n > 0 {
			params += n
		}
	}
	info["general.parameter_count"] = params
	details := ollamaModel(*entry)["details"]
	s.metrics.request("ollama_show", entry.Name, "", http.StatusOK)
	writeJSON(w, http.StatusOK, map[string]any{
		"modelfile": "", "parameters": "", "template": template, "details": details,
		"model_info": info, "capabilities": []string{"completion"},
		"modified_at": ollamaModel(*entry)["modified_at"],
	})
}

// readHeader reads the GGUF header of path.
func readHeader(path string) (*gguf.File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		return nil, err
	}
	f, err := gguf.Read(fh, fi.Size())
	if err != nil {
		return nil, fmt.Errorf("reading the model's header: %w", err)
	}
	return f, nil
}

// ollamaVersion serves GET /api/version.
func (s *Server) ollamaVersion(w http.ResponseWriter, r *http.Request) {
	s.metrics.request("ollama_version", "", "", http.StatusOK)
	writeJSON(w, http.StatusOK, map[string]string{"version": OllamaVersion})
}

// openAICall is a tool call of an OpenAI answer.
type openAICall struct {
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

// ollamaCalls gives tool calls Ollama's shape: arguments as an object.
func ollamaCalls(calls []openAICall) []map[string]any {
	out := make([]map[string]any, len(calls))
	for i, c := range calls {
		args := json.RawMessage(c.Function.Arguments)
		if !json.Valid(args) {
			args = json.RawMessage("{}")
		}
		out[i] = map[string]any{"function": map[string]any{"name": c.Function.Name, "arguments": args}}
	}
	return out
}

// ollamaDoneReason maps an OpenAI finish_reason to Ollama's done_reason
// (Ollama ends a tool call with "stop").
func ollamaDoneReason(finish string) string {
	if finish == "tool_calls" {
		return "stop"
	}
	return finish
}

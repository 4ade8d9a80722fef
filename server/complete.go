package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/realmrt/realm/abi"
	"github.com/realmrt/realm/core"
	"github.com/realmrt/realm/tokenizer"
)

// statusClientGone is the status recorded (nginx's convention) for a
// request whose client disconnected before the answer was complete.
const statusClientGone = 499

// complete serves a chat or text completion.
func (s *Server) complete(hw http.ResponseWriter, r *http.Request, chat bool, appName string) {
	start := time.Now()
	// Every write gets WriteTimeout from when it starts, so a stream
	// lasts as long as its client reads it and a slow answer is not
	// cut by a deadline set when the request arrived.
	w := &deadlineWriter{ResponseWriter: hw, rc: http.NewResponseController(hw), d: s.limits.WriteTimeout}
	endpoint := "completions"
	if chat {
		endpoint = "chat"
	}
	model, backend := "", ""
	status := http.StatusOK
	label := endpointLabelOf(r.Context(), endpoint) // another API's, served here (ollama.go)
	defer func() { s.metrics.request(label, model, backend, status) }()
	fail := func(e *apiError) {
		status = e.status
		kind := e.kind
		if kind == "" {
			kind = "error"
		}
		s.metrics.error(kind, model, backend)
		writeError(w, e)
	}

	if r.ContentLength > maxBodyBytes {
		w.Header().Set("Connection", "close")
		fail(&apiError{status: http.StatusRequestEntityTooLarge, typ: "invalid_request_error", message: fmt.Sprintf("request body larger than %d bytes", maxBodyBytes), kind: "bad_request"})
		return
	}
	// The body and what parsing makes of it (about as much again)
	// count against the budget of bodies in flight until the request is
	// parsed.
	reserve := int64(maxBodyBytes)
	if r.ContentLength >= 0 {
		reserve = r.ContentLength
	}
	reserve *= 2
	if !s.bodies.take(reserve) {
		w.Header().Set("Connection", "close")
		fail(&apiError{status: http.StatusServiceUnavailable, typ: "server_error", code: "server_busy",
			message: "the server is reading too many request bodies at once; retry shortly", kind: "server_busy"})
		return
	}
	body, err := readBody(http.MaxBytesReader(hw, r.Body, maxBodyBytes), r.ContentLength)
	if err != nil {
		s.bodies.give(reserve)
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			fail(&apiError{status: http.StatusRequestEntityTooLarge, typ: "invalid_request_error", message: fmt.Sprintf("request body larger than %d bytes", maxBodyBytes), kind: "bad_request"})
			return
		}
		w.Header().Set("Connection", "close")
		fail(badRequest("", "reading the request body: %s", redact(err.Error())))
		return
	}
	// The body is in: ReadTimeout has done its job (see lift).
	lift(w.rc)
	p, aerr := parseRequest(body, chat)
	s.bodies.give(reserve)
	if aerr != nil {
		fail(aerr)
		return
	}
	a := s.def
	if appName != "" {
		a = s.apps[appName]
		if a == nil {
			fail(&apiError{status: http.StatusNotFound, typ: "invalid_request_error", code: "app_not_found", message: fmt.Sprintf("no app %s is configured", quote(appName)), kind: "app_not_found"})
			return
		}
	} else if ma := s.modelApps[p.model]; ma != nil {
		a = ma
	}
	if !a.allows(p.model) {
		e := modelNotFound(p.model)
		e.message = fmt.Sprintf("the model %s is not available to app %q", quote(p.model), a.name)
		fail(e)
		return
	}
	if e := checkN(p.n, a); e != nil {
		fail(e)
		return
	}
	if !s.backendUp() {
		fail(&apiError{status: http.StatusServiceUnavailable, typ: "server_error", code: "backend_unavailable", message: "the backend plugin is down or restarting; retry shortly", kind: "backend_unavailable"})
		return
	}
	// The run ends when the client goes away, and also when writing to
	// it fails (a client that stopped reading, cut off by the write
	// deadline, is still connected).
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)
	lm, err := s.models.Acquire(ctx, p.model)
	if err != nil {
		if ctx.Err() != nil {
			status = statusClientGone
			s.metrics.error("cancelled", "", "")
			return
		}
		fail(acquireError(p.model, err))
		return
	}
	defer s.models.Release(lm)
	model, backend = lm.Name, lm.Serving()
	if lm.Tokenizer == nil {
		fail(&apiError{status: http.StatusInternalServerError, typ: "server_error", message: "the model has no tokenizer", kind: "backend_error"})
		return
	}

	g := p.guest
	g.Endpoint, g.Model = endpoint, p.model
	toolFmt := "" // the tool-call format to parse the answer in
	if chat {
		var tmplText string
		if lm.Meta != nil {
			tmplText, _ = lm.Meta.String("tokenizer.chat_template")
		}
		tk := lm.Tokenizer
		var bos, eos string
		if tk.BOS() >= 0 {
			bos = tk.Token(tk.BOS())
		}
		if tk.EOS() >= 0 {
			eos = tk.Token(tk.EOS())
		}
		addBOS := tk.AddBOSDefault()
		prompt, aerr := chatPromptTools(ctx, tmplText, bos, eos, addBOS, p.messages, p.tools)
		if aerr != nil {
			if aerr.status == statusClientGone {
				status = statusClientGone
				s.metrics.error(aerr.kind, model, backend)
				return
			}
			fail(aerr)
			return
		}
		g.Prompt = prompt
		g.Messages = p.messages
		if p.tools != nil {
			toolFmt = toolFormat(tmplText)
			if p.forceTool != "" {
				gr, aerr := toolGrammar(p.tools, p.forceTool, toolFmt)
				if aerr != nil {
					fail(aerr)
					return
				}
				g.Grammar = gr
			}
			without := func() (string, *apiError) {
				return chatPromptTools(ctx, tmplText, bos, eos, addBOS, p.messages, nil)
			}
			if e := toolsFit(tk, core.ContextLimit(lm.Info.NCtxTrain, a.policy), prompt, addBOS, countTools(p.tools), without); e != nil {
				fail(e)
				return
			}
		}
	} else {
		g.Prompt = p.prompt
	}
	promptParam := "messages"
	if !chat {
		promptParam = "prompt"
	}
	// The host tokenizes the prompt, under the admission queue; what
	// can never fit the context is refused here, before any of that,
	// by its length in bytes alone.
	nCtx := core.ContextLimit(lm.Info.NCtxTrain, a.policy)
	if maxBytes := s.promptByteLimit(lm.Tokenizer, nCtx); maxBytes > 0 && len(g.Prompt) > maxBytes {
		e := badRequest(promptParam, "the prompt is %d bytes; this model's context of %d tokens holds at most %d bytes of text", len(g.Prompt), nCtx, maxBytes)
		e.code = "context_length_exceeded"
		fail(e)
		return
	}
	g.MaxTokens = a.policy.MaxTokensFor(p.maxTokens)

	id := newID(map[bool]string{true: "chatcmpl-", false: "cmpl-"}[chat])
	created := time.Now().Unix()
	lim := s.limiter(model)
	if err := lim.acquire(ctx); err != nil {
		if errors.Is(err, errQueueFull) {
			fail(&apiError{status: http.StatusTooManyRequests, typ: "rate_limit_error", code: "queue_full",
				message: fmt.Sprintf("model %q is busy: %d requests running and %d waiting; retry shortly", model, s.maxConcurrent, s.maxQueue), kind: "queue_full"})
			return
		}
		status = statusClientGone
		s.metrics.error("cancelled", model, backend)
		return
	}
	defer lim.release()

	// n choices are n runs of the app on the same prompt, one after the
	// other under this one slot, each with its own seed (see
	// choiceSeed); the usage counts the prompt once.
	hdr := new(bool) // the stream's headers are out
	var choices []any
	var u usage
	for i := range p.n {
		gi := g
		gi.Seed = choiceSeed(g.Seed, i)
		in, err := json.Marshal(gi)
		if err != nil {
			fail(&apiError{status: http.StatusInternalServerError, typ: "server_error", message: err.Error(), kind: "internal"})
			return
		}
		out := &output{
			w: w, rc: w.rc, stream: g.Stream && toolFmt == "", chat: chat, // a tool call is whole before it is sent
			id: id, created: created, model: p.model, index: i, hdrSent: hdr,
			onBytes: func(n int) { s.metrics.streamed(model, backend, n) },
			onError: func(err error) { cancel(fmt.Errorf("writing to the client: %w", err)) },
		}
		var onLogprob func(core.TokenLogprob)
		if out.stream && g.Logprobs {
			onLogprob = out.addLogprob // sent with the text they belong to
		}
		stderr := &tailBuffer{max: stderrTail}
		runStart := time.Now()
		res, runErr := s.host.Run(ctx, core.RunRequest{
			Module: a.module, Name: a.name, Stdin: bytes.NewReader(in), Stdout: out, Stderr: stderr, Policy: a.policy,
			OnLogprob: onLogprob,
		})
		end := time.Now()
		// The plugin that served the run (a supervisor may have fallen back
		// to another, or back, while it ran) labels what follows.
		backend = lm.Serving()
		generated, promptTokens := 0, 0
		if res != nil {
			generated, promptTokens = res.TokensGenerated, res.PromptTokens
		}
		var ttft, genTime time.Duration
		if !out.firstAt.IsZero() {
			ttft, genTime = out.firstAt.Sub(runStart), end.Sub(out.firstAt)
			if i == 0 {
				ttft = out.firstAt.Sub(start)
			}
		}
		s.metrics.run(model, backend, promptTokens, generated, ttft, genTime)
		s.log.Debug("request", "endpoint", endpoint, "app", a.name, "model", model, "choice", i, "prompt_tokens", promptTokens,
			"tokens", generated, "queue_wait", runStart.Sub(start), "ttft", ttft, "duration", end.Sub(start), "error", runErr)

		if e := s.runError(ctx, res, runErr, stderr.String()); e != nil {
			if e.code == "context_length_exceeded" {
				e.param = promptParam
			}
			if e.status == statusClientGone {
				status = statusClientGone
				s.metrics.error(e.kind, model, backend)
				return
			}
			if *hdr {
				status = e.status
				s.metrics.error(e.kind, model, backend)
				out.sendError(e)
				return
			}
			fail(e)
			return
		}
		finish := finishReason(res, generated, g.MaxTokens)
		if i == 0 {
			u.PromptTokens = promptTokens
		}
		u.CompletionTokens += generated
		u.TotalTokens = u.PromptTokens + u.CompletionTokens
		if !out.stream {
			if e := grammarUnmet(g, finish, out.buf.String()); e != nil {
				fail(e)
				return
			}
		}
		if toolFmt != "" {
			s.answerTools(out, toolFmt, finish, u, g, p, res, backend)
			return
		}
		if g.Stream {
			if out.endChoice(finish) != nil {
				return
			}
			continue
		}
		text := out.buf.String()
		var lp any
		if g.Logprobs {
			lp = logprobsObject(res.Logprobs, chat)
		}
		if chat {
			choices = append(choices, map[string]any{"index": i, "message": map[string]any{"role": "assistant", "content": text}, "logprobs": lp, "finish_reason": finish})
		} else {
			choices = append(choices, map[string]any{"index": i, "text": text, "logprobs": lp, "finish_reason": finish})
		}
	}
	if g.Stream {
		endStream(w, w.rc, id, created, chat, p.model, u, p.includeUsage)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"id": id, "object": (&output{chat: chat}).object(false), "created": created, "model": p.model,
		"choices": choices, "usage": u, "system_fingerprint": "realm-" + backend,
	})
}

// finishReason is OpenAI's finish_reason of a successful run: the
// host's stop reason of the app's generation; for an app that decoded
// token by token without the host's generate, "length" when it used up
// max_tokens.
func finishReason(res *core.RunResult, generated, maxTokens int) string {
	if res != nil {
		switch res.StopReason {
		case "length", "context":
			return "length"
		case "eos", "stop":
			return "stop"
		}
	}
	if generated >= maxTokens {
		return "length"
	}
	return "stop"
}

// runError classifies the outcome of a run; nil is success.
func (s *Server) runError(ctx context.Context, res *core.RunResult, err error, stderr string) *apiError {
	gone := &apiError{status: statusClientGone, kind: "cancelled"}
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return gone
		case errors.Is(err, core.ErrDeadline):
			return &apiError{status: http.StatusGatewayTimeout, typ: "server_error", code: "timeout", message: "the app ran past its time limit", kind: "timeout"}
		case errors.Is(err, core.ErrOutputLimit):
			return &apiError{status: http.StatusInternalServerError, typ: "server_error", message: "the app wrote more than its output limit", kind: "output_limit"}
		case errors.Is(err, core.ErrTrap):
			return &apiError{status: http.StatusInternalServerError, typ: "server_error", message: "the app trapped: " + redact(err.Error()), kind: "app_error"}
		}
		return &apiError{status: http.StatusInternalServerError, typ: "server_error", message: redact(err.Error()), kind: "app_error"}
	}
	if res == nil || res.ExitCode == 0 {
		return nil
	}
	if ctx.Err() != nil {
		return gone
	}
	msg := redact(stderr)
	if msg == "" {
		msg = fmt.Sprintf("the app exited with status %d", res.ExitCode)
	}
	// The guest SDK's errors name their errno ("... (EUNAVAIL)"): map
	// the ones that are the client's or the backend's doing.
	has := func(e abi.Errno) bool { return strings.Contains(stderr, e.String()) }
	switch {
	case has(abi.ErrnoUnavail):
		return &apiError{status: http.StatusServiceUnavailable, typ: "server_error", code: "backend_unavailable", message: msg, kind: "backend_unavailable"}
	case has(abi.ErrnoCtxfull):
		return &apiError{status: http.StatusBadRequest, typ: "invalid_request_error", code: "context_length_exceeded", message: msg, kind: "bad_request"}
	case has(abi.ErrnoNomem):
		// Usually the model's KV pool (kv_budget) is full: another try
		// after other requests end may fit.
		return &apiError{status: http.StatusServiceUnavailable, typ: "server_error", code: "out_of_memory", message: msg, kind: "over_budget"}
	case has(abi.ErrnoInval):
		return &apiError{status: http.StatusBadRequest, typ: "invalid_request_error", message: msg, kind: "bad_request"}
	case has(abi.ErrnoNoent):
		return &apiError{status: http.StatusNotFound, typ: "invalid_request_error", code: "model_not_found", message: msg, kind: "model_not_found"}
	case has(abi.ErrnoAcces):
		return &apiError{status: http.StatusForbidden, typ: "permission_error", message: msg, kind: "forbidden"}
	case has(abi.ErrnoCanceled):
		return &apiError{status: http.StatusGatewayTimeout, typ: "server_error", code: "timeout", message: msg, kind: "timeout"}
	case has(abi.ErrnoBackend), has(abi.ErrnoNomem), has(abi.ErrnoBadmodel):
		return &apiError{status: http.StatusInternalServerError, typ: "server_error", code: "backend_error", message: msg, kind: "backend_error"}
	}
	return &apiError{status: http.StatusInternalServerError, typ: "server_error", message: msg, kind: "app_error"}
}

// output receives the guest's stdout: buffered for a plain response,
// forwarded as SSE chunks (whole UTF-8 sequences only) when streaming.
// It is written by the run, on the handler's goroutine.
type output struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	stream  bool
	chat    bool
	id      string
	created int64
	model   string
	index   int   // the choice's index (n > 1)
	hdrSent *bool // the response's headers are out (shared by its choices; nil: own)
	onBytes func(int)
	onError func(error) // a write to the client failed

	werr    error // the first failed write
	started bool
	firstAt time.Time
	chunker UTF8Chunker
	buf     bytes.Buffer

	logprobs any // sent on the chunk with the finish reason

	// Streamed logprobs: the tokens produced whose text is not sent yet
	// (addLogprob), the bytes of text sent and those of the tokens
	// already sent with it.
	lpLive             bool
	pending            []core.TokenLogprob
	sentBytes, lpBytes int
}

func (o *output) object(chunk bool) string {
	switch {
	case o.chat && chunk:
		return "chat.completion.chunk"
	case o.chat:
		return "chat.completion"
	}
	return "text_completion"
}

// Write implements io.Writer for the guest's stdout.
func (o *output) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if o.firstAt.IsZero() {
		o.firstAt = time.Now()
	}
	o.onBytes(len(p))
	if !o.stream {
		return o.buf.Write(p)
	}
	if o.werr != nil {
		return 0, o.werr
	}
	text := o.chunker.Add(p)
	if text == "" {
		return len(p), nil
	}
	if err := o.sendText(text); err != nil {
		o.werr = err
		if o.onError != nil {
			o.onError(err)
		}
		return 0, err
	}
	return len(p), nil
}

// begin sends the headers and, for chat, the role chunk.
func (o *output) begin() error {
	if o.started {
		return nil
	}
	o.started = true
	if o.hdrSent == nil {
		o.hdrSent = new(bool)
	}
	if !*o.hdrSent {
		*o.hdrSent = true
		h := o.w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		h.Set("Connection", "keep-alive")
		h.Set("X-Accel-Buffering", "no")
		o.w.WriteHeader(http.StatusOK)
	}
	if o.chat {
		return o.event(o.chunk(map[string]any{"role": "assistant", "content": ""}, "", nil))
	}
	return nil
}

// chunk builds one streamed object with one choice; text completions
// carry text where chat carries a delta.
func (o *output) chunk(delta map[string]any, finish string, u *usage) map[string]any {
	var lp any
	if finish != "" {
		lp = o.logprobs
	}
	return o.chunkLP(delta, finish, lp, u)
}

// chunkLP is chunk with the choice's logprobs lp (nil: null).
func (o *output) chunkLP(delta map[string]any, finish string, lp any, u *usage) map[string]any {
	var fr any
	if finish != "" {
		fr = finish
	}
	var choice map[string]any
	if o.chat {
		choice = map[string]any{"index": o.index, "delta": delta, "logprobs": lp, "finish_reason": fr}
	} else {
		text, _ := delta["content"].(string)
		choice = map[string]any{"index": o.index, "text": text, "logprobs": lp, "finish_reason": fr}
	}
	c := map[string]any{"id": o.id, "object": o.object(true), "created": o.created, "model": o.model, "choices": []any{choice}}
	if u != nil {
		c["usage"] = u
	}
	return c
}

// event writes one SSE event and flushes it.
func (o *output) event(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return o.raw(b)
}

func (o *output) raw(data []byte) error {
	var b bytes.Buffer
	b.Grow(len(data) + 8)
	b.WriteString("data: ")
	b.Write(data)
	b.WriteString("\n\n")
	if _, err := o.w.Write(b.Bytes()); err != nil {
		return err
	}
	return o.rc.Flush()
}

func (o *output) sendText(text string) error {
	if err := o.begin(); err != nil {
		return err
	}
	o.sentBytes += len(text)
	return o.event(o.chunkLP(map[string]any{"content": text}, "", o.takeLogprobs(false), nil))
}

// finish ends a successful stream of one choice: its end (endChoice),
// a usage chunk when asked, then [DONE].
func (o *output) finish(reason string, u usage, includeUsage bool) {
	if o.endChoice(reason) != nil {
		return
	}
	endStream(o.w, o.rc, o.id, o.created, o.chat, o.model, u, includeUsage)
}

// endChoice ends the stream of one choice: what the chunker held, then
// the chunk with the finish reason (and the logprobs of any token whose
// text was not sent: one cut by a stop string).
func (o *output) endChoice(reason string) error {
	if rest := o.chunker.Flush(); rest != "" {
		if err := o.sendText(rest); err != nil {
			return err
		}
	}
	if err := o.begin(); err != nil {
		return err
	}
	lp := o.logprobs
	if lp == nil {
		lp = o.takeLogprobs(true)
	}
	return o.event(o.chunkLP(map[string]any{}, reason, lp, nil))
}

// endStream ends a successful stream after its choices: a usage chunk
// when asked, then [DONE].
func endStream(w http.ResponseWriter, rc *http.ResponseController, id string, created int64, chat bool, model string, u usage, includeUsage bool) {
	o := &output{w: w, rc: rc, chat: chat}
	if includeUsage {
		c := map[string]any{"id": id, "object": o.object(true), "created": created, "model": model, "choices": []any{}, "usage": u}
		if o.event(c) != nil {
			return
		}
	}
	o.raw([]byte("[DONE]"))
}

// addLogprob queues a token's logprobs until its text is sent
// (core.RunRequest.OnLogprob; called before the token's text is
// written).
func (o *output) addLogprob(lp core.TokenLogprob) {
	o.lpLive = true
	o.pending = append(o.pending, lp)
}

// takeLogprobs returns the logprobs object of the queued tokens whose
// text has been sent in full (all of them when all is set), nil when
// logprobs are not streamed; a chunk of text that completes no token
// carries an empty list, as every chunk of a stream with logprobs
// carries the object.
func (o *output) takeLogprobs(all bool) any {
	if !o.lpLive {
		return nil
	}
	n, end := 0, o.lpBytes
	for n < len(o.pending) && (all || end+len(o.pending[n].Bytes) <= o.sentBytes) {
		end += len(o.pending[n].Bytes)
		n++
	}
	if all && n == 0 {
		return nil
	}
	lp := logprobsAt(o.pending[:n], o.chat, o.lpBytes)
	o.lpBytes = end
	o.pending = o.pending[n:]
	return lp
}

// sendError ends a stream that already started with an error event.
func (o *output) sendError(e *apiError) {
	o.event(e.body())
}

// promptByteLimit is the longest prompt, in bytes, that could fit nCtx
// tokens of tok: no token stands for more bytes of text than its own
// text has (a space is one byte of text but "▁" or "Ġ" in a vocabulary,
// a byte token "<0x41>" six), so a prompt longer than nCtx times the
// longest token text needs more than nCtx tokens. 0: no bound (WordPiece
// drops whitespace, so its tokens can stand for any number of bytes).
func (s *Server) promptByteLimit(tok *tokenizer.Tokenizer, nCtx int) int {
	if tok.Model() == tokenizer.ModelWPM {
		return 0
	}
	s.mu.Lock()
	longest, ok := s.pieces[tok]
	s.mu.Unlock()
	if !ok {
		for id := range tok.NVocab() {
			longest = max(longest, len(tok.Token(int32(id))))
		}
		longest = max(longest, 1)
		s.mu.Lock()
		if len(s.pieces) >= maxTokenizersKept {
			clear(s.pieces) // models come and go: keep the map bounded
		}
		s.pieces[tok] = longest
		s.mu.Unlock()
	}
	return nCtx * longest
}

// maxTokenizersKept bounds Server.pieces.
const maxTokenizersKept = 64

// readBody reads a request body; with a known length (already checked
// against maxBodyBytes) into a buffer of exactly that size, not the
// doubling buffers of io.ReadAll.
func readBody(body io.Reader, n int64) ([]byte, error) {
	if n < 0 {
		return io.ReadAll(body)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(body, b); err != nil {
		return nil, err
	}
	return b, nil
}

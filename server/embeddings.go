package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/realmrt/realm/abi"
	"github.com/realmrt/realm/core"
)

// Embeddings: OpenAI's POST /v1/embeddings and Ollama's POST /api/embed
// and /api/embeddings. Each request runs as a WASM app like a
// completion (the same app choice, policy, model registry, queue, API
// keys and metrics): the server tokenizes the inputs with the model's
// tokenizer (so that a too-long input is a 400 before anything runs),
// and the app receives EmbedGuestRequest on stdin, calls
// realm_host_embed once for the whole batch and writes the vectors to
// stdout as little-endian f32, n_embd per input, in order.

// EmbedGuestRequest is the JSON an app reads on stdin for an
// embeddings request (Endpoint "embeddings").
type EmbedGuestRequest struct {
	Endpoint string `json:"endpoint"` // "embeddings"
	Model    string `json:"model"`
	// Inputs are the token ids of each input, with the model's special
	// tokens (for bert: CLS … SEP).
	Inputs [][]int32 `json:"inputs"`
	// Normalize asks for unit-length vectors (abi.EmbedNormalize).
	Normalize bool `json:"normalize"`
}

// embedReq is a parsed embeddings request of either API.
type embedReq struct {
	model     string
	texts     []string  // text inputs (nil when tokens is set)
	tokens    [][]int32 // token-array inputs
	normalize bool
	truncate  bool // cut inputs longer than the context (Ollama's truncate)
	param     string
}

// embedResult is what a run returns.
type embedResult struct {
	vectors      [][]float32
	promptTokens int
	model        string
	loadTime     time.Duration
}

// maxEmbedInputs is the most inputs one request may carry (OpenAI's
// limit, and the host function's).
const maxEmbedInputs = abi.MaxEmbedInputs

// parseEmbedInput reads OpenAI's input: a string, an array of strings,
// an array of token ids, or an array of arrays of token ids.
func parseEmbedInput(raw json.RawMessage, param string) (texts []string, tokens [][]int32, e *apiError) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil, badRequest(param, "%s is required", param)
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if s == "" {
			return nil, nil, badRequest(param, "%s must not be empty", param)
		}
		return []string{s}, nil, nil
	}
	var arr []json.RawMessage
	if err := json.Unmarshal(raw, &arr); err != nil {
		return nil, nil, badRequest(param, "%s must be a string, an array of strings, an array of token ids or an array of arrays of token ids", param)
	}
	if len(arr) == 0 {
		return nil, nil, badRequest(param, "%s must not be an empty array", param)
	}
	if len(arr) > maxEmbedInputs {
		return nil, nil, badRequest(param, "%s has %d items; at most %d are allowed", param, len(arr), maxEmbedInputs)
	}
	switch first := bytes.TrimSpace(arr[0]); {
	case len(first) > 0 && first[0] == '"':
		texts = make([]string, len(arr))
		for i, a := range arr {
			if err := json.Unmarshal(a, &texts[i]); err != nil {
				return nil, nil, badRequest(param, "%s[%d] must be a string like the other items", param, i)
			}
			if texts[i] == "" {
				return nil, nil, badRequest(param, "%s[%d] must not be empty", param, i)
			}
		}
		return texts, nil, nil
	case len(first) > 0 && first[0] == '[':
		tokens = make([][]int32, len(arr))
		for i, a := range arr {
			if err := json.Unmarshal(a, &tokens[i]); err != nil {
				return nil, nil, badRequest(param, "%s[%d] must be an array of token ids like the other items", param, i)
			}
			if len(tokens[i]) == 0 {
				return nil, nil, badRequest(param, "%s[%d] must not be empty", param, i)
			}
		}
		return nil, tokens, nil
	default:
		var ids []int32
		if err := json.Unmarshal(raw, &ids); err != nil {
			return nil, nil, badRequest(param, "%s must be a string, an array of strings, an array of token ids or an array of arrays of token ids", param)
		}
		return nil, [][]int32{ids}, nil
	}
}

// parseOpenAIEmbed parses a /v1/embeddings body. Fields Realm does not
// implement are a 400 naming them.
func parseOpenAIEmbed(body []byte) (*embedReq, bool, *apiError) {
	var in map[string]json.RawMessage
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, false, badRequest("", "invalid JSON body: %s", redact(err.Error()))
	}
	req := &embedReq{normalize: true, param: "input"}
	base64Out := false
	for k, v := range in {
		switch k {
		case "model":
			if err := json.Unmarshal(v, &req.model); err != nil || req.model == "" {
				return nil, false, badRequest("model", "model must be a non-empty string")
			}
		case "input":
			var e *apiError
			if req.texts, req.tokens, e = parseEmbedInput(v, "input"); e != nil {
				return nil, false, e
			}
		case "encoding_format":
			var f string
			if err := json.Unmarshal(v, &f); err != nil || (f != "float" && f != "base64") {
				return nil, false, badRequest("encoding_format", `encoding_format must be "float" or "base64"`)
			}
			base64Out = f == "base64"
		case "user":
			var u string
			if err := json.Unmarshal(v, &u); err != nil {
				return nil, false, badRequest("user", "user must be a string")
			}
		case "dimensions":
			return nil, false, badRequest("dimensions", "dimensions is not supported: the model's embeddings have a fixed size")
		default:
			return nil, false, badRequest(k, "unknown or unsupported field %s", quote(k))
		}
	}
	if req.model == "" {
		return nil, false, badRequest("model", "model is required")
	}
	if req.texts == nil && req.tokens == nil {
		return nil, false, badRequest("input", "input is required")
	}
	return req, base64Out, nil
}

// parseOllamaEmbed parses /api/embed ({"model","input","truncate",
// "keep_alive","options"}) or, legacy, /api/embeddings
// ({"model","prompt"}).
func parseOllamaEmbed(body []byte, legacy bool) (*embedReq, *apiError) {
	var in map[string]json.RawMessage
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, badRequest("", "invalid JSON body: %s", redact(err.Error()))
	}
	req := &embedReq{normalize: !legacy, truncate: true, param: "input"}
	if legacy {
		req.param = "prompt"
	}
	for k, v := range in {
		switch {
		case k == "model":
			if err := json.Unmarshal(v, &req.model); err != nil || req.model == "" {
				return nil, badRequest("model", "model must be a non-empty string")
			}
		case k == "input" && !legacy:
			var e *apiError
			if req.texts, req.tokens, e = parseEmbedInput(v, "input"); e != nil {
				return nil, e
			}
			if req.tokens != nil {
				return nil, badRequest("input", "input must be a string or an array of strings")
			}
		case k == "prompt" && legacy:
			var p string
			if err := json.Unmarshal(v, &p); err != nil || p == "" {
				return nil, badRequest("prompt", "prompt must be a non-empty string")
			}
			req.texts = []string{p}
		case k == "truncate" && !legacy:
			if err := json.Unmarshal(v, &req.truncate); err != nil {
				return nil, badRequest("truncate", "truncate must be a boolean")
			}
		case k == "keep_alive":
			// The model cache keeps idle models under its memory budget.
		case k == "options":
			var o map[string]json.RawMessage
			if err := json.Unmarshal(v, &o); err != nil {
				return nil, badRequest("options", "options must be an object")
			}
			for ok := range o {
				return nil, badRequest("options", "option %s is not supported for embeddings", quote(ok))
			}
		default:
			return nil, badRequest(k, "unknown or unsupported field %s", quote(k))
		}
	}
	if req.model == "" {
		return nil, badRequest("model", "model is required")
	}
	if req.texts == nil {
		return nil, badRequest(req.param, "%s is required", req.param)
	}
	return req, nil
}

// readEmbedBody reads a request body under the server's body budget.
func (s *Server) readEmbedBody(w http.ResponseWriter, r *http.Request) ([]byte, *apiError) {
	if r.ContentLength > maxBodyBytes {
		w.Header().Set("Connection", "close")
		return nil, &apiError{status: http.StatusRequestEntityTooLarge, typ: "invalid_request_error", message: fmt.Sprintf("request body larger than %d bytes", maxBodyBytes), kind: "bad_request"}
	}
	reserve := int64(maxBodyBytes)
	if r.ContentLength >= 0 {
		reserve = r.ContentLength
	}
	reserve *= 2
	if !s.bodies.take(reserve) {
		w.Header().Set("Connection", "close")
		return nil, &apiError{status: http.StatusServiceUnavailable, typ: "server_error", code: "server_busy",
			message: "the server is reading too many request bodies at once; retry shortly", kind: "server_busy"}
	}
	defer s.bodies.give(reserve)
	body, err := readBody(http.MaxBytesReader(w, r.Body, maxBodyBytes), r.ContentLength)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &apiError{status: http.StatusRequestEntityTooLarge, typ: "invalid_request_error", message: fmt.Sprintf("request body larger than %d bytes", maxBodyBytes), kind: "bad_request"}
		}
		w.Header().Set("Connection", "close")
		return nil, badRequest("", "reading the request body: %s", redact(err.Error()))
	}
	lift(http.NewResponseController(w))
	return body, nil
}

// runEmbed serves a parsed request: the app and its policy, the model
// (an embedding model, or a 400), tokenization and the context check,
// the model's queue, and one run of the app. label and model/backend
// feed the metrics through the pointers.
func (s *Server) runEmbed(ctx context.Context, req *embedReq, model, backend *string) (*embedResult, *apiError) {
	a := s.def
	if ma := s.modelApps[req.model]; ma != nil {
		a = ma
	}
	if !a.allows(req.model) {
		e := modelNotFound(req.model)
		e.message = fmt.Sprintf("the model %s is not available to app %q", quote(req.model), a.name)
		return nil, e
	}
	if !s.backendUp() {
		return nil, &apiError{status: http.StatusServiceUnavailable, typ: "server_error", code: "backend_unavailable", message: "the backend plugin is down or restarting; retry shortly", kind: "backend_unavailable"}
	}
	loadStart := time.Now()
	lm, err := s.models.Acquire(ctx, req.model)
	if err != nil {
		if ctx.Err() != nil {
			return nil, &apiError{status: statusClientGone, kind: "cancelled"}
		}
		return nil, acquireError(req.model, err)
	}
	defer s.models.Release(lm)
	res := &embedResult{model: lm.Name, loadTime: time.Since(loadStart)}
	*model, *backend = lm.Name, lm.Serving()
	if lm.Info.Pooling == "" || lm.Info.NEmbd <= 0 {
		e := badRequest("model", "the model %s (%s) is not an embedding model; embeddings need a model that pools its token vectors (bert)", quote(req.model), lm.Info.Arch)
		e.code = "model_not_embedding"
		return nil, e
	}
	limit := core.ContextLimit(lm.Info.NCtxTrain, a.policy)
	inputs := req.tokens
	if req.texts != nil {
		if lm.Tokenizer == nil {
			return nil, &apiError{status: http.StatusInternalServerError, typ: "server_error", message: "the model has no tokenizer", kind: "backend_error"}
		}
		// Text that can never fit the context is refused by its
		// length in bytes before it is tokenized, as prompts are.
		maxBytes := s.promptByteLimit(lm.Tokenizer, limit)
		inputs = make([][]int32, len(req.texts))
		for i, t := range req.texts {
			if !req.truncate && maxBytes > 0 && len(t) > maxBytes {
				e := badRequest(req.param, "%s[%d] is %d bytes, more than this model's context of %d tokens can hold", req.param, i, len(t), limit)
				e.code = "context_length_exceeded"
				return nil, e
			}
			ids, err := lm.Tokenizer.Encode(t, lm.Tokenizer.AddBOSDefault(), true)
			if err != nil {
				return nil, badRequest(req.param, "%s[%d]: %s", req.param, i, redact(err.Error()))
			}
			if len(ids) == 0 {
				return nil, badRequest(req.param, "%s[%d] has no tokens", req.param, i)
			}
			inputs[i] = ids
		}
	} else {
		for i, ids := range inputs {
			for j, id := range ids {
				if id < 0 || int(id) >= lm.Info.NVocab {
					return nil, badRequest(req.param, "%s[%d][%d]: token %d is outside the vocabulary [0, %d)", req.param, i, j, id, lm.Info.NVocab)
				}
			}
		}
	}
	for i, ids := range inputs {
		if len(ids) > limit {
			if !req.truncate {
				e := badRequest(req.param, "%s[%d] has %d tokens; this model's context holds %d", req.param, i, len(ids), limit)
				e.code = "context_length_exceeded"
				return nil, e
			}
			inputs[i] = ids[:limit]
		}
		res.promptTokens += len(inputs[i])
	}

	lim := s.limiter(*model)
	if err := lim.acquire(ctx); err != nil {
		if errors.Is(err, errQueueFull) {
			return nil, &apiError{status: http.StatusTooManyRequests, typ: "rate_limit_error", code: "queue_full",
				message: fmt.Sprintf("model %q is busy: %d requests running and %d waiting; retry shortly", *model, s.maxConcurrent, s.maxQueue), kind: "queue_full"}
		}
		return nil, &apiError{status: statusClientGone, kind: "cancelled"}
	}
	defer lim.release()
	in, err := json.Marshal(EmbedGuestRequest{Endpoint: "embeddings", Model: req.model, Inputs: inputs, Normalize: req.normalize})
	if err != nil {
		return nil, &apiError{status: http.StatusInternalServerError, typ: "server_error", message: err.Error(), kind: "internal"}
	}
	var out bytes.Buffer
	stderr := &tailBuffer{max: stderrTail}
	run, runErr := s.host.Run(ctx, core.RunRequest{
		Module: a.module, Name: a.name, Stdin: bytes.NewReader(in), Stdout: &out, Stderr: stderr, Policy: a.policy,
	})
	*backend = lm.Serving()
	s.metrics.run(*model, *backend, res.promptTokens, 0, 0, 0)
	if e := s.runError(ctx, run, runErr, stderr.String()); e != nil {
		if e.code == "context_length_exceeded" {
			e.param = req.param
		}
		return nil, e
	}
	d := lm.Info.NEmbd
	raw := out.Bytes()
	if len(raw) != 4*d*len(inputs) {
		return nil, &apiError{status: http.StatusInternalServerError, typ: "server_error",
			message: fmt.Sprintf("the app %q answered %d bytes; an embeddings answer is %d little-endian f32 per input (%d inputs of %d)", a.name, len(raw), d, len(inputs), d), kind: "app_error"}
	}
	res.vectors = make([][]float32, len(inputs))
	for i := range res.vectors {
		v := make([]float32, d)
		for j := range v {
			v[j] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*(i*d+j):]))
		}
		res.vectors[i] = v
	}
	return res, nil
}

// openAIEmbeddings serves POST /v1/embeddings.
func (s *Server) openAIEmbeddings(w http.ResponseWriter, r *http.Request) {
	model, backend := "", ""
	status := http.StatusOK
	defer func() { s.metrics.request("embeddings", model, backend, status) }()
	fail := func(e *apiError) {
		status = e.status
		kind := e.kind
		if kind == "" {
			kind = "error"
		}
		s.metrics.error(kind, model, backend)
		if e.status != statusClientGone {
			writeError(w, e)
		}
	}
	body, e := s.readEmbedBody(w, r)
	if e != nil {
		fail(e)
		return
	}
	req, base64Out, e := parseOpenAIEmbed(body)
	if e != nil {
		fail(e)
		return
	}
	res, e := s.runEmbed(r.Context(), req, &model, &backend)
	if e != nil {
		fail(e)
		return
	}
	data := make([]map[string]any, len(res.vectors))
	for i, v := range res.vectors {
		var emb any = v
		if base64Out {
			b := make([]byte, 4*len(v))
			for j, x := range v {
				binary.LittleEndian.PutUint32(b[4*j:], math.Float32bits(x))
			}
			emb = base64.StdEncoding.EncodeToString(b)
		}
		data[i] = map[string]any{"object": "embedding", "index": i, "embedding": emb}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"object": "list", "data": data, "model": req.model,
		"usage": map[string]int{"prompt_tokens": res.promptTokens, "total_tokens": res.promptTokens},
	})
}

// ollamaEmbed serves POST /api/embed and, legacy, /api/embeddings.
func (s *Server) ollamaEmbed(w http.ResponseWriter, r *http.Request, legacy bool) {
	start := time.Now()
	label := "ollama_embed"
	if legacy {
		label = "ollama_embeddings"
	}
	model, backend, name := "", "", ""
	status := http.StatusOK
	defer func() { s.metrics.request(label, model, backend, status) }()
	fail := func(e *apiError) {
		status = e.status
		kind := e.kind
		if kind == "" {
			kind = "error"
		}
		s.metrics.error(kind, model, backend)
		if e.status == statusClientGone {
			return
		}
		if e.status == http.StatusTooManyRequests || e.status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", retryAfterSec)
		}
		msg := e.message
		if e.code == "model_not_found" {
			msg = fmt.Sprintf("model %s not found", quote(name)) // Ollama's wording
		}
		ollamaError(w, e.status, msg)
	}
	body, e := s.readEmbedBody(w, r)
	if e != nil {
		fail(e)
		return
	}
	req, e := parseOllamaEmbed(body, legacy)
	if e != nil {
		fail(e)
		return
	}
	name = req.model
	res, e := s.runEmbed(r.Context(), req, &model, &backend)
	if e != nil {
		fail(e)
		return
	}
	if legacy {
		writeJSON(w, http.StatusOK, map[string]any{"embedding": res.vectors[0]})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"model": req.model, "embeddings": res.vectors,
		"total_duration": time.Since(start).Nanoseconds(), "load_duration": res.loadTime.Nanoseconds(),
		"prompt_eval_count": res.promptTokens,
	})
}

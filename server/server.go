// Package server is realm serve: an OpenAI-compatible HTTP API whose
// requests each run as a fresh, sandboxed instance of a WASM guest app.
//
// For every completion request the server validates the body, picks the
// app (by route, /v1/apps/{app}/..., by a model name an app block lists,
// or the default app), checks the app's policy, resolves the model,
// renders the chat template, waits for a slot of the model (a bounded
// FIFO queue per model; full: 429), and runs the app with the request as
// JSON on stdin (GuestRequest). What the guest writes to stdout is the
// completion: streamed as Server-Sent Events as it is written, or
// returned whole. A client that goes away cancels the run, which cancels
// the backend calls in flight.
package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/core"
	"github.com/realmrt/realm/internal/loaderhost"
	"github.com/realmrt/realm/loader"
	"github.com/realmrt/realm/model"
	"github.com/realmrt/realm/tokenizer"
)

// DefaultAppName is the app that serves requests no app block claims.
const DefaultAppName = "chat"

// Limits of the HTTP layer.
const (
	maxBodyBytes  = 8 << 20
	stderrTail    = 4 << 10
	retryAfterSec = "1"
)

// defaultPolicy applies to the default app when plugins.hcl has no block
// for it.
var defaultPolicy = core.Policy{Timeout: 5 * time.Minute, MemoryBytes: 64 << 20, MaxOutput: 16 << 20}

// Options configures a Server.
type Options struct {
	// DefaultApp names the app serving requests that no route and no
	// app block claims (DefaultAppName when "").
	DefaultApp string
	// DefaultWASM is the guest module for the default app when
	// plugins.hcl has no app block of that name (the examples/chat build).
	DefaultWASM string
	// APIKeys, when not empty, replaces the keys of the configuration's
	// api_keys_file.
	APIKeys []string
	// MaxConcurrent and MaxQueue, when > 0 / ≥ 0 and set, replace the
	// server block's values (runs per model at once, requests waiting
	// per model).
	MaxConcurrent int
	MaxQueue      *int
	// Logger receives request and guest events (nil: discard).
	Logger hclog.Logger
	// CacheDir keeps compiled guests across processes ("" : in memory).
	CacheDir string
	// HTTP bounds connections and their timeouts (zero fields:
	// DefaultHTTPLimits); see HTTPServer and Listen.
	HTTP HTTPLimits
	// PublicProbes serves /health and /metrics without an API key. By
	// default they need one as soon as keys are configured.
	PublicProbes bool
}

// Models is what the server needs of a model cache (a
// *loader.ModelCache): models by name, held while a request uses them,
// and the list of servable names.
type Models interface {
	Acquire(ctx context.Context, name string) (*model.Model, error)
	Release(m *model.Model)
	List(ctx context.Context) []loader.ModelEntry
}

// Backend is what the server needs of the supervised plugin (a
// *loader.Supervisor): which plugin serves, how often it restarted,
// whether a process is up, and a call that only a live, responsive
// plugin answers.
type Backend interface {
	Active() string
	Restarts() int
	PID() int
	Info(ctx context.Context) (*backends.Info, error)
}

// healthTimeout bounds the call /health makes to the plugin: a plugin
// that is stopped or hung does not answer in time.
const healthTimeout = time.Second

// Server serves the OpenAI API over a loader runtime.
type Server struct {
	models  Models
	sup     Backend // nil: an unsupervised backend
	chosen  string  // the backend selected at start
	host    *core.Host
	metrics *Metrics
	log     hclog.Logger
	keys    *keySet

	limits       HTTPLimits
	publicProbes bool
	bodies       *byteBudget // request bodies being read and parsed

	apps      map[string]*app
	modelApps map[string]*app // exact model names listed by app blocks
	def       *app

	maxConcurrent, maxQueue int

	mu       sync.Mutex
	limiters map[string]*limiter
	pieces   map[*tokenizer.Tokenizer]int // longest token text per tokenizer
}

// app is a guest module with its policy.
type app struct {
	name   string
	module *core.Module
	policy core.Policy
	maxN   int // the most choices (n) per request; 0: defaultMaxN
}

// allows reports whether the app may serve the model: the rule the
// host applies when the guest loads it.
func (a *app) allows(model string) bool { return a.policy.AllowsModel(model) }

// Runtime is what the server needs of a loader runtime: the model
// cache (as the server uses it, and as the WASM host does), the
// supervised backend plugin, and the configuration's server and app
// blocks.
type Runtime struct {
	Models Models
	// HostModels is the same cache as the guests' host functions see it.
	HostModels core.Models
	// Backend is the supervised plugin (nil: none, e.g. in process).
	Backend Backend
	// BackendName names the backend selected at start: the name /health
	// and the metrics use when there is no Backend, or while it has no
	// live plugin (Backend.Active() is "").
	BackendName string
	Config      *loader.Config
}

// FromLoader takes what the server needs from rt.
func FromLoader(rt *loader.Runtime) Runtime {
	r := Runtime{Models: rt.Models, HostModels: loaderhost.Models(rt.Models), BackendName: rt.Decision.Chosen, Config: rt.Config}
	if rt.Supervisor != nil { // no typed nil in the interface
		r.Backend = rt.Supervisor
	}
	return r
}

// New builds a server on a loader runtime: NewFrom(ctx, FromLoader(rt),
// opts).
func New(ctx context.Context, rt *loader.Runtime, opts Options) (*Server, error) {
	return NewFrom(ctx, FromLoader(rt), opts)
}

// NewFrom builds a server on rt: a WASM host over rt's model cache and
// the apps of rt.Config (each compiled once) plus the default app.
// Close releases the host; rt stays the caller's.
func NewFrom(ctx context.Context, rt Runtime, opts Options) (*Server, error) {
	log := opts.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	m := NewMetrics()
	host, err := core.NewHost(ctx, core.Config{
		Models:   InstrumentModels(rt.HostModels, m),
		Logger:   log,
		CacheDir: opts.CacheDir,
	})
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	s := &Server{
		models: rt.Models, sup: rt.Backend, chosen: rt.BackendName, host: host, metrics: m, log: log,
		limits: opts.HTTP.withDefaults(), publicProbes: opts.PublicProbes,
		apps: map[string]*app{}, modelApps: map[string]*app{},
		maxConcurrent: rt.Config.Server.MaxConcurrent, maxQueue: rt.Config.Server.MaxQueue,
		limiters: map[string]*limiter{}, pieces: map[*tokenizer.Tokenizer]int{},
	}
	s.bodies = &byteBudget{max: s.limits.MaxBodyBytes}
	m.reg.MustRegister(stateCollector{s})
	if opts.MaxConcurrent > 0 {
		s.maxConcurrent = opts.MaxConcurrent
	}
	if opts.MaxQueue != nil && *opts.MaxQueue >= 0 {
		s.maxQueue = *opts.MaxQueue
	}
	if s.maxConcurrent < 1 {
		s.maxConcurrent = 1
	}
	fail := func(err error) (*Server, error) {
		host.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	keys := opts.APIKeys
	if len(keys) == 0 && rt.Config.Server.APIKeysFile != "" {
		if keys, err = ReadAPIKeys(rt.Config.Server.APIKeysFile); err != nil {
			return fail(err)
		}
		if len(keys) == 0 {
			return fail(fmt.Errorf("server: api_keys_file %s holds no key", rt.Config.Server.APIKeysFile))
		}
	}
	s.keys = newKeySet(keys)

	for i := range rt.Config.Apps {
		ac := &rt.Config.Apps[i]
		a, err := s.compileApp(ctx, ac.Name, ac.WASM, loaderhost.Policy(ac))
		if err != nil {
			return fail(err)
		}
		a.maxN = ac.MaxN
		s.apps[ac.Name] = a
	}
	defName := opts.DefaultApp
	if defName == "" {
		defName = DefaultAppName
	}
	if a, ok := s.apps[defName]; ok {
		s.def = a
	} else {
		if opts.DefaultWASM == "" {
			return fail(fmt.Errorf("server: no app %q in %s and no guest module given for it", defName, rt.Config.Path))
		}
		a, err := s.compileApp(ctx, defName, opts.DefaultWASM, defaultPolicy)
		if err != nil {
			return fail(err)
		}
		s.def, s.apps[defName] = a, a
	}
	// Model names an app block lists exactly (no pattern) route to it.
	for i := range rt.Config.Apps {
		ac := &rt.Config.Apps[i]
		if ac.Name == defName {
			continue
		}
		for _, name := range ac.Models {
			if strings.ContainsAny(name, "*?[") {
				continue
			}
			if _, taken := s.modelApps[name]; !taken {
				s.modelApps[name] = s.apps[ac.Name]
			}
		}
	}
	return s, nil
}

func (s *Server) compileApp(ctx context.Context, name, wasmPath string, p core.Policy) (*app, error) {
	b, err := os.ReadFile(wasmPath)
	if err != nil {
		return nil, fmt.Errorf("server: app %q: %w", name, err)
	}
	mod, err := s.host.Compile(ctx, b)
	if err != nil {
		return nil, fmt.Errorf("server: app %q (%s): %w", name, wasmPath, err)
	}
	return &app{name: name, module: mod, policy: p}, nil
}

// Close releases the WASM host. Runs in flight fail.
func (s *Server) Close(ctx context.Context) error { return s.host.Close(ctx) }

// Metrics returns the server's metrics.
func (s *Server) Metrics() *Metrics { return s.metrics }

// Handler returns the HTTP API:
//
//	POST /v1/chat/completions, POST /v1/completions
//	POST /v1/apps/{app}/chat/completions, POST /v1/apps/{app}/completions
//	GET  /v1/models, GET /v1/models/{model}
//	Ollama's API (ollama.go): POST /api/chat, /api/generate, /api/show;
//	GET /api/tags, /api/ps, /api/version
//	POST /v1/embeddings, Ollama's POST /api/embed and /api/embeddings
//	(embeddings.go)
//	GET  /health, GET /metrics (API key needed when keys are configured,
//	unless Options.PublicProbes)
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", s.auth(func(w http.ResponseWriter, r *http.Request) { s.complete(w, r, true, "") }))
	mux.HandleFunc("POST /v1/completions", s.auth(func(w http.ResponseWriter, r *http.Request) { s.complete(w, r, false, "") }))
	mux.HandleFunc("POST /v1/apps/{app}/chat/completions", s.auth(func(w http.ResponseWriter, r *http.Request) { s.complete(w, r, true, r.PathValue("app")) }))
	mux.HandleFunc("POST /v1/apps/{app}/completions", s.auth(func(w http.ResponseWriter, r *http.Request) { s.complete(w, r, false, r.PathValue("app")) }))
	mux.HandleFunc("POST /api/chat", s.auth(func(w http.ResponseWriter, r *http.Request) { s.ollamaGenerate(w, r, true) }))
	mux.HandleFunc("POST /api/generate", s.auth(func(w http.ResponseWriter, r *http.Request) { s.ollamaGenerate(w, r, false) }))
	mux.HandleFunc("GET /api/tags", s.auth(s.ollamaTags))
	mux.HandleFunc("GET /api/ps", s.auth(s.ollamaPS))
	mux.HandleFunc("POST /api/show", s.auth(s.ollamaShow))
	mux.HandleFunc("GET /api/version", s.auth(s.ollamaVersion))
	mux.HandleFunc("POST /v1/embeddings", s.auth(s.openAIEmbeddings))
	mux.HandleFunc("POST /api/embed", s.auth(func(w http.ResponseWriter, r *http.Request) { s.ollamaEmbed(w, r, false) }))
	mux.HandleFunc("POST /api/embeddings", s.auth(func(w http.ResponseWriter, r *http.Request) { s.ollamaEmbed(w, r, true) }))
	mux.HandleFunc("GET /v1/models", s.auth(s.listModels))
	mux.HandleFunc("GET /v1/models/{model}", s.auth(s.getModel))
	probe := s.auth
	if s.publicProbes {
		probe = func(h http.HandlerFunc) http.HandlerFunc { return h }
	}
	mux.HandleFunc("GET /health", probe(s.health))
	mux.HandleFunc("GET /metrics", probe(s.metrics.Handler().ServeHTTP))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if allow := allowedMethod(r.URL.Path); allow != "" {
			w.Header().Set("Allow", allow)
			writeError(w, &apiError{status: http.StatusMethodNotAllowed, typ: "invalid_request_error", message: fmt.Sprintf("%s %s: use %s", quote(r.Method), quote(r.URL.Path), allow)})
			return
		}
		writeError(w, &apiError{status: http.StatusNotFound, typ: "invalid_request_error", message: fmt.Sprintf("unknown endpoint %s %s", quote(r.Method), quote(r.URL.Path))})
	})
	return s.metrics.instrument(mux)
}

// allowedMethod returns the method a known path takes ("" for an
// unknown path).
func allowedMethod(p string) string {
	switch {
	case p == "/v1/chat/completions", p == "/v1/completions",
		strings.HasPrefix(p, "/v1/apps/") && strings.HasSuffix(p, "/completions"):
		return http.MethodPost
	case p == "/v1/models", strings.HasPrefix(p, "/v1/models/"), p == "/health", p == "/metrics",
		p == "/api/tags", p == "/api/ps", p == "/api/version":
		return http.MethodGet
	case p == "/api/chat", p == "/api/generate", p == "/api/show",
		p == "/v1/embeddings", p == "/api/embed", p == "/api/embeddings":
		return http.MethodPost
	}
	return ""
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, e *apiError) {
	switch e.status {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", retryAfterSec)
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="realm"`)
	}
	writeJSON(w, e.status, e.body())
}

// auth requires a valid bearer key when keys are configured.
func (s *Server) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.keys.enabled() {
			key, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || !s.keys.valid(strings.TrimSpace(key)) {
				msg := "missing API key: send Authorization: Bearer <key>"
				if ok {
					msg = "invalid API key"
				}
				s.metrics.request(endpointOf(r), "", "", http.StatusUnauthorized)
				s.metrics.error("unauthorized", "", "")
				// An unauthenticated client gets no connection to
				// keep: it is closed after this answer, and what is
				// left of its body is not waited for.
				w.Header().Set("Connection", "close")
				_ = http.NewResponseController(w).SetReadDeadline(time.Now())
				writeError(w, &apiError{status: http.StatusUnauthorized, typ: "authentication_error", code: "invalid_api_key", message: msg})
				return
			}
		}
		h(w, r)
	}
}

func endpointOf(r *http.Request) string {
	switch {
	case strings.HasSuffix(r.URL.Path, "/chat/completions"):
		return "chat"
	case strings.HasSuffix(r.URL.Path, "/completions"):
		return "completions"
	case strings.HasPrefix(r.URL.Path, "/v1/models"):
		return "models"
	case r.URL.Path == "/v1/embeddings":
		return "embeddings"
	case r.URL.Path == "/api/embed", r.URL.Path == "/api/embeddings":
		return "ollama_" + strings.TrimPrefix(r.URL.Path, "/api/")
	case r.URL.Path == "/api/chat", r.URL.Path == "/api/generate", r.URL.Path == "/api/show",
		r.URL.Path == "/api/tags", r.URL.Path == "/api/ps", r.URL.Path == "/api/version":
		return "ollama_" + strings.TrimPrefix(r.URL.Path, "/api/") // a fixed set: bounded labels
	}
	return "other"
}

// backendUp reports whether a backend plugin process is up (a cheap
// check; see backendAnswers).
func (s *Server) backendUp() bool {
	return s.sup == nil || s.sup.PID() > 0
}

// backendAnswers asks the plugin itself, within healthTimeout: a
// process that is up but stopped or hung does not answer. It returns
// why the plugin is not serving, "" when it is.
func (s *Server) backendAnswers(ctx context.Context) string {
	if s.sup == nil {
		return ""
	}
	if s.sup.PID() <= 0 {
		return "backend plugin is down or restarting"
	}
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	if _, err := s.sup.Info(ctx); err != nil {
		return "backend plugin does not answer"
	}
	return ""
}

// backendName names the plugin serving now; while none is (an outage)
// or without a supervisor, the one selected at start, so that /health
// and the metrics' backend label never go blank.
func (s *Server) backendName() string {
	if s.sup != nil {
		if n := s.sup.Active(); n != "" {
			return n
		}
	}
	return s.chosen
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	if why := s.backendAnswers(r.Context()); why != "" {
		w.Header().Set("Retry-After", retryAfterSec)
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "unavailable", "backend": s.backendName(), "reason": why})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "backend": s.backendName()})
}

// modelObject is an entry of GET /v1/models.
type modelObject struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

func modelObj(e loader.ModelEntry) modelObject {
	var created int64
	if fi, err := os.Stat(e.Path); err == nil {
		created = fi.ModTime().Unix()
	}
	return modelObject{ID: e.Name, Object: "model", Created: created, OwnedBy: "realm"}
}

func (s *Server) listModels(w http.ResponseWriter, r *http.Request) {
	entries := s.models.List(r.Context())
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name < entries[j].Name })
	data := make([]modelObject, 0, len(entries))
	for _, e := range entries {
		if e.Error != "" { // not servable (`realm models` says why)
			continue
		}
		data = append(data, modelObj(e))
	}
	s.metrics.request("models", "", "", http.StatusOK)
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
}

func (s *Server) getModel(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("model")
	for _, e := range s.models.List(r.Context()) {
		if e.Name == name && e.Error == "" {
			s.metrics.request("models", "", "", http.StatusOK)
			writeJSON(w, http.StatusOK, modelObj(e))
			return
		}
	}
	s.metrics.request("models", "", "", http.StatusNotFound)
	writeError(w, modelNotFound(name))
}

func modelNotFound(name string) *apiError {
	return &apiError{status: http.StatusNotFound, typ: "invalid_request_error", param: "model", code: "model_not_found",
		message: fmt.Sprintf("the model %s does not exist", quote(name)), kind: "model_not_found"}
}

// limiter returns the model's limiter.
func (s *Server) limiter(model string) *limiter {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.limiters[model]
	if l == nil {
		l = newLimiter(s.maxConcurrent, s.maxQueue)
		s.limiters[model] = l
	}
	return l
}

// acquireError maps a model cache error to an API error.
func acquireError(name string, err error) *apiError {
	switch {
	case errors.Is(err, loader.ErrNotFound), errors.Is(err, loader.ErrInvalidName), errors.Is(err, loader.ErrOutsideModelsDir):
		return modelNotFound(name)
	case errors.Is(err, backends.ErrBackendCrashed), errors.Is(err, loader.ErrClosed), errors.Is(err, loader.ErrWrongBackend):
		return &apiError{status: http.StatusServiceUnavailable, typ: "server_error", code: "backend_unavailable", message: redact(err.Error()), kind: "backend_unavailable"}
	case errors.Is(err, loader.ErrOverBudget):
		return &apiError{status: http.StatusServiceUnavailable, typ: "server_error", code: "model_overloaded", message: redact(err.Error()), kind: "over_budget"}
	}
	return &apiError{status: http.StatusInternalServerError, typ: "server_error", message: "loading the model: " + redact(err.Error()), kind: "backend_error"}
}

// newID returns an id like "chatcmpl-3f9a...".
func newID(prefix string) string {
	var b [12]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.TrimSpace(t.buf))
}

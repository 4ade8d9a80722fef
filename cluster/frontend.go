package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// FrontendConfig configures a Frontend.
type FrontendConfig struct {
	// Conn is the NATS connection (the caller's).
	Conn *nats.Conn
	// Replicas is the replication of the buckets (capped at 3 and by the
	// cluster size; 0: 1).
	Replicas int
	// Heartbeat is the workers' heartbeat period; a stream with 3 missed
	// ones is lost (default Heartbeat).
	Heartbeat time.Duration
	// PileGuard defaults to DefaultPileGuard.
	PileGuard int
	// MaxAttempts bounds the workers tried per request (default 3) in
	// each round of tries.
	MaxAttempts int
	// FailoverWait is how long a request whose every worker was
	// unreachable before anything was sent (no responder: the workers'
	// NATS connections move to another server when theirs dies) keeps
	// trying them again, with a growing pause between rounds, before
	// the front end answers 503 (default 3 s; negative: no new round).
	FailoverWait time.Duration
	// APIKeys, when not empty, guard the endpoints the front end answers
	// itself (models); completions are checked by the worker.
	APIKeys []string
	// Apps are guest modules (name → bytes) published to the cluster's
	// object store before the front end announces itself (PublishApp).
	Apps map[string][]byte
	// Logger receives events (nil: discard).
	Logger hclog.Logger
}

// Frontend routes OpenAI requests to workers and relays their answers.
type Frontend struct {
	cfg     FrontendConfig
	log     hclog.Logger
	nc      *nats.Conn
	js      jetstream.JetStream
	kv      jetstream.KeyValue
	stop    context.CancelFunc
	watchWG sync.WaitGroup
	rr      atomic.Uint64
	m       frontMetrics

	mu      sync.Mutex
	members map[string]*member
	synced  chan struct{}
}

// member is a worker as this front end sees it.
type member struct {
	state    WorkerState
	seen     time.Time // when its key was last written
	inflight int       // requests this front end has on it
}

// NewFrontend creates the buckets (waiting for JetStream) and starts
// watching the workers' state.
func NewFrontend(ctx context.Context, cfg FrontendConfig) (*Frontend, error) {
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = Heartbeat
	}
	if cfg.PileGuard <= 0 {
		cfg.PileGuard = DefaultPileGuard
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 3
	}
	if cfg.FailoverWait == 0 {
		cfg.FailoverWait = 3 * time.Second
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	cfg.Replicas = min(cfg.Replicas, 3)
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	js, err := jetstream.New(cfg.Conn)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	f := &Frontend{cfg: cfg, log: log.Named("frontend"), nc: cfg.Conn, js: js,
		members: map[string]*member{}, synced: make(chan struct{})}
	// The apps go first: workers fetch them once the state bucket exists.
	for name, wasm := range cfg.Apps {
		d, err := f.PublishApp(ctx, name, wasm)
		if err != nil {
			return nil, err
		}
		f.log.Info("published an app", "app", name, "digest", d)
	}
	kv, err := stateBucket(ctx, js, cfg.Replicas, true)
	if err != nil {
		return nil, fmt.Errorf("cluster: creating the state bucket: %w", err)
	}
	f.kv = kv
	f.m.init()
	wctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	f.stop = stop
	f.watchWG.Add(1)
	go f.watch(wctx)
	select {
	case <-f.synced:
	case <-ctx.Done():
		f.Close()
		return nil, fmt.Errorf("cluster: reading the worker state: %w", ctx.Err())
	}
	return f, nil
}

// Close stops watching. Requests in flight go on until they end.
func (f *Frontend) Close() {
	f.stop()
	f.watchWG.Wait()
}

// watch follows the state bucket. Workers write their keys every
// StateInterval, so a watch that delivered nothing for twice that long
// is stalled (its server went away; JetStream's ordered consumer would
// notice only after its own idle heartbeats): it is replaced.
func (f *Frontend) watch(ctx context.Context) {
	defer f.watchWG.Done()
	first := true
	for ctx.Err() == nil {
		w, err := f.kv.WatchAll(ctx)
		if err != nil {
			f.log.Debug("watching worker state", "error", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		replaying := true
		stall := time.NewTimer(2 * StateInterval)
	loop:
		for {
			select {
			case <-ctx.Done():
				break loop
			case <-stall.C:
				f.log.Debug("worker state watch stalled; watching again")
				break loop
			case e, ok := <-w.Updates():
				if !ok {
					break loop
				}
				stall.Reset(2 * StateInterval)
				if e == nil {
					replaying = false
					if first {
						first = false
						close(f.synced)
					}
					continue
				}
				f.apply(e, replaying)
			}
		}
		stall.Stop()
		w.Stop()
	}
}

// apply records one key's change. Replayed values (a new watch's initial
// state) do not make a known worker look fresher than it is.
func (f *Frontend) apply(e jetstream.KeyValueEntry, replayed bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := e.Key()
	if e.Operation() != jetstream.KeyValuePut {
		delete(f.members, id)
		return
	}
	var st WorkerState
	if err := json.Unmarshal(e.Value(), &st); err != nil || st.ID != id {
		f.log.Warn("ignoring malformed worker state", "key", id)
		return
	}
	m := f.members[id]
	if m == nil {
		m = &member{seen: time.Now()}
		f.members[id] = m
	}
	if !replayed || m.state.ID == "" {
		m.seen = time.Now()
	}
	m.state = st
}

// Members returns the live workers' state, sorted by id. A worker whose
// key was not refreshed within StateTTL is gone even before the bucket's
// expiry marker arrives.
func (f *Frontend) Members() []WorkerState {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []WorkerState
	for _, m := range f.live() {
		out = append(out, m.state)
	}
	return out
}

// live returns the members seen within StateTTL, sorted by id (f.mu held).
func (f *Frontend) live() []*member {
	var out []*member
	for id, m := range f.members {
		if time.Since(m.seen) > StateTTL {
			delete(f.members, id)
			continue
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].state.ID < out[j].state.ID })
	return out
}

// choose picks a worker and counts the request on it.
func (f *Frontend) choose(model string, hashes []string, exclude map[string]bool) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ms := f.live()
	states := make([]*WorkerState, len(ms))
	byID := map[string]*member{}
	for i, m := range ms {
		states[i] = &m.state
		byID[m.state.ID] = m
	}
	load := func(s *WorkerState) int { return max(s.Load(), byID[s.ID].inflight) }
	c := pick(states, load, model, hashes, exclude, f.cfg.PileGuard, f.rr.Add(1))
	if c == nil {
		return "", false
	}
	byID[c.ID].inflight++
	// The worker loads the model now: until its state says otherwise,
	// the next requests for it follow (they would wait for the same load).
	if model != "" && !slices.Contains(c.Loaded, model) {
		c.Loaded = append(slices.Clip(c.Loaded), model)
	}
	return c.ID, true
}

// done uncounts a request; served records its prefixes on the worker
// until the worker's own state says so.
func (f *Frontend) done(id string, served bool, hashes []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := f.members[id]
	if m == nil {
		return
	}
	m.inflight--
	if served && len(hashes) > 0 {
		r := recentPrefixes{list: m.state.Prefixes}
		r.add(hashes)
		m.state.Prefixes = r.list
	}
}

// anyServes reports whether a live worker (draining or not) serves model.
func (f *Frontend) anyServes(model string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range f.live() {
		if m.state.Serves(model) {
			return true
		}
	}
	return false
}

// Handler returns the OpenAI API of the cluster: completions are routed
// to workers, models and health are answered from the members' state,
// metrics are the front end's and every worker's (labelled worker=ID).
func (f *Frontend) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", f.route)
	mux.HandleFunc("POST /v1/completions", f.route)
	mux.HandleFunc("POST /v1/apps/{app}/chat/completions", f.route)
	mux.HandleFunc("POST /v1/apps/{app}/completions", f.route)
	mux.HandleFunc("GET /v1/models", f.auth(f.listModels))
	mux.HandleFunc("GET /v1/models/{model}", f.auth(f.getModel))
	mux.HandleFunc("GET /health", f.health)
	mux.HandleFunc("GET /metrics", f.serveMetrics)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeAPIError(w, http.StatusNotFound, "invalid_request_error", "", fmt.Sprintf("unknown endpoint %s %s", r.Method, r.URL.Path))
	})
	return mux
}

func (f *Frontend) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if len(f.cfg.APIKeys) > 0 {
			key, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			ok := false
			for _, k := range f.cfg.APIKeys {
				if k == strings.TrimSpace(key) {
					ok = true
				}
			}
			if !ok {
				w.Header().Set("WWW-Authenticate", `Bearer realm="realm"`)
				writeAPIError(w, http.StatusUnauthorized, "authentication_error", "invalid_api_key", "missing or invalid API key")
				return
			}
		}
		h(w, r)
	}
}

// writeAPIError answers an error in OpenAI's shape.
func writeAPIError(w http.ResponseWriter, status int, typ, code, msg string) {
	if status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "1")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(errorJSON(typ, code, msg))
}

func errorJSON(typ, code, msg string) []byte {
	var c any
	if code != "" {
		c = code
	}
	return mustJSON(map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": c}})
}

func (f *Frontend) health(w http.ResponseWriter, r *http.Request) {
	n := 0
	for _, m := range f.Members() {
		if !m.Draining {
			n++
		}
	}
	w.Header().Set("Content-Type", "application/json")
	if n == 0 {
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write(mustJSON(map[string]any{"status": "unavailable", "workers": 0, "reason": "no worker has joined"}))
		return
	}
	w.Write(mustJSON(map[string]any{"status": "ok", "workers": n}))
}

func (f *Frontend) modelNames() []string {
	set := map[string]bool{}
	for _, m := range f.Members() {
		for _, n := range m.Loadable {
			set[n] = true
		}
		for _, n := range m.Loaded {
			set[n] = true
		}
	}
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func modelJSON(name string) map[string]any {
	return map[string]any{"id": name, "object": "model", "created": 0, "owned_by": "realm"}
}

func (f *Frontend) listModels(w http.ResponseWriter, r *http.Request) {
	data := []any{}
	for _, n := range f.modelNames() {
		data = append(data, modelJSON(n))
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(mustJSON(map[string]any{"object": "list", "data": data}))
}

func (f *Frontend) getModel(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("model")
	if !f.anyServes(name) {
		writeAPIError(w, http.StatusNotFound, "invalid_request_error", "model_not_found", fmt.Sprintf("the model %q does not exist", name))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(mustJSON(modelJSON(name)))
}

// maxBody bounds a routed request body (as realm serve does).
const maxBody = 8 << 20

// route sends a completion request to a worker and relays the answer,
// trying another worker while nothing reached the client yet.
func (f *Frontend) route(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeAPIError(w, http.StatusRequestEntityTooLarge, "invalid_request_error", "", fmt.Sprintf("request body unreadable or larger than %d bytes: %v", maxBody, err))
		return
	}
	head := parseHead(body)
	if head == nil || head.Model == "" {
		// The worker's parser words the error; any worker will do.
		head = &promptHead{}
	}
	hashes := PrefixHashes(head.Model, head)
	env := envelope{Method: r.Method, Path: r.URL.RequestURI(), Header: r.Header.Clone(), Body: body}
	tried := map[string]bool{}
	var last *response
	deadline := time.Now().Add(f.cfg.FailoverWait)
	pause := 50 * time.Millisecond
	for {
		unreachable := false // a worker could not be reached: a new round may find it again
		for range f.cfg.MaxAttempts {
			id, ok := f.choose(head.Model, hashes, tried)
			if !ok && head.Model == "" {
				id, ok = f.chooseAny(tried)
			}
			if !ok {
				break
			}
			tried[id] = true
			res := f.try(r.Context(), w, &env, id)
			f.done(id, res.outcome == served, hashes)
			f.m.count(id, res.outcome)
			switch res.outcome {
			case served, clientGone, lostAfterStart:
				return
			case busy:
				last = res
			case refused, lostBefore:
				unreachable = true
			}
			f.log.Debug("retrying on another worker", "worker", id, "outcome", res.outcome, "error", res.err)
		}
		if !unreachable || last != nil || time.Now().Add(pause).After(deadline) {
			break
		}
		// Every worker tried was unreachable and none answered busy:
		// during a failover the workers come back within seconds.
		select {
		case <-r.Context().Done():
			return
		case <-time.After(pause):
		}
		pause = min(2*pause, 500*time.Millisecond)
		clear(tried)
	}
	switch {
	case last != nil:
		last.writeTo(w)
	case len(tried) == 0 && !f.anyServes(head.Model):
		writeAPIError(w, http.StatusNotFound, "invalid_request_error", "model_not_found", fmt.Sprintf("no worker of the cluster serves the model %q", head.Model))
	default:
		writeAPIError(w, http.StatusServiceUnavailable, "server_error", "no_worker", "no worker could take the request; retry shortly")
	}
}

// chooseAny picks any live worker (for requests routing cannot read).
func (f *Frontend) chooseAny(exclude map[string]bool) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range f.live() {
		if !m.state.Draining && !exclude[m.state.ID] {
			m.inflight++
			return m.state.ID, true
		}
	}
	return "", false
}

// Outcomes of one try.
const (
	served         = "served"           // the worker answered (any status)
	clientGone     = "client_gone"      // the client went away
	lostAfterStart = "lost_after_start" // the worker was lost mid-answer: the stream ended with an error
	lostBefore     = "lost_before"      // the worker was lost before anything reached the client
	refused        = "refused"          // no responder, draining, ack timeout
	busy           = "busy"             // 429/503 before anything was sent: another worker may take it
)

// response is a buffered busy answer, kept in case no worker takes the
// request.
type response struct {
	outcome string
	err     error
	status  int
	header  http.Header
	body    []byte
}

func (r *response) writeTo(w http.ResponseWriter) {
	for k, v := range r.header {
		w.Header()[k] = v
	}
	w.WriteHeader(r.status)
	w.Write(r.body)
}

// try runs the request on worker id.
func (f *Frontend) try(ctx context.Context, w http.ResponseWriter, env *envelope, id string) *response {
	env.Stream = subjectPrefix + "stream." + nuid.Next()
	// Frames wait in the subscription's unbounded pending queue while the
	// client reads slowly (a channel subscription would drop them).
	frames := make(chan *nats.Msg)
	quit := make(chan struct{})
	defer close(quit)
	sub, err := f.nc.Subscribe(env.Stream, func(m *nats.Msg) {
		select {
		case frames <- m:
		case <-quit:
		}
	})
	if err != nil {
		return &response{outcome: refused, err: err}
	}
	defer sub.Unsubscribe()
	sub.SetPendingLimits(-1, -1)
	actx, cancel := context.WithTimeout(ctx, 2*time.Second)
	reply, err := f.nc.RequestWithContext(actx, reqSubject(id), mustJSON(env))
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return &response{outcome: clientGone, err: err}
		}
		return &response{outcome: refused, err: err}
	}
	var a ack
	if json.Unmarshal(reply.Data, &a) != nil || !a.OK {
		return &response{outcome: refused, err: fmt.Errorf("worker %s refused: %s", id, a.Error)}
	}
	rc := http.NewResponseController(w)
	lost := time.NewTimer(3 * f.cfg.Heartbeat)
	defer lost.Stop()
	var (
		next    uint64
		started bool // bytes reached the client
		held    *response
		sse     bool
	)
	fail := func(why string) *response {
		f.nc.Publish(env.Stream+".cancel", nil)
		if !started {
			return &response{outcome: lostBefore, err: errors.New(why)}
		}
		if sse {
			msg := fmt.Sprintf("the worker %s serving this request was lost (%s)", id, why)
			fmt.Fprintf(w, "data: %s\n\n", errorJSON("server_error", "worker_lost", msg))
			rc.Flush()
		}
		f.log.Warn("stream lost", "worker", id, "why", why)
		return &response{outcome: lostAfterStart, err: errors.New(why)}
	}
	for {
		select {
		case <-ctx.Done():
			f.nc.Publish(env.Stream+".cancel", nil)
			return &response{outcome: clientGone, err: ctx.Err()}
		case <-lost.C:
			return fail("no frame within 3 heartbeats")
		case m := <-frames:
			kind, seq, ok := frameOf(m)
			if !ok || seq != next {
				return fail(fmt.Sprintf("frame %d arrived, %d expected", seq, next))
			}
			next++
			lost.Reset(3 * f.cfg.Heartbeat)
			switch kind {
			case kindHB:
			case kindHead:
				var h frameHead
				if json.Unmarshal(m.Data, &h) != nil {
					return fail("malformed head frame")
				}
				if h.Status == http.StatusTooManyRequests || h.Status == http.StatusServiceUnavailable {
					held = &response{outcome: busy, status: h.Status, header: h.Header}
					continue
				}
				for k, v := range h.Header {
					w.Header()[k] = v
				}
				sse = strings.HasPrefix(h.Header.Get("Content-Type"), "text/event-stream")
				w.WriteHeader(h.Status)
				started = true
				rc.Flush()
			case kindData:
				if held != nil {
					held.body = append(held.body, m.Data...)
					continue
				}
				if _, err := w.Write(m.Data); err != nil {
					f.nc.Publish(env.Stream+".cancel", nil)
					return &response{outcome: clientGone, err: err}
				}
				rc.Flush()
			case kindEnd:
				var e frameEnd
				json.Unmarshal(m.Data, &e)
				if held != nil {
					return held
				}
				if e.Error != "" {
					if !started {
						writeAPIError(w, http.StatusBadGateway, "server_error", "worker_error", e.Error)
						return &response{outcome: served}
					}
					return fail(e.Error)
				}
				if !started {
					w.WriteHeader(http.StatusOK)
				}
				return &response{outcome: served}
			}
		}
	}
}

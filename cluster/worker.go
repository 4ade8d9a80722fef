package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// NodeState is what a node reports about itself.
type NodeState struct {
	Backend, Device  string
	Loaded, Loadable []string
	MaxConcurrent    int
	FreeKVBytes      int64 // -1: unknown
}

// Node is what a worker serves: the OpenAI API of one host (realm
// serve's handler over a loader runtime) and what that host holds.
type Node interface {
	Handler() http.Handler
	State(ctx context.Context) NodeState
}

// WorkerConfig configures a Worker.
type WorkerConfig struct {
	// ID names the worker (its key in StateBucket; letters, digits, -
	// and _ only).
	ID string
	// Conn is the NATS connection (the caller's; Close leaves it open).
	Conn *nats.Conn
	// Node serves the requests.
	Node Node
	// Heartbeat and StateInterval default to the package's constants.
	Heartbeat, StateInterval time.Duration
	// Logger receives events (nil: discard).
	Logger hclog.Logger
}

// Worker serves the requests routed to it and publishes its state.
type Worker struct {
	cfg     WorkerConfig
	log     hclog.Logger
	kv      jetstream.KeyValue
	handler http.Handler
	subs    []*nats.Subscription
	changed chan struct{}
	stop    context.CancelFunc
	done    chan struct{}

	mu       sync.Mutex
	inflight int
	served   uint64
	draining bool
	prefixes recentPrefixes
	idle     *sync.Cond
}

// validID reports whether id can be a key and a subject token.
func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// NewWorker binds the state bucket (waiting until a front end created
// it or ctx ends), subscribes to the worker's subjects and starts
// publishing its state.
func NewWorker(ctx context.Context, cfg WorkerConfig) (*Worker, error) {
	if !validID(cfg.ID) {
		return nil, fmt.Errorf("cluster: worker id %q: use 1-64 letters, digits, - or _", cfg.ID)
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = Heartbeat
	}
	if cfg.StateInterval <= 0 {
		cfg.StateInterval = StateInterval
	}
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	js, err := jetstream.New(cfg.Conn)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	kv, err := stateBucket(ctx, js, 0, false)
	if err != nil {
		return nil, fmt.Errorf("cluster: binding the state bucket: %w", err)
	}
	w := &Worker{cfg: cfg, log: log.Named("worker"), kv: kv, handler: cfg.Node.Handler(),
		changed: make(chan struct{}, 1), done: make(chan struct{})}
	w.idle = sync.NewCond(&w.mu)
	for subj, h := range map[string]nats.MsgHandler{reqSubject(cfg.ID): w.onRequest, metricsSubject(cfg.ID): w.onMetrics} {
		sub, err := cfg.Conn.Subscribe(subj, h)
		if err != nil {
			w.unsubscribe()
			return nil, fmt.Errorf("cluster: subscribing %s: %w", subj, err)
		}
		sub.SetPendingLimits(-1, -1)
		w.subs = append(w.subs, sub)
	}
	if err := cfg.Conn.FlushTimeout(5 * time.Second); err != nil {
		w.unsubscribe()
		return nil, fmt.Errorf("cluster: %w", err)
	}
	if err := w.publish(ctx); err != nil {
		w.unsubscribe()
		return nil, err
	}
	lctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	w.stop = stop
	go w.stateLoop(lctx)
	return w, nil
}

func (w *Worker) unsubscribe() {
	for _, s := range w.subs {
		s.Unsubscribe()
	}
	w.subs = nil
}

// State returns what the worker publishes now.
func (w *Worker) State(ctx context.Context) WorkerState {
	ns := w.cfg.Node.State(ctx)
	w.mu.Lock()
	defer w.mu.Unlock()
	st := WorkerState{ID: w.cfg.ID, Backend: ns.Backend, Device: ns.Device, Loaded: ns.Loaded, Loadable: ns.Loadable,
		MaxConcurrent: ns.MaxConcurrent, FreeKVBytes: ns.FreeKVBytes, Prefixes: w.prefixes.snapshot(),
		Draining: w.draining, Served: w.served}
	st.Running = w.inflight
	if ns.MaxConcurrent > 0 && st.Running > ns.MaxConcurrent {
		st.Running, st.Queued = ns.MaxConcurrent, w.inflight-ns.MaxConcurrent
	}
	return st
}

func (w *Worker) publish(ctx context.Context) error {
	st := w.State(ctx)
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := w.kv.Put(pctx, w.cfg.ID, mustJSON(st)); err != nil {
		return fmt.Errorf("cluster: publishing worker state: %w", err)
	}
	return nil
}

// stateLoop refreshes the key every StateInterval and soon after a
// change (a request accepted or finished), at most every 50ms.
func (w *Worker) stateLoop(ctx context.Context) {
	defer close(w.done)
	t := time.NewTicker(w.cfg.StateInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-w.changed:
			select {
			case <-ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
		if err := w.publish(ctx); err != nil && ctx.Err() == nil {
			w.log.Warn("state not published", "error", err)
		}
	}
}

func (w *Worker) poke() {
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

func (w *Worker) onMetrics(m *nats.Msg) {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	w.handler.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		// (an API key guards the worker's /metrics): nothing to re-export.
		m.Respond(nil)
		return
	}
	m.Respond(rec.Body.Bytes())
}

func (w *Worker) onRequest(m *nats.Msg) {
	var env envelope
	if err := json.Unmarshal(m.Data, &env); err != nil || env.Stream == "" {
		m.Respond(mustJSON(ack{Error: "malformed request envelope"}))
		return
	}
	w.mu.Lock()
	if w.draining {
		w.mu.Unlock()
		m.Respond(mustJSON(ack{Error: "draining"}))
		return
	}
	w.inflight++
	w.mu.Unlock()
	w.poke()
	if err := m.Respond(mustJSON(ack{OK: true})); err != nil {
		w.finish(false, nil)
		return
	}
	go w.serve(&env)
}

func (w *Worker) finish(served bool, prefixes []string) {
	w.mu.Lock()
	w.inflight--
	if served {
		w.served++
		w.prefixes.add(prefixes)
	}
	if w.inflight == 0 {
		w.idle.Broadcast()
	}
	w.mu.Unlock()
	w.poke()
}

// serve runs one request and streams its response as frames.
func (w *Worker) serve(env *envelope) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	nc := w.cfg.Conn
	csub, err := nc.Subscribe(env.Stream+".cancel", func(*nats.Msg) { cancel() })
	if err == nil {
		defer csub.Unsubscribe()
	}
	fw := &frameWriter{nc: nc, subject: env.Stream, header: http.Header{}}
	hbDone := make(chan struct{})
	go fw.heartbeats(ctx, w.cfg.Heartbeat, hbDone)

	var prefixes []string
	if h := parseHead(env.Body); h != nil {
		prefixes = PrefixHashes(h.Model, h)
	}
	req, err := http.NewRequestWithContext(ctx, env.Method, env.Path, bytes.NewReader(env.Body))
	endErr := ""
	if err != nil {
		endErr = "bad request envelope: " + err.Error()
	} else {
		req.Header = env.Header
		if req.Header == nil {
			req.Header = http.Header{}
		}
		req.RemoteAddr = "nats"
		endErr = w.run(fw, req)
	}
	cancel()
	<-hbDone
	fw.end(endErr)
	w.finish(true, prefixes)
}

// run calls the handler, turning a panic into the end frame's error.
func (w *Worker) run(fw *frameWriter, req *http.Request) (msg string) {
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				msg = "aborted"
				return
			}
			w.log.Error("handler panicked", "panic", p)
			msg = fmt.Sprintf("the worker's handler failed: %v", p)
		}
	}()
	w.handler.ServeHTTP(fw, req)
	return ""
}

// Drain stops taking requests (the state says so at once, so front ends
// stop routing here), waits for the requests held to finish or ctx to
// end, then deletes the worker's key and stops. The connection stays
// the caller's.
func (w *Worker) Drain(ctx context.Context) error {
	w.mu.Lock()
	w.draining = true
	w.mu.Unlock()
	if err := w.publish(ctx); err != nil {
		w.log.Warn("draining state not published", "error", err)
	}
	idle := make(chan struct{})
	go func() {
		w.mu.Lock()
		for w.inflight > 0 {
			w.idle.Wait()
		}
		w.mu.Unlock()
		close(idle)
	}()
	var err error
	select {
	case <-idle:
	case <-ctx.Done():
		err = fmt.Errorf("cluster: draining: %w", ctx.Err())
	}
	w.Close()
	return err
}

// Close stops serving at once and deletes the worker's key.
func (w *Worker) Close() {
	w.unsubscribe()
	if w.stop != nil {
		w.stop()
		<-w.done
		w.stop = nil
	}
	dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := w.kv.Delete(dctx, w.cfg.ID); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		w.log.Warn("deleting the state key", "error", err)
	}
}

// frameWriter is the http.ResponseWriter of a routed request: it sends
// the head at the first write, the bytes written at each Flush (and at
// the end), and a heartbeat whenever a Heartbeat went by without a frame.
type frameWriter struct {
	nc      *nats.Conn
	subject string
	header  http.Header

	mu       sync.Mutex
	seq      uint64
	status   int
	headSent bool
	buf      bytes.Buffer
	lastSent time.Time
}

func (f *frameWriter) Header() http.Header { return f.header }

func (f *frameWriter) WriteHeader(status int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.status == 0 {
		f.status = status
	}
}

func (f *frameWriter) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.status == 0 {
		f.status = http.StatusOK
	}
	f.buf.Write(p)
	if f.buf.Len() >= 256<<10 {
		if err := f.flushLocked(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// Flush implements http.Flusher.
func (f *frameWriter) Flush() { f.FlushError() }

// FlushError sends what was written (http.ResponseController uses it).
func (f *frameWriter) FlushError() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.status == 0 {
		f.status = http.StatusOK
	}
	return f.flushLocked()
}

func (f *frameWriter) sendLocked(kind string, body []byte) error {
	err := f.nc.PublishMsg(newFrame(f.subject, kind, f.seq, body))
	f.seq++
	f.lastSent = time.Now()
	return err
}

func (f *frameWriter) flushLocked() error {
	if !f.headSent && f.status != 0 {
		f.headSent = true
		h := f.header.Clone()
		h.Del("Content-Length")
		if err := f.sendLocked(kindHead, mustJSON(frameHead{Status: f.status, Header: h})); err != nil {
			return err
		}
	}
	for f.buf.Len() > 0 {
		n := min(f.buf.Len(), 512<<10)
		if err := f.sendLocked(kindData, bytes.Clone(f.buf.Next(n))); err != nil {
			return err
		}
	}
	return nil
}

func (f *frameWriter) heartbeats(ctx context.Context, every time.Duration, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(every / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		f.mu.Lock()
		if time.Since(f.lastSent) >= every {
			f.sendLocked(kindHB, nil)
		}
		f.mu.Unlock()
	}
}

// end sends what is left and the final frame.
func (f *frameWriter) end(errMsg string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.status == 0 && errMsg == "" {
		f.status = http.StatusOK
	}
	f.flushLocked()
	f.sendLocked(kindEnd, mustJSON(frameEnd{Error: errMsg}))
}

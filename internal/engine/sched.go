package engine

import (
	"context"
	"fmt"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/realmrt/realm/backends"
)

// Defaults of the scheduler (Options.StepTokens, Options.GatherWait).
const (
	// DefaultStepTokens is the token budget of one merged forward pass:
	// a prompt longer than what is left of it after the running
	// streams' tokens is run in chunks, so it never stalls them for
	// more than one step.
	DefaultStepTokens = 128
	// DefaultGatherWait is how long a step waits for the sessions of
	// the previous step to send their next token before it starts
	// without them.
	DefaultGatherWait = 3 * time.Millisecond
)

// maxExecutors bounds the executors a scheduler keeps (one per batch
// height up to keepRows), so that the buffers of many batch heights are
// not all held at once.
const maxExecutors = 4

// scheduler merges the Decode calls of the sessions of one model that
// are waiting at the same time into one forward pass per step
// (continuous batching): one Batch with a sequence per session, the
// pending single tokens of running streams first, then chunks of
// prompts up to the step's token budget. Every session gets the logits
// of its own last token, exactly what decoding it alone gives up to the
// kernels' batch-dependent rounding (the tests hold that to the
// conformance bound).
//
// Callers hold their session (the registry's lock) until their request
// is answered, so only the scheduler touches a session's KV rows while
// it is queued, and only the caller changes its tokens (commit, after
// success): a failed or cancelled request leaves its session as it was.
type scheduler struct {
	m      *Model
	budget int
	gather time.Duration

	mu      sync.Mutex
	queue   []*schedReq // in arrival order
	running bool        // a goroutine is running steps
	closed  bool
	wake    chan struct{} // a request arrived (buffered, 1)
	// expect holds the sessions whose request the last step answered:
	// the next step waits up to gather for them to come back.
	expect map[*Session]bool
	// Used only by the running goroutine.
	execs map[int]*executor
	// big is the executor of the last step taller than keepRows and
	// bigRows its height: prompt chunks are mostly full steps of the
	// same height, whose buffers it keeps instead of leaving a step's
	// worth of garbage (tens of MB for an 8B model) behind each one.
	// Both are under bigMu: bigTrim, armed after each tall step, drops
	// them (and returns the freed memory to the system) once no tall
	// step has run for bigIdle.
	bigMu   sync.Mutex
	big     *executor
	bigRows int
	bigBusy bool      // a tall step is using big
	bigLast time.Time // when the last tall step ended
	bigTrim *time.Timer
	graph   *Graph
	shape   []int        // per sequence of graph: its rows, then NCtx
	steps   atomic.Int64 // forward passes run
	rows    atomic.Int64 // tokens they held
	merged  atomic.Int64 // passes that held more than one session
}

// schedReq is one Decode call waiting in the scheduler.
type schedReq struct {
	ctx    context.Context
	s      *Session
	tokens []int32
	start  int  // position of tokens[0]
	done   int  // tokens already run (their KV rows are written)
	inStep bool // part of the step running now (guarded by mu)
	logits []float32
	err    error
	ready  chan struct{} // closed when answered
}

// newScheduler returns the scheduler of model m.
func newScheduler(m *Model, budget int, gather time.Duration) *scheduler {
	if budget <= 0 {
		budget = DefaultStepTokens
	}
	if gather < 0 {
		gather = 0
	}
	return &scheduler{m: m, budget: budget, gather: gather, wake: make(chan struct{}, 1),
		expect: map[*Session]bool{}, execs: map[int]*executor{}}
}

// decode runs tokens on s merged with whatever other sessions of the
// model are decoding now and returns the logits of the last token
// ([NVocab]). On success the tokens are appended to s; on any error s
// is unchanged. The caller must hold s (no other call on it meanwhile).
func (q *scheduler) decode(ctx context.Context, s *Session, tokens []int32) ([]float32, error) {
	// Leading blocks the KV pool holds for the same prefix are reused:
	// the request starts with them done.
	start, skip, err := s.reserve(tokens, false)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r := &schedReq{ctx: ctx, s: s, tokens: tokens, start: start, done: skip, ready: make(chan struct{})}
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil, fmt.Errorf("engine: %w: the model was unloaded", backends.ErrNotFound)
	}
	q.queue = append(q.queue, r)
	if !q.running {
		q.running = true
		go q.loop()
	}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	select {
	case <-r.ready:
	case <-ctx.Done():
		// Not in a step: leave the queue now. In a step: the step
		// answers (it stops early only when all of its callers left),
		// and the session must not be released while it runs.
		q.mu.Lock()
		if !r.inStep {
			if i := slices.Index(q.queue, r); i >= 0 {
				q.queue = slices.Delete(q.queue, i, i+1)
				q.mu.Unlock()
				return nil, ctx.Err()
			}
		}
		q.mu.Unlock()
		<-r.ready
	}
	if r.err != nil {
		return nil, r.err
	}
	s.commit(tokens)
	return r.logits, nil
}

// close stops the scheduler's goroutine once it is idle; later calls
// fail. The registry calls it after every call on the model ended.
func (q *scheduler) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.bigMu.Lock()
	if q.bigTrim != nil {
		q.bigTrim.Stop()
	}
	q.big = nil
	q.bigMu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// bigIdle is how long the scheduler keeps the buffers of its tall steps
// after the last one (prompt chunks of an 8B model: ~45 MB).
const bigIdle = time.Second

// bigDone ends a tall step and arms the timer that drops its executor.
func (q *scheduler) bigDone() {
	q.bigMu.Lock()
	defer q.bigMu.Unlock()
	q.bigBusy, q.bigLast = false, time.Now()
	if q.bigTrim == nil {
		q.bigTrim = time.AfterFunc(bigIdle, q.trimBig)
	} else {
		q.bigTrim.Reset(bigIdle)
	}
}

// trimBig drops the tall steps' executor when none ran for bigIdle and
// gives the memory back to the system (the Go runtime would keep it
// for a while: a server's resident set would stay at its largest
// prompt's).
func (q *scheduler) trimBig() {
	q.bigMu.Lock()
	if q.big == nil || q.bigBusy || time.Since(q.bigLast) < bigIdle {
		q.bigMu.Unlock()
		return
	}
	q.big, q.bigRows = nil, 0
	q.bigMu.Unlock()
	debug.FreeOSMemory()
}

// stats returns the steps run, the rows they held and how many of them
// merged several sessions.
func (q *scheduler) stats() (steps, rows, merged int64) {
	return q.steps.Load(), q.rows.Load(), q.merged.Load()
}

// loop runs steps while requests are queued. Started by a prompt, it
// first waits gather for the prompts sent at the same moment (clients
// that start together), so that they share the first step.
func (q *scheduler) loop() {
	q.mu.Lock()
	prompt := slices.ContainsFunc(q.queue, func(r *schedReq) bool { return len(r.tokens) > 1 })
	q.mu.Unlock()
	if prompt && q.gather > 0 {
		time.Sleep(q.gather)
	}
	for {
		q.waitGather()
		q.mu.Lock()
		if len(q.queue) == 0 {
			q.running = false
			q.mu.Unlock()
			return
		}
		items := q.compose()
		q.mu.Unlock()
		q.step(items)
	}
}

// waitGather waits (up to gather) until every session the last step
// answered has sent its next request, so that running streams step
// together instead of alternating between two half batches.
func (q *scheduler) waitGather() {
	if q.gather <= 0 {
		return
	}
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		q.mu.Lock()
		missing := 0
		if !q.closed {
			for s := range q.expect {
				if !slices.ContainsFunc(q.queue, func(r *schedReq) bool { return r.s == s }) {
					missing++
				}
			}
		}
		if missing == 0 {
			clear(q.expect)
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(q.gather)
		}
		select {
		case <-q.wake:
		case <-timer.C:
			q.mu.Lock()
			clear(q.expect)
			q.mu.Unlock()
			return
		}
	}
}

// stepItem is one sequence of a step: n tokens of request r.
type stepItem struct {
	r *schedReq
	n int
}

// compose picks the next step under q.mu: the requests of the oldest
// request's context size (the graph may depend on it), every pending
// single token first (running streams), then prompt chunks in arrival
// order, up to the token budget. Requests whose caller has gone are
// answered with their context's error.
func (q *scheduler) compose() []stepItem {
	live := q.queue[:0]
	for _, r := range q.queue {
		if err := r.ctx.Err(); err != nil {
			r.err = err
			close(r.ready)
			continue
		}
		live = append(live, r)
	}
	clear(q.queue[len(live):])
	q.queue = live
	if len(live) == 0 {
		return nil
	}
	nCtx := live[0].s.nCtx
	left := q.budget
	var items []stepItem
	taken := make(map[*schedReq]bool)
	for pass := 0; pass < 2 && left > 0; pass++ {
		for _, r := range live {
			if left == 0 {
				break
			}
			rest := len(r.tokens) - r.done
			if taken[r] || r.s.nCtx != nCtx || (pass == 0 && rest != 1) {
				continue
			}
			n := min(rest, left)
			items = append(items, stepItem{r, n})
			taken[r] = true
			r.inStep = true
			left -= n
		}
	}
	return items
}

// stepKV is the KVStore of a step: sequence i is items[i]'s session.
type stepKV []stepItem

// KV implements KVStore.
func (kv stepKV) KV(seq int32, layer int) (KVView, error) {
	if seq < 0 || int(seq) >= len(kv) {
		return KVView{}, fmt.Errorf("engine: scheduler step has no sequence %d", seq)
	}
	return kv[seq].r.s.KV(0, layer)
}

// step runs one merged forward pass and answers the requests it
// finished.
func (q *scheduler) step(items []stepItem) {
	if len(items) == 0 {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The pass stops early only when every caller in it has gone.
	var left atomic.Int32
	left.Store(int32(len(items)))
	stops := make([]func() bool, len(items))
	for i, it := range items {
		stops[i] = context.AfterFunc(it.r.ctx, func() {
			if left.Add(-1) == 0 {
				cancel()
			}
		})
	}
	logits, err := q.run(ctx, items)
	for _, stop := range stops {
		stop()
	}
	nv := q.m.HP.NVocab
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, it := range items {
		r := it.r
		r.inStep = false
		r.done += it.n
		switch {
		case r.ctx.Err() != nil:
			r.err = r.ctx.Err()
		case err != nil:
			r.err = err
		case r.done < len(r.tokens):
			continue // more chunks in later steps
		default:
			r.logits = logits[i*nv : (i+1)*nv : (i+1)*nv]
			q.expect[r.s] = true
		}
		if j := slices.Index(q.queue, r); j >= 0 {
			q.queue = slices.Delete(q.queue, j, j+1)
		}
		close(r.ready)
	}
}

// run builds (or reuses) the step's graph and executes it. A kernel
// panic fails the step, not the process.
func (q *scheduler) run(ctx context.Context, items []stepItem) (logits []float32, err error) {
	defer recoverKernel(&err)
	shape := make([]int, 0, len(items)+1)
	rows := 0
	for _, it := range items {
		shape = append(shape, it.n)
		rows += it.n
	}
	nCtx := items[0].r.s.nCtx
	shape = append(shape, nCtx)
	g := q.graph
	if g == nil || !slices.Equal(q.shape, shape) {
		b := &Batch{Pos: make([]int32, rows), Seq: make([]int32, rows), NCtx: nCtx}
		for i, it := range items {
			for j := range it.n {
				b.Seq[len(b.Tokens)+j] = int32(i)
			}
			b.Tokens = append(b.Tokens, it.r.tokens[it.r.done:it.r.done+it.n]...)
		}
		g = q.m.graph(b)
		if rows <= keepRows {
			q.graph, q.shape = g, shape
		}
	}
	b := g.batch
	b.Tokens = b.Tokens[:0]
	for _, it := range items {
		r := it.r
		for j := range it.n {
			b.Pos[len(b.Tokens)+j] = int32(r.start + r.done + j)
		}
		b.Tokens = append(b.Tokens, r.tokens[r.done:r.done+it.n]...)
	}
	ex := q.execs[rows]
	if rows > keepRows {
		q.bigMu.Lock()
		if q.big == nil || q.bigRows != rows {
			q.big, q.bigRows = newExecutor(q.m.k), rows
		}
		ex, q.bigBusy = q.big, true
		q.bigMu.Unlock()
		defer q.bigDone()
	}
	if ex == nil {
		ex = newExecutor(q.m.k)
		if rows <= keepRows {
			if len(q.execs) >= maxExecutors {
				clear(q.execs)
			}
			q.execs[rows] = ex
		}
	}
	q.steps.Add(1)
	q.rows.Add(int64(rows))
	if len(items) > 1 {
		q.merged.Add(1)
	}
	q.m.passes.RLock()
	defer q.m.passEnded()
	defer q.m.passes.RUnlock()
	return ex.run(ctx, g, stepKV(items))
}

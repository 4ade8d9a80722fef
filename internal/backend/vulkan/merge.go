//go:build cgo && vulkan_headers

package vulkan

import (
	"context"
	"fmt"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/realmrt/realm/internal/engine"
)

// stepTokens is the token budget of one merged pass: running streams'
// single tokens go first, then chunks of prompts up to the budget, so a
// long prompt never holds the others back by more than one pass.
const stepTokens = maxMicroBatch

// merger runs the Decode calls of one model's sessions that wait for
// the device at the same time as one forward pass per step (continuous
// batching): every weight is read once for all of them, and each
// session gets the logits of its own last token. A goroutine runs steps
// while calls are queued and exits when none are.
//
// Callers hold their session (the registry's lock) until answered, so
// only the step touches a queued session's KV rows, and only the caller
// changes its tokens, after success: a failed or cancelled call leaves
// its session as it was.
type merger struct {
	mu      sync.Mutex
	queue   []*decReq // in arrival order
	running bool
	passes  atomic.Int64 // forward passes run
	merged  atomic.Int64 // passes that held more than one session
}

// decReq is one Decode call waiting in the merger.
type decReq struct {
	ctx    context.Context
	s      *gpuSession
	tokens []int32
	logits bool
	done   int  // tokens already run (their KV rows are written)
	taken  bool // part of the step running now (guarded by mu)
	out    []float32
	err    error
	ready  chan struct{} // closed when answered
}

// mergedDecode runs tokens on s (model lm) together with whatever other
// sessions of the model are decoding now, and returns the logits of the
// last token when logits is set. It does not append the tokens to s.
func (b *Backend) mergedDecode(ctx context.Context, lm *model, s *gpuSession, tokens []int32, logits bool) ([]float32, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	q := &lm.q
	r := &decReq{ctx: ctx, s: s, tokens: tokens, logits: logits, ready: make(chan struct{})}
	q.mu.Lock()
	q.queue = append(q.queue, r)
	if !q.running {
		q.running = true
		go b.mergeLoop(lm)
	}
	q.mu.Unlock()
	select {
	case <-r.ready:
	case <-ctx.Done():
		q.mu.Lock()
		if !r.taken {
			if i := slices.Index(q.queue, r); i >= 0 {
				q.queue = slices.Delete(q.queue, i, i+1)
				q.mu.Unlock()
				return nil, ctx.Err()
			}
		}
		q.mu.Unlock()
		<-r.ready
	}
	return r.out, r.err
}

// chunk is one request's share of a step.
type chunk struct {
	r *decReq
	n int // tokens of r run in this step
}

// mergeLoop runs steps while requests are queued.
func (b *Backend) mergeLoop(lm *model) {
	q := &lm.q
	for {
		q.mu.Lock()
		step := q.pick()
		if len(step) == 0 {
			q.running = false
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()
		err := b.runStep(lm, step)
		q.mu.Lock()
		for _, c := range step {
			r := c.r
			r.taken = false
			if err == nil {
				r.done += c.n
				if r.done < len(r.tokens) {
					continue // more of its prompt in a later step
				}
			}
			r.err = err
			q.queue = slices.DeleteFunc(q.queue, func(x *decReq) bool { return x == r })
			close(r.ready)
		}
		q.mu.Unlock()
	}
}

// pick takes the next step from the queue (the caller holds mu):
// requests whose caller has gone are answered with their context's
// error; the single tokens of running streams come first, then prompt
// chunks in arrival order up to stepTokens.
func (q *merger) pick() []chunk {
	q.queue = slices.DeleteFunc(q.queue, func(r *decReq) bool {
		if err := r.ctx.Err(); err != nil {
			r.err = err
			close(r.ready)
			return true
		}
		return false
	})
	var step []chunk
	budget := stepTokens
	for _, single := range []bool{true, false} {
		for _, r := range q.queue {
			left := len(r.tokens) - r.done
			if (left <= 1) != single || budget == 0 {
				continue
			}
			n := min(left, budget)
			budget -= n
			r.taken = true
			step = append(step, chunk{r, n})
		}
	}
	return step
}

// runStep runs one step as one batch (a sequence per request); a panic
// while recording is the step's error, never the plugin's end.
func (b *Backend) runStep(lm *model, step []chunk) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("vulkan: decode panic: %v\n%s", p, debug.Stack())
		}
	}()
	batch := &engine.Batch{}
	seqs := make([]*gpuSession, len(step))
	logits, ub := false, 0
	for i, c := range step {
		r := c.r
		seqs[i] = r.s
		batch.NCtx = max(batch.NCtx, r.s.nCtx)
		start := len(r.s.tokens) + r.done
		for j, t := range r.tokens[r.done : r.done+c.n] {
			batch.Tokens = append(batch.Tokens, t)
			batch.Pos = append(batch.Pos, int32(start+j))
			batch.Seq = append(batch.Seq, int32(i))
		}
		if r.logits && r.done+c.n == len(r.tokens) {
			logits = true
		}
		if r.s.ub > 0 && (ub == 0 || r.s.ub < ub) {
			ub = r.s.ub
		}
	}
	out, err := b.decode(context.Background(), lm, batch, seqs, logits, ub)
	if err != nil {
		return err
	}
	lm.q.passes.Add(1)
	if len(step) > 1 {
		lm.q.merged.Add(1)
	}
	if logits {
		nv := lm.m.HP.NVocab
		for i, c := range step {
			if c.r.logits && c.r.done+c.n == len(c.r.tokens) {
				c.r.out = slices.Clone(out[i*nv : (i+1)*nv])
			}
		}
	}
	return nil
}

package cpuavx2

import (
	"sync"
	"sync/atomic"
	"time"
)

// spinFor is how long an idle worker (and the caller waiting for the
// workers) polls before blocking: generation runs one short operation
// after another, and a futex wake-up of a sleeping thread costs tens of
// microseconds on this VM (an idle vCPU must be woken by the
// hypervisor), more than many of the operations themselves. 2 ms also
// bridges the round trip between two tokens through the plugin
// boundary (0.3–1 ms): with 50 µs the workers slept between tokens and
// tg32 through the plugin was 5–7% slower (Q4_0, 2 threads: 35.2–36.6
// vs 38.1–39.2 t/s). The cost is at most 2 ms of one core per thread
// after the last operation of a burst.
const spinFor = 2 * time.Millisecond

// pool is a persistent set of worker goroutines. The caller of run takes
// part as worker 0, so a pool of n threads starts n−1 goroutines. Idle
// workers poll for spinFor after each job, then block on a condition
// variable: spinning is bounded.
type pool struct {
	n int

	runMu sync.Mutex // serializes run calls

	mu      sync.Mutex
	wake    *sync.Cond    // signalled when a new job is posted or on close
	done    *sync.Cond    // signalled when the last worker finishes a job
	gen     atomic.Uint64 // job generation; changes under mu
	job     func(worker int)
	pending atomic.Int32 // workers still running the current job
	closed  atomic.Bool  // changes under mu
	exited  sync.WaitGroup
}

// newPool starts a pool of n threads (n ≥ 1).
func newPool(n int) *pool {
	p := &pool{n: n}
	p.wake = sync.NewCond(&p.mu)
	p.done = sync.NewCond(&p.mu)
	for i := 1; i < n; i++ {
		p.exited.Add(1)
		go p.worker(i)
	}
	return p
}

// spinUntil polls cond for at most spinFor and reports whether it became
// true.
func spinUntil(cond func() bool) bool {
	var t0 time.Time
	for i := 0; ; i++ {
		if cond() {
			return true
		}
		if i&63 == 63 {
			if t0.IsZero() {
				t0 = time.Now()
			} else if time.Since(t0) > spinFor {
				return false
			}
		}
	}
}

func (p *pool) worker(id int) {
	defer p.exited.Done()
	var seen uint64
	posted := func() bool { return p.gen.Load() != seen || p.closed.Load() }
	for {
		if !spinUntil(posted) {
			p.mu.Lock()
			for !posted() {
				p.wake.Wait()
			}
			p.mu.Unlock()
		}
		if p.closed.Load() {
			return
		}
		seen = p.gen.Load()
		p.job(id) // written before gen changed; stable until pending is 0

		if p.pending.Add(-1) == 0 {
			p.mu.Lock()
			p.done.Signal()
			p.mu.Unlock()
		}
	}
}

// run executes job on every thread of the pool (worker ids 0..n−1) and
// returns when all of them have returned.
func (p *pool) run(job func(worker int)) {
	if p.n == 1 {
		job(0)
		return
	}
	p.runMu.Lock()
	defer p.runMu.Unlock()
	p.mu.Lock()
	if p.closed.Load() {
		// After close only the caller is left: it does all the work
		// (every job hands out its items through a shared counter).
		p.mu.Unlock()
		job(0)
		return
	}
	p.job = job
	p.pending.Store(int32(p.n - 1))
	p.gen.Add(1)
	p.wake.Broadcast()
	p.mu.Unlock()

	job(0)

	finished := func() bool { return p.pending.Load() == 0 }
	if !spinUntil(finished) {
		p.mu.Lock()
		for !finished() {
			p.done.Wait()
		}
		p.mu.Unlock()
	}
}

// forChunks calls fn(lo, hi) over [0, n) in chunks of at most chunk
// items, handed out dynamically to the pool's threads through an atomic
// counter. Work smaller than minPar items runs on the calling goroutine.
func (p *pool) forChunks(n, chunk, minPar int, fn func(worker, lo, hi int)) {
	if n <= 0 {
		return
	}
	if chunk < 1 {
		chunk = 1
	}
	if p.n == 1 || n <= chunk || n < minPar {
		fn(0, 0, n)
		return
	}
	var next atomic.Int64
	p.run(func(worker int) {
		for {
			lo := int(next.Add(int64(chunk))) - chunk
			if lo >= n {
				return
			}
			fn(worker, lo, min(lo+chunk, n))
		}
	})
}

// close stops the workers and waits for them to exit. It is idempotent.
func (p *pool) close() {
	p.mu.Lock()
	if p.closed.Load() {
		p.mu.Unlock()
		return
	}
	p.closed.Store(true)
	p.wake.Broadcast()
	p.mu.Unlock()
	p.exited.Wait()
}

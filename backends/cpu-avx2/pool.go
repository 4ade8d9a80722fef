package cpuavx2

import (
	"sync"
	"sync/atomic"
)

// pool is a persistent set of worker goroutines. The caller of run takes
// part as worker 0, so a pool of n threads starts n−1 goroutines. Idle
// workers block on a condition variable: nothing spins.
type pool struct {
	n int

	runMu sync.Mutex // serializes run calls

	mu      sync.Mutex
	wake    *sync.Cond // signalled when a new job is posted or on close
	done    *sync.Cond // signalled when the last worker finishes a job
	gen     uint64     // job generation
	job     func(worker int)
	pending int // workers still running the current job
	closed  bool
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

func (p *pool) worker(id int) {
	defer p.exited.Done()
	var seen uint64
	for {
		p.mu.Lock()
		for p.gen == seen && !p.closed {
			p.wake.Wait()
		}
		if p.closed {
			p.mu.Unlock()
			return
		}
		seen = p.gen
		job := p.job
		p.mu.Unlock()

		job(id)

		p.mu.Lock()
		p.pending--
		if p.pending == 0 {
			p.done.Signal()
		}
		p.mu.Unlock()
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
	if p.closed {
		// After close only the caller is left: it does all the work
		// (every job hands out its items through a shared counter).
		p.mu.Unlock()
		job(0)
		return
	}
	p.job = job
	p.gen++
	p.pending = p.n - 1
	p.wake.Broadcast()
	p.mu.Unlock()

	job(0)

	p.mu.Lock()
	for p.pending > 0 {
		p.done.Wait()
	}
	p.job = nil
	p.mu.Unlock()
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
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.wake.Broadcast()
	p.mu.Unlock()
	p.exited.Wait()
}

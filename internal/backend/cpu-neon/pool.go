package cpuneon

import (
	"sync"
	"sync/atomic"
)

// job is one parallel loop over [0, n) handed out in chunks.
type job struct {
	fn    func(worker, lo, hi int)
	n     int
	chunk int
	next  atomic.Int64
	wg    sync.WaitGroup

	mu    sync.Mutex
	panic any // the first panic of any worker, re-raised by the caller
}

// run works on j, turning a panic into j.panic and stopping the
// remaining chunks, so a failing kernel cannot kill a helper goroutine
// (and the process) or leave the caller waiting.
func (j *job) run(worker int) {
	defer func() {
		if r := recover(); r != nil {
			j.mu.Lock()
			if j.panic == nil {
				j.panic = r
			}
			j.mu.Unlock()
			j.next.Store(int64(j.n))
		}
	}()
	j.work(worker)
}

// work runs chunks of j until none is left.
func (j *job) work(worker int) {
	for {
		lo := int(j.next.Add(int64(j.chunk))) - j.chunk
		if lo >= j.n {
			return
		}
		hi := lo + j.chunk
		if hi > j.n {
			hi = j.n
		}
		j.fn(worker, lo, hi)
	}
}

// pool is a fixed set of worker goroutines that sleep on a channel
// between operations. The calling goroutine takes part as worker 0.
type pool struct {
	threads int
	jobs    []chan *job // one per helper worker (workers 1..threads-1)
	done    sync.WaitGroup
	once    sync.Once
}

func newPool(threads int) *pool {
	p := &pool{threads: threads}
	for w := 1; w < threads; w++ {
		ch := make(chan *job, 1)
		p.jobs = append(p.jobs, ch)
		p.done.Add(1)
		go func(w int, ch chan *job) {
			defer p.done.Done()
			for j := range ch {
				j.run(w)
				j.wg.Done()
			}
		}(w, ch)
	}
	return p
}

// parallel calls fn(worker, lo, hi) over [0, n) in chunks of chunk items
// (dynamic scheduling: each worker takes the next free chunk), using at
// most maxWorkers workers, and returns when all chunks are done. worker
// is in [0, threads) and identifies per-worker scratch space. A panic in
// any worker is re-raised on the calling goroutine after all workers
// have stopped.
func (p *pool) parallel(n, chunk int, fn func(worker, lo, hi int)) {
	if n <= 0 {
		return
	}
	if chunk < 1 {
		chunk = 1
	}
	helpers := (n+chunk-1)/chunk - 1
	if helpers > len(p.jobs) {
		helpers = len(p.jobs)
	}
	if helpers <= 0 {
		fn(0, 0, n)
		return
	}
	j := &job{fn: fn, n: n, chunk: chunk}
	j.wg.Add(helpers)
	for w := 0; w < helpers; w++ {
		p.jobs[w] <- j
	}
	j.run(0)
	j.wg.Wait()
	if j.panic != nil {
		panic(j.panic)
	}
}

// chunkFor picks a chunk size giving each thread several chunks.
func (p *pool) chunkFor(n, min int) int {
	c := n / (p.threads * 4)
	if c < min {
		c = min
	}
	return c
}

func (p *pool) close() {
	p.once.Do(func() {
		for _, ch := range p.jobs {
			close(ch)
		}
		p.done.Wait()
	})
}

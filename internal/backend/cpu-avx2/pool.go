package cpuavx2

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// spinFor is how long an idle worker (and the caller waiting for the
// workers) polls before blocking on a quiet machine: generation runs one
// short operation after another, and a futex wake-up of a sleeping
// thread costs tens of microseconds on this VM (an idle vCPU must be
// woken by the hypervisor), more than many of the operations
// themselves. 2 ms also bridges the round trip between two tokens
// through the plugin boundary (0.3–1 ms): with 50 µs the workers slept
// between tokens and tg32 through the plugin was 5–7% slower (Q4_0, 2
// threads: 35.2–36.6 vs 38.1–39.2 t/s). The cost is at most 2 ms of one
// core per thread after the last operation of a burst.
const spinFor = 2 * time.Millisecond

// busySpinFor replaces spinFor while the machine is oversubscribed
// (another process wants the pool's cores): a spinning thread then takes
// the core from a thread that has work (one of ours, descheduled, or
// the process that competes), so it gives the core up quickly.
const busySpinFor = 30 * time.Microsecond

// busyHold is how long the pool stays in its busy-machine mode after a
// worker last found itself runnable but not running for more than
// busyLost of the time in busyIntervals intervals in a row, each of at
// least busyMinInterval: a thread that shares its core with a process
// that never sleeps waits for a third to a half of the time, while the
// short preemptions of a quiet machine (the plugin's own runtime
// threads, the client) cost it a few percent, and an occasional longer
// one (another process that runs a while, then sleeps) does not repeat
// interval after interval.
const (
	busyIntervals   = 3
	busyHold        = 250 * time.Millisecond
	busyLost        = 0.2
	busyMinInterval = 5 * time.Millisecond
	busyMaxInterval = 500 * time.Millisecond
)

// Bits of pool.state: the job generation (high 32 bits), whether the
// current job is open to workers that have not joined it yet, and how
// many workers are running it.
const (
	stateOpen   = 1 << 31
	stateActive = stateOpen - 1
	stateGen    = 1 << 32
)

// pool is a persistent set of worker goroutines. The caller of run takes
// part as worker 0, so a pool of n threads starts n−1 goroutines. A job
// hands out its work through a shared counter; a worker joins a job only
// while the caller is still working on it, so work that a descheduled
// worker has not started is done by the threads that run, and the caller
// waits only for workers in the middle of an item. Idle threads poll for
// spinFor (busySpinFor on a busy machine) after each job, then block:
// spinning is bounded.
type pool struct {
	n int

	runMu sync.Mutex // serializes run calls

	mu     sync.Mutex
	wake   *sync.Cond // signalled when a new job is posted or on close
	done   *sync.Cond // signalled when the last joined worker leaves a closed job
	state  atomic.Uint64
	job    func(worker int) // written while no worker can join
	closed atomic.Bool      // changes under mu
	exited sync.WaitGroup

	// busyUntil is the monotonic time (ns since start) until which the
	// machine counts as oversubscribed (see busyHold and soloNow).
	busyUntil atomic.Int64
	start     time.Time

	// Adaptive thread count on a busy machine (see soloNow), under amu.
	amu     sync.Mutex
	phase   int           // −1: quiet; 0: timing the pool; 1: timing the caller alone; 2: using the faster
	phaseT0 time.Duration // start of the phase (since start)
	items   int64         // work items handed to forChunks in this phase
	rates   [2]float64    // items per second of phases 0 and 1
	useSolo bool

	// beforeJoin, when set (tests), is called by a worker that has seen
	// a new job, before it tries to join it: a stand-in for a thread
	// that the OS deschedules at that moment.
	beforeJoin func(worker int)
}

// newPool starts a pool of n threads (n ≥ 1).
func newPool(n int) *pool { return newPoolHooked(n, nil) }

// newPoolHooked is newPool with pool.beforeJoin set.
func newPoolHooked(n int, beforeJoin func(worker int)) *pool {
	p := &pool{n: n, start: time.Now(), beforeJoin: beforeJoin, phase: -1}
	p.wake = sync.NewCond(&p.mu)
	p.done = sync.NewCond(&p.mu)
	for i := 1; i < n; i++ {
		p.exited.Add(1)
		go p.worker(i)
	}
	return p
}

// busy reports whether the machine counts as oversubscribed now.
func (p *pool) busy() bool {
	return int64(time.Since(p.start)) < p.busyUntil.Load()
}

// watch follows one worker's OS thread: its CPU time and the wall time
// at the last look, and the time it slept voluntarily since. Wall time
// that is neither CPU time nor sleep is time the thread was runnable
// but not running: another thread had its core.
type watch struct {
	cpu, wall, slept time.Duration // cpu < 0: unknown
	lossy            int           // intervals in a row that lost more than busyLost
}

// look ends an interval of w and switches the pool into its busy mode
// when the thread lost more than busyLost of it.
func (p *pool) look(w *watch) {
	cpu := osThreadCPU()
	wall := time.Since(p.start)
	if w.cpu >= 0 && cpu >= 0 {
		iv := wall - w.wall
		if iv >= busyMinInterval && iv <= busyMaxInterval {
			if lost := iv - (cpu - w.cpu) - w.slept; float64(lost) > busyLost*float64(iv) {
				if w.lossy++; w.lossy >= busyIntervals {
					p.busyUntil.Store(int64(wall + busyHold))
				}
			} else {
				w.lossy = 0
			}
		} else if iv < busyMinInterval {
			return // extend the interval
		} else {
			w.lossy = 0 // too long ago to tell
		}
	}
	w.cpu, w.wall, w.slept = cpu, wall, 0
}

// lookAfter is how long a spin runs before it reads the thread's
// context switch count (a system call, ~1 µs): most waits between two
// operations end sooner and stay free of it.
const lookAfter = 20 * time.Microsecond

// spinUntil polls cond for at most spinFor (busySpinFor on a busy
// machine) and reports whether it became true. w follows the calling
// thread (nil: the caller, whose goroutine may change threads between
// calls; it does not look).
func (p *pool) spinUntil(cond func() bool, w *watch) bool {
	var t0 time.Time
	limit := spinFor
	looked := false
	for i := 0; ; i++ {
		if cond() {
			return true
		}
		if i&63 != 63 {
			continue
		}
		if t0.IsZero() {
			t0 = time.Now()
			if p.busy() {
				limit = busySpinFor
			}
			continue
		}
		el := time.Since(t0)
		if el > limit {
			return false
		}
		if w != nil && el > lookAfter && (!looked || i&1023 == 1023) {
			looked = true
			if p.look(w); p.busy() && limit == spinFor {
				return false
			}
		}
	}
}

func (p *pool) worker(id int) {
	defer p.exited.Done()
	// One OS thread per worker, so that its context switch counter
	// describes it across jobs.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var seen uint64 // generation of the last job looked at
	w := watch{cpu: -1}
	posted := func() bool { return p.state.Load()/stateGen != seen || p.closed.Load() }
	for {
		if !p.spinUntil(posted, &w) {
			t0 := time.Now()
			p.mu.Lock()
			for !posted() {
				p.wake.Wait()
			}
			p.mu.Unlock()
			w.slept += time.Since(t0)
		}
		if p.closed.Load() {
			return
		}
		if p.beforeJoin != nil {
			p.beforeJoin(id)
		}
		// Join the job if it is still open.
		joined := false
		for {
			s := p.state.Load()
			seen = s / stateGen
			if s&stateOpen == 0 {
				break // the caller finished it alone
			}
			if p.state.CompareAndSwap(s, s+1) {
				joined = true
				break
			}
		}
		if !joined {
			continue
		}
		p.job(id) // written before the job opened; stable until it closes with no one active
		if s := p.state.Add(^uint64(0)); s&stateOpen == 0 && s&stateActive == 0 {
			p.mu.Lock()
			p.done.Signal()
			p.mu.Unlock()
		}
	}
}

// run executes job on the caller (worker id 0) and on every worker that
// joins before the caller returns from it (ids 1..n−1), and returns when
// all of them have returned. job must hand out its work through shared
// state so that any subset of the threads completes it.
func (p *pool) run(job func(worker int)) {
	if p.n == 1 {
		job(0)
		return
	}
	p.runMu.Lock()
	defer p.runMu.Unlock()
	if p.closed.Load() {
		// After close only the caller is left: it does all the work.
		job(0)
		return
	}
	// No worker is active and none can join (the previous job is
	// closed), so job can be replaced.
	p.job = job
	gen := p.state.Load()/stateGen + 1
	p.state.Store(gen*stateGen | stateOpen)
	p.mu.Lock()
	p.wake.Broadcast()
	p.mu.Unlock()

	job(0)

	// Close the job: workers that have not joined yet skip it.
	s := p.state.And(^uint64(stateOpen)) &^ stateOpen
	if s&stateActive == 0 {
		return
	}
	finished := func() bool { return p.state.Load()&stateActive == 0 }
	if !p.spinUntil(finished, nil) {
		p.mu.Lock()
		for !finished() {
			p.done.Wait()
		}
		p.mu.Unlock()
	}
}

// Phases of the adaptive thread count: each mode is timed for
// phaseTime, then the faster is used for useTime.
const (
	phaseTime = 100 * time.Millisecond
	useTime   = 900 * time.Millisecond
)

// soloNow counts an operation of n items and reports whether it runs on
// the caller alone. On a quiet machine never. On a busy one a worker is
// often preempted in the middle of an item, the caller then waits for
// the scheduler to run it again, and waking the workers takes cores from
// the caller: whether the pool still beats the caller alone depends on
// how busy the machine is (measured on 2 cores: 1.5× with a few
// intermittent processes, 0.1× beside one that never sleeps). So the
// pool times both: phaseTime with its workers, phaseTime without, then
// useTime with the faster, and again. The operations of a model repeat
// token after token, so items per second compare the two.
func (p *pool) soloNow(n int) bool {
	busy := p.busy()
	p.amu.Lock()
	defer p.amu.Unlock()
	if !busy {
		p.phase = -1
		return false
	}
	now := time.Since(p.start)
	if p.phase < 0 {
		p.phase, p.phaseT0, p.items = 0, now, 0
	}
	p.items += int64(n)
	if el := now - p.phaseT0; el >= phaseTime && p.phase < 2 || el >= useTime {
		switch p.phase {
		case 0, 1:
			p.rates[p.phase] = float64(p.items) / el.Seconds()
			p.phase++
			p.useSolo = p.rates[1] > p.rates[0]
			if p.phase == 2 && p.useSolo {
				// The workers sleep while the caller works alone, so
				// they cannot tell whether the machine is still busy:
				// the busy mode lasts until the next timing of the
				// pool, where they look again.
				p.busyUntil.Store(int64(now + useTime + phaseTime))
			}
		default:
			p.phase = 0
		}
		p.phaseT0, p.items = now, 0
	}
	switch p.phase {
	case 0:
		return false
	case 1:
		return true
	}
	return p.useSolo
}

// chunksPerThread is how many work items per thread a streaming
// operation (generation's matrix–vector products) is cut into: few and
// long on a quiet machine (each item's start is a prefetch miss), more
// on a busy one, where a thread may be descheduled in the middle of an
// item and the others wait for that item only.
func (p *pool) chunksPerThread() int {
	if p.busy() {
		return 16
	}
	return 4
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
	if p.n == 1 || p.soloNow(n) || n <= chunk || n < minPar {
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

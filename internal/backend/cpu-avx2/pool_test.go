package cpuavx2

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestPoolCoversEveryItem runs many small and large jobs on pools of 1–4
// threads: every item is handed out exactly once (run with -race).
func TestPoolCoversEveryItem(t *testing.T) {
	for _, n := range []int{1, 2, 3, 4} {
		p := newPool(n)
		for job := 0; job < 300; job++ {
			items := 1 + job%97*13
			hits := make([]atomic.Int32, items)
			var workers sync.Map
			p.forChunks(items, 1+job%5, 0, func(worker, lo, hi int) {
				workers.Store(worker, true)
				for i := lo; i < hi; i++ {
					hits[i].Add(1)
				}
			})
			for i := range hits {
				if h := hits[i].Load(); h != 1 {
					t.Fatalf("n=%d job %d: item %d done %d times", n, job, i, h)
				}
			}
			workers.Range(func(k, _ any) bool {
				if w := k.(int); w < 0 || w >= n {
					t.Fatalf("n=%d: worker id %d", n, w)
				}
				return true
			})
		}
		p.close()
		p.close()
		// After close the caller does all the work.
		var sum atomic.Int64
		p.forChunks(1000, 10, 0, func(_, lo, hi int) { sum.Add(int64(hi - lo)) })
		if sum.Load() != 1000 {
			t.Errorf("n=%d after close: %d items", n, sum.Load())
		}
	}
}

// TestPoolDoesNotWaitForDescheduledWorker stalls one worker before it
// joins a job (as if the OS had descheduled it): the caller must finish
// every job alone, without waiting for the stalled worker. (The pool
// that waited for every worker to run each job hung here.)
func TestPoolDoesNotWaitForDescheduledWorker(t *testing.T) {
	release := make(chan struct{})
	var stalled atomic.Bool
	p := newPoolHooked(2, func(worker int) {
		if stalled.CompareAndSwap(false, true) {
			<-release
		}
	})
	defer p.close()
	done := make(chan int)
	go func() {
		// Wait until the worker is stalled, then run jobs.
		for !stalled.Load() {
			p.forChunks(64, 1, 0, func(_, _, _ int) {})
			time.Sleep(time.Millisecond)
		}
		var items atomic.Int64
		for job := 0; job < 200; job++ {
			p.forChunks(64, 1, 0, func(worker, lo, hi int) {
				if worker != 0 {
					t.Errorf("worker %d ran an item while stalled", worker)
				}
				items.Add(int64(hi - lo))
			})
		}
		done <- int(items.Load())
	}()
	select {
	case n := <-done:
		if n != 200*64 {
			t.Errorf("%d items, want %d", n, 200*64)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("jobs waited for the stalled worker")
	}
	close(release)
	// The released worker must find the jobs closed and keep serving.
	var items atomic.Int64
	for job := 0; job < 50; job++ {
		p.forChunks(256, 1, 0, func(_, lo, hi int) { items.Add(int64(hi - lo)) })
	}
	if items.Load() != 50*256 {
		t.Errorf("after release: %d items", items.Load())
	}
}

// TestPoolBusyMode checks the busy-machine switch: a worker interval
// spent running or sleeping does not change the mode, one that lost more
// than busyLost of its wall time does, and the mode lapses after
// busyHold.
func TestPoolBusyMode(t *testing.T) {
	p := newPool(2)
	defer p.close()
	if p.busy() || p.chunksPerThread() != 4 {
		t.Fatal("new pool in busy mode")
	}
	if osThreadCPU() < 0 {
		t.Skip("no thread CPU clock")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// 10 ms of wall time, all of it asleep: not lost.
	w := watch{cpu: osThreadCPU(), wall: time.Since(p.start) - 10*time.Millisecond, slept: 10 * time.Millisecond}
	p.look(&w)
	if p.busy() {
		t.Fatal("an interval asleep switched to busy mode")
	}
	// 10 ms of wall time, neither running nor asleep: lost; busy after
	// busyIntervals such intervals in a row.
	w = watch{}
	for i := 1; i <= busyIntervals; i++ {
		w.cpu, w.wall = osThreadCPU(), time.Since(p.start)-10*time.Millisecond
		p.look(&w)
		if p.busy() != (i == busyIntervals) {
			t.Fatalf("%d lost intervals: busy %v", i, p.busy())
		}
		if i == 1 {
			// An interval asleep in between starts the count again.
			w.cpu, w.wall, w.slept = osThreadCPU(), time.Since(p.start)-10*time.Millisecond, 10*time.Millisecond
			p.look(&w)
			if w.lossy != 0 {
				t.Fatalf("lossy = %d after an interval asleep", w.lossy)
			}
			w.cpu, w.wall = osThreadCPU(), time.Since(p.start)-10*time.Millisecond
			p.look(&w)
		}
	}
	if p.chunksPerThread() != 16 {
		t.Fatal("busy: not 16 chunks per thread")
	}
	// Adaptive thread count: the pool's phases time both modes, then use
	// the faster.
	if p.soloNow(1) || p.phase != 0 {
		t.Fatalf("busy: phase %d, want 0 (timing the pool)", p.phase)
	}
	p.phaseT0 -= phaseTime
	p.items = 1000 // 1000 items in phaseTime with the workers
	if !p.soloNow(0) || p.phase != 1 {
		t.Fatalf("after phase 0: phase %d, want 1 (timing the caller alone)", p.phase)
	}
	var workers atomic.Int32
	p.forChunks(100, 1, 0, func(worker, _, _ int) { workers.Store(int32(worker) + 1) })
	if workers.Load() != 1 {
		t.Errorf("timing the caller alone: a job ran on worker %d", workers.Load()-1)
	}
	p.phaseT0 -= phaseTime
	p.items = 3000 // faster alone
	if !p.soloNow(0) || p.phase != 2 || !p.useSolo {
		t.Fatalf("after phase 1: phase %d, solo %v; want 2, the caller alone", p.phase, p.useSolo)
	}
	p.phaseT0 -= useTime
	if p.soloNow(0) || p.phase != 0 {
		t.Fatalf("after using the faster: phase %d, want 0", p.phase)
	}
	p.phaseT0 -= phaseTime
	p.items = 1000
	p.soloNow(0)
	p.phaseT0 -= phaseTime
	p.items = 500 // slower alone
	if p.soloNow(0) || p.useSolo {
		t.Fatal("the caller alone was slower but is used")
	}
	p.busyUntil.Store(int64(time.Since(p.start)) - 1)
	if p.busy() {
		t.Error("busy mode did not lapse")
	}
	if p.soloNow(1) || p.phase != -1 {
		t.Errorf("quiet: phase %d, want −1 (always the pool)", p.phase)
	}
}

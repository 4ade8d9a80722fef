package server

import (
	"container/list"
	"context"
	"errors"
	"sync"
)

// errQueueFull: every slot is busy and the queue is full.
var errQueueFull = errors.New("queue full")

// limiter admits up to max holders at once; the rest wait in a FIFO
// queue of at most maxQueue; one more is refused at once.
type limiter struct {
	max, maxQueue int

	mu      sync.Mutex
	running int
	waiting *list.List // of chan struct{}
}

func newLimiter(max, maxQueue int) *limiter {
	return &limiter{max: max, maxQueue: maxQueue, waiting: list.New()}
}

// acquire takes a slot, waiting in line within ctx. It returns
// errQueueFull when the queue is full, or ctx's error.
func (l *limiter) acquire(ctx context.Context) error {
	l.mu.Lock()
	if l.running < l.max && l.waiting.Len() == 0 {
		l.running++
		l.mu.Unlock()
		return nil
	}
	if l.waiting.Len() >= l.maxQueue {
		l.mu.Unlock()
		return errQueueFull
	}
	ch := make(chan struct{})
	e := l.waiting.PushBack(ch)
	l.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		l.mu.Lock()
		select {
		case <-ch: // granted meanwhile: hand the slot on
			l.mu.Unlock()
			l.release()
		default:
			l.waiting.Remove(e)
			l.mu.Unlock()
		}
		return ctx.Err()
	}
}

// release gives a slot back, to the first in line if any.
func (l *limiter) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if f := l.waiting.Front(); f != nil {
		l.waiting.Remove(f)
		close(f.Value.(chan struct{})) // the slot passes on; running is unchanged
		return
	}
	l.running--
}

// state returns the slots in use and the queue length.
func (l *limiter) state() (running, queued int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.running, l.waiting.Len()
}

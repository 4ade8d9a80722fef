package core

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/realmrt/realm/abi"
)

// limitWriter forwards writes to w until max bytes have passed; the
// write that would cross the limit is refused and onLimit is called
// (which cancels the run).
type limitWriter struct {
	mu      sync.Mutex
	w       io.Writer
	max     int64
	n       int64
	over    bool
	onLimit func()
}

func (l *limitWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.over || l.n+int64(len(p)) > l.max {
		if !l.over {
			l.over = true
			l.onLimit()
		}
		return 0, ErrOutputLimit
	}
	n, err := l.w.Write(p)
	l.n += int64(n)
	if err != nil {
		return n, &writeError{err}
	}
	return n, nil
}

// writeError is a failure of the caller's writer: EIO for the guest.
type writeError struct{ err error }

func (e *writeError) Error() string    { return "write output: " + e.err.Error() }
func (e *writeError) Unwrap() error    { return e.err }
func (e *writeError) Errno() abi.Errno { return abi.ErrnoIO }

// logWriter sends guest stderr to the log, one line per entry.
type logWriter struct {
	mu    sync.Mutex
	log   hclog.Logger
	buf   []byte
	total int64
	cut   bool
}

// maxStderrBytes caps the guest stderr one run may send to the log.
const maxStderrBytes = 1 << 20

const maxLogLine = 16 << 10

func (l *logWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total += int64(len(p)); l.total > maxStderrBytes {
		if !l.cut {
			l.cut = true
			l.log.Warn("guest stderr truncated", "limit", maxStderrBytes)
		}
		return len(p), nil
	}
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.log.Info(string(l.buf[:i]))
		l.buf = l.buf[i+1:]
	}
	if len(l.buf) > maxLogLine {
		l.log.Info(string(l.buf))
		l.buf = l.buf[:0]
	}
	return len(p), nil
}

func (l *logWriter) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.log.Info(string(l.buf))
		l.buf = nil
	}
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

type cryptoRand struct{}

func (cryptoRand) Read(p []byte) (int, error) { return rand.Read(p) }

// ctxSleep returns the guest's nanosleep (WASI poll_oneoff clock
// subscriptions, a Go guest's time.Sleep): it sleeps until ns have
// passed or ctx is done, whichever comes first, and calls onCut when
// ctx ended the sleep. wazero's own sleep ignores the context, so a
// guest asleep for an hour would outlive its deadline, its caller and
// SIGINT; with this it wakes, and WithCloseOnContextDone ends it at its
// next function call.
func ctxSleep(ctx context.Context, onCut func()) func(ns int64) {
	return func(ns int64) {
		if ns <= 0 {
			return
		}
		t := time.NewTimer(time.Duration(ns))
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			onCut()
		}
	}
}

// ctxReader makes the guest's stdin reads end with ctx: each Read runs
// in its own goroutine (a terminal's stdin blocks until a line is
// typed), and a done ctx fails the read at once. The abandoned read
// finishes in the background and its bytes are dropped with the run.
type ctxReader struct {
	ctx   context.Context
	r     io.Reader
	onCut func()
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		c.onCut()
		return 0, err
	}
	type result struct {
		n   int
		err error
	}
	buf := make([]byte, len(p))
	ch := make(chan result, 1)
	go func() {
		n, err := c.r.Read(buf)
		ch <- result{n, err}
	}()
	select {
	case r := <-ch:
		copy(p, buf[:r.n])
		return r.n, r.err
	case <-c.ctx.Done():
		c.onCut()
		return 0, c.ctx.Err()
	}
}

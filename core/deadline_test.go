package core

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/realmrt/realm/backends"
)

// sleeperWasm is a guest whose _start sleeps for an hour in one WASI
// poll_oneoff (a relative clock subscription) and then returns normally.
func sleeperWasm() []byte {
	sub := make([]byte, 48)
	sub[8] = 0                                                 // eventtype clock
	binary.LittleEndian.PutUint64(sub[24:], uint64(time.Hour)) // timeout (ns)
	w := newWasm()
	w.put(0, sub)
	return w.callIn("wasi_snapshot_preview1", "poll_oneoff", 0, 64, 1, 128).bytes()
}

// stdinReaderWasm reads fd 0 once (one 64-byte iovec) and returns.
func stdinReaderWasm() []byte {
	w := newWasm()
	w.putI32s(0, 256, 64)
	return w.callIn("wasi_snapshot_preview1", "fd_read", 0, 0, 1, 128).bytes()
}

// blockingBackend answers OpenSession only when the caller gives up.
type blockingBackend struct{ backends.Backend }

func (blockingBackend) OpenSession(ctx context.Context, _ backends.ModelID, _ int) (backends.SessionID, error) {
	<-ctx.Done()
	return 0, ctx.Err()
}

// TestBlockedGuestEndsWithRun: a guest blocked in a WASI sleep, a stdin
// read or a host call is woken by the run's deadline and by the
// caller's cancellation, and the run reports that cause even though the
// guest then returns normally (before: the sleeper held the run for its
// full hour and a run cut short in a host call was reported as success).
func TestBlockedGuestEndsWithRun(t *testing.T) {
	e := newTestEnv(t)
	e.tm.wrap = func(b backends.Backend) backends.Backend { return blockingBackend{b} }
	hostCall := newWasm()
	loaded(hostCall).call("realm_host_session_open", 1, 0)
	never, _ := io.Pipe() // a stdin nobody writes to
	for _, c := range []struct {
		name    string
		wasm    func(t *testing.T) []byte
		args    []string
		stdin   io.Reader
		timeout time.Duration
		cancel  time.Duration // cancel the caller's ctx after this long
		want    error
	}{
		{name: "poll_oneoff/deadline", wasm: func(*testing.T) []byte { return sleeperWasm() }, timeout: 300 * time.Millisecond, want: ErrDeadline},
		{name: "poll_oneoff/cancel", wasm: func(*testing.T) []byte { return sleeperWasm() }, timeout: time.Hour, cancel: 300 * time.Millisecond, want: ErrCanceled},
		{name: "go-time.Sleep/deadline", wasm: func(t *testing.T) []byte { return guests.get(t, "hostile") }, args: []string{"sleep"}, timeout: time.Second, want: ErrDeadline},
		{name: "go-time.Sleep/cancel", wasm: func(t *testing.T) []byte { return guests.get(t, "hostile") }, args: []string{"sleep"}, timeout: time.Hour, cancel: time.Second, want: ErrCanceled},
		{name: "stdin/deadline", wasm: func(*testing.T) []byte { return stdinReaderWasm() }, stdin: never, timeout: 300 * time.Millisecond, want: ErrDeadline},
		{name: "host-call/deadline", wasm: func(*testing.T) []byte { return hostCall.bytes() }, timeout: 300 * time.Millisecond, want: ErrDeadline},
	} {
		t.Run(c.name, func(t *testing.T) {
			wasm := c.wasm(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if c.cancel > 0 {
				time.AfterFunc(c.cancel, cancel)
			}
			start := time.Now()
			res, err := e.h.Run(ctx, RunRequest{Wasm: wasm, Args: c.args, Stdin: c.stdin, Policy: Policy{Timeout: c.timeout}})
			took := time.Since(start)
			if !errors.Is(err, c.want) {
				t.Fatalf("error = %v, want %v (after %v)", err, c.want, took)
			}
			if res.ExitCode != -1 {
				t.Errorf("exit code %d, want -1", res.ExitCode)
			}
			// The guest asked for an hour; a minute is a bound no
			// correct host comes near, and no slow machine reaches.
			if took > time.Minute {
				t.Errorf("run took %v", took)
			}
			t.Logf("ended after %v", took)
			if held := e.tm.held(); len(held) != 0 {
				t.Errorf("references still held: %v", held)
			}
		})
	}
}

// namedBackend is a backend whose serving plugin changes (a fallback).
type namedBackend struct {
	backends.Backend
	name string
}

func (n namedBackend) Active() string { return n.name }

// TestModelServingName: model_info names the plugin serving now, not the
// one that served when the model was loaded.
func TestModelServingName(t *testing.T) {
	for _, c := range []struct {
		be   backends.Backend
		want string
	}{
		{namedBackend{name: "reference"}, "reference"},
		{namedBackend{name: ""}, "cpu-avx2"}, // none live: the load-time name
		{blockingBackend{}, "cpu-avx2"},
	} {
		m := &Model{Backend: c.be, BackendName: "cpu-avx2"}
		if got := m.serving(); got != c.want {
			t.Errorf("%T %v: serving() = %q, want %q", c.be, c.be, got, c.want)
		}
	}
}

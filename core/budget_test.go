package core

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/realmrt/realm/backends"
)

// opCounter counts the tensor ops that reach the backend.
type opCounter struct {
	backends.Backend
	n *atomic.Int64
}

func (c opCounter) TensorOp(ctx context.Context, req backends.TensorOpRequest) (*backends.TensorOpResult, error) {
	c.n.Add(1)
	return c.Backend.TensorOp(ctx, req)
}

// TestTensorOpSizeCheckedFirst: an op whose result would not fit the
// run's tensor budget or the plugin message limit is refused from the
// input shapes, before the backend computes (before: a matmul of
// [1,65536]×[1,4096] made the plugin allocate 1 GiB and fail only at
// the 64 MiB gRPC limit).
func TestTensorOpSizeCheckedFirst(t *testing.T) {
	e := newTestEnv(t)
	var ops atomic.Int64
	e.tm.wrap = func(b backends.Backend) backends.Backend { return opCounter{b, &ops} }
	matmul := func(rows, batch int64) []byte {
		w := newWasm()
		w.minPages = 8 // 256 KiB of zeros for the data
		w.putI32s(2000, 1, int32(rows)).putI32s(2100, 1, int32(batch)).putI32s(2200, 1, 2).putString(3000, "matmul")
		loaded(w).
			call("realm_host_tensor_from_data", 1<<16, rows, 2000, 2).
			call("realm_host_tensor_from_data", 1<<16, batch, 2100, 2).
			call("realm_host_tensor_op", 3000, 6, 2200, 2, 0, 0)
		return w.bytes()
	}
	for _, c := range []struct {
		name       string
		rows, bat  int64
		budget     int64
		want       string
		wantCalled int64
	}{
		{"over-budget", 65536, 4096, 0, "ENOMEM", 0},
		{"over-message-limit", 65536, 4096, 2 << 30, "E2BIG", 0},
		{"fits", 64, 4, 0, "3", 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			ops.Store(0)
			out := e.run(t, matmul(c.rows, c.bat), Policy{Timeout: testTimeout, MaxTensorBytes: c.budget})
			if out.err != nil {
				t.Fatal(out.err)
			}
			var got []string
			for _, l := range strings.Split(out.trace, "\n") {
				if r, ok := strings.CutPrefix(l, "<== "); ok {
					got = append(got, r)
				}
			}
			if want := "1 1 2 " + c.want; strings.Join(got, " ") != want {
				t.Errorf("results %v, want %s", got, want)
			}
			if n := ops.Load(); n != c.wantCalled {
				t.Errorf("%d ops reached the backend, want %d", n, c.wantCalled)
			}
		})
	}
}

// ctxRecorder records the context size of every session opened.
type ctxRecorder struct {
	backends.Backend
	mu   *sync.Mutex
	nCtx *[]int
}

func (r ctxRecorder) OpenSession(ctx context.Context, id backends.ModelID, nCtx int) (backends.SessionID, error) {
	r.mu.Lock()
	*r.nCtx = append(*r.nCtx, nCtx)
	r.mu.Unlock()
	return r.Backend.OpenSession(ctx, id, nCtx)
}

// TestKVBound: sessions are sized from the request, not the model's
// training context, and their KV cache counts against the run's
// MaxKVBytes, so a guest cannot open sessions without bound (before:
// every n_ctx 0 session took the full training context, and a guest
// could open thousands).
func TestKVBound(t *testing.T) {
	e := newTestEnv(t)
	var mu sync.Mutex
	var sizes []int
	e.tm.wrap = func(b backends.Backend) backends.Backend { return ctxRecorder{b, &mu, &sizes} }
	// stories260k: 5 layers, KV dim 32: 1280 bytes of f32 KV per position.
	const perPos = 2 * 4 * 5 * 32
	for _, c := range []struct {
		name      string
		build     func(w *wasmBuilder)
		policy    Policy
		want      string
		wantSizes []int
	}{
		{name: "generate-sized-from-request", build: func(w *wasmBuilder) {
			loaded(w).putString(3000, `{"max_tokens":4}`).putString(3100, "Once upon a time").
				call("realm_host_generate", 1, 3100, 16, 3000, 16)
		}, want: "1 4", wantSizes: []int{256}},
		{name: "open-default-context", build: func(w *wasmBuilder) {
			loaded(w).call("realm_host_session_open", 1, 0)
		}, policy: Policy{DefaultContext: 100}, want: "1 1", wantSizes: []int{100}},
		{name: "open-until-the-run-cap", build: func(w *wasmBuilder) {
			loaded(w)
			for range 8 {
				w.call("realm_host_session_open", 1, 0)
			}
		}, policy: Policy{MaxKVBytes: 1 << 20}, want: "1 1 ENOMEM ENOMEM ENOMEM ENOMEM ENOMEM ENOMEM ENOMEM", wantSizes: []int{(1 << 20) / perPos / 256 * 256}},
		{name: "explicit-over-cap", build: func(w *wasmBuilder) {
			loaded(w).call("realm_host_session_open", 1, 256).call("realm_host_session_open", 1, 256).
				call("realm_host_session_close", 1).call("realm_host_session_open", 1, 256)
		}, policy: Policy{MaxKVBytes: 300 * perPos}, want: "1 1 ENOMEM 0 2", wantSizes: []int{256, 256}},
	} {
		t.Run(c.name, func(t *testing.T) {
			mu.Lock()
			sizes = nil
			mu.Unlock()
			w := newWasm()
			c.build(w)
			p := c.policy
			p.Timeout = testTimeout
			out := e.run(t, w.bytes(), p)
			if out.err != nil {
				t.Fatal(out.err)
			}
			var got []string
			for _, l := range strings.Split(out.trace, "\n") {
				if r, ok := strings.CutPrefix(l, "<== "); ok {
					got = append(got, r)
				}
			}
			if strings.Join(got, " ") != c.want {
				t.Errorf("results %v, want %s\n%s", got, c.want, out.trace)
			}
			mu.Lock()
			defer mu.Unlock()
			if fmt.Sprint(sizes) != fmt.Sprint(c.wantSizes) {
				t.Errorf("sessions opened with n_ctx %v, want %v", sizes, c.wantSizes)
			}
		})
	}
}

// TestFailedDecodeNotSpent: a single-token decode that fails generated
// nothing and does not count against max_tokens (before: two failed
// decodes under max_tokens 1 gave EBACKEND, then ELIMIT).
func TestFailedDecodeNotSpent(t *testing.T) {
	e := newTestEnv(t)
	e.tm.decodeErr = errors.New("kernel fault")
	w := newWasm()
	w.putI32s(2000, 1)
	loaded(w).call("realm_host_session_open", 1, 16).
		call("realm_host_session_decode", 1, 2000, 1).
		call("realm_host_session_decode", 1, 2000, 1)
	out := e.run(t, w.bytes(), Policy{Timeout: testTimeout, MaxTokens: 1})
	if out.err != nil {
		t.Fatal(out.err)
	}
	var got []string
	for _, l := range strings.Split(out.trace, "\n") {
		if r, ok := strings.CutPrefix(l, "<== "); ok {
			got = append(got, r)
		}
	}
	if want := "1 1 EBACKEND EBACKEND"; strings.Join(got, " ") != want {
		t.Errorf("results %v, want %s", got, want)
	}
	if out.res.TokensGenerated != 0 {
		t.Errorf("tokens generated = %d", out.res.TokensGenerated)
	}
}

// TestSessionHostBytesCounted: the logits and token history the host
// keeps per session count against the run's host memory budget
// (MaxTensorBytes), so sessions cannot grow host memory past it (before:
// only tensors counted; 4096 sessions of a 32k-vocabulary model held
// 512 MiB of logits outside every cap).
func TestSessionHostBytesCounted(t *testing.T) {
	e := newTestEnv(t)
	const budget = 64 << 10
	const perSession = 4 * (512 + 16) // stories260k: 512 logits, n_ctx 16
	w := newWasm()
	loaded(w)
	for range 40 {
		w.call("realm_host_session_open", 1, 16)
	}
	out := e.run(t, w.bytes(), Policy{Timeout: testTimeout, MaxTensorBytes: budget})
	if out.err != nil {
		t.Fatal(out.err)
	}
	want := []string{"1"}
	for i := range 40 {
		if i < budget/perSession {
			want = append(want, fmt.Sprint(i+1))
		} else {
			want = append(want, "ENOMEM")
		}
	}
	var got []string
	for _, l := range strings.Split(out.trace, "\n") {
		if r, ok := strings.CutPrefix(l, "<== "); ok {
			got = append(got, r)
		}
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("results %v\nwant %v", got, want)
	}
}

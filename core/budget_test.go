package core

import (
	"context"
	"strings"
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

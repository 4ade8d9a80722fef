package core

import (
	"context"
	"testing"
)

// FuzzHostCall calls any host function with arbitrary arguments (after
// loading a model and opening a session, so some handles are valid).
// Whatever the arguments, the call returns (a result or an errno), the
// run finishes, and everything it held is released.
func FuzzHostCall(f *testing.F) {
	f.Add(uint8(0), uint32(1024), uint32(11), uint32(0), uint32(0), uint32(0), uint32(0))
	f.Add(uint8(7), uint32(1), uint32(0xFFFFFFF0), uint32(0x20), uint32(0), uint32(0), uint32(0))
	f.Add(uint8(15), uint32(0), uint32(0xFFFFFFFF), uint32(1), uint32(0x40000000), uint32(0), uint32(0))
	f.Add(uint8(4), uint32(1), uint32(1024), uint32(11), uint32(7), uint32(65535), uint32(0xFFFFFFFF))
	f.Add(uint8(14), uint32(2000), uint32(0x3FFFFFFF), uint32(2000), uint32(4), uint32(0), uint32(0))
	e := newTestEnv(f)
	funcs := hostFuncs()
	f.Fuzz(func(t *testing.T, fi uint8, a, b, c, d, e2, g uint32) {
		hf := funcs[int(fi)%len(funcs)]
		args := []int64{int64(a), int64(b), int64(c), int64(d), int64(e2), int64(g)}[:len(hf.params)]
		w := newWasm()
		loaded(w).call("realm_host_session_open", 1, 16).putI32s(2000, 1, 403, 407)
		w.call(hf.name, args...)
		var tr traceBuf
		res, err := e.h.Run(context.Background(), RunRequest{Wasm: w.bytes(), Trace: &tr, Policy: Policy{Timeout: testTimeout, MaxOutput: 1 << 20}})
		if err != nil {
			t.Fatalf("%s%v: run failed: %v\n%s", hf.name, args, err, tr)
		}
		if res.HostCalls != 3 {
			t.Fatalf("host calls = %d", res.HostCalls)
		}
		if held := e.tm.held(); len(held) != 0 {
			t.Fatalf("held after run: %v", held)
		}
	})
}

type traceBuf struct{ b []byte }

func (t *traceBuf) Write(p []byte) (int, error) { t.b = append(t.b, p...); return len(p), nil }
func (t *traceBuf) String() string              { return string(t.b) }

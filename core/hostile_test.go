package core

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/gguf"
	"github.com/realmrt/realm/internal/refdata"
	"github.com/realmrt/realm/tokenizer"
)

// hostileCase is one guest trying to break the host. want lists the
// results (in order) the trace must show for its host calls; wantErr
// the error the run must end with (nil: a clean run).
type hostileCase struct {
	name    string
	build   func(w *wasmBuilder)
	policy  Policy
	want    []string
	wantErr error
}

func loadName(w *wasmBuilder, name string) *wasmBuilder {
	w.putString(1024, name)
	return w.call("realm_host_load_model_by_name", 1024, int64(len(name)))
}

func loaded(w *wasmBuilder) *wasmBuilder { return loadName(w, "stories260k") }

func hostileCases() []hostileCase {
	return []hostileCase{
		{name: "dotdot", build: func(w *wasmBuilder) { loadName(w, "../x") }, want: []string{"EINVAL"}},
		{name: "abs-path", build: func(w *wasmBuilder) { loadName(w, "/etc/passwd") }, want: []string{"EINVAL"}},
		{name: "slash", build: func(w *wasmBuilder) { loadName(w, "a/b") }, want: []string{"EINVAL"}},
		{name: "nul", build: func(w *wasmBuilder) { loadName(w, "x\x00y") }, want: []string{"EINVAL"}},
		{name: "empty", build: func(w *wasmBuilder) { w.call("realm_host_load_model_by_name", 1024, 0) }, want: []string{"EINVAL"}},
		{name: "upper-case", build: func(w *wasmBuilder) { loadName(w, "Stories260k") }, want: []string{"EINVAL"}},
		{name: "129-bytes", build: func(w *wasmBuilder) { loadName(w, strings.Repeat("a", 129)) }, want: []string{"EINVAL"}},
		{name: "10MB-name", build: func(w *wasmBuilder) {
			w.minPages = 170 // the bytes are really there: still refused without a copy
			w.call("realm_host_load_model_by_name", 0, 10<<20)
		}, want: []string{"E2BIG"}},
		{name: "symlink-escape", build: func(w *wasmBuilder) { loadName(w, "escape") }, want: []string{"EACCES"}},
		{name: "invalid-model-file", build: func(w *wasmBuilder) { loadName(w, "broken") }, want: []string{"EBADMODEL"}},
		{name: "deadline-mid-generate", build: func(w *wasmBuilder) {
			loaded(w).putString(3100, "Once").putString(3000, `{"max_tokens":100000}`).
				call("realm_host_generate", 1, 3100, 4, 3000, 21)
		}, policy: Policy{Timeout: 40 * time.Millisecond}, want: []string{"1", "ECANCELED"}, wantErr: ErrDeadline},
		{name: "not-found", build: func(w *wasmBuilder) { loadName(w, "nosuchmodel") }, want: []string{"ENOENT"}},
		{name: "policy", build: func(w *wasmBuilder) { loaded(w) }, policy: Policy{ModelPatterns: []string{"llama*"}}, want: []string{"EACCES"}},
		{name: "ptr-past-end", build: func(w *wasmBuilder) { w.call("realm_host_load_model_by_name", 65536, 4) }, want: []string{"EFAULT"}},
		{name: "ptr-len-wraps-u32", build: func(w *wasmBuilder) { w.call("realm_host_load_model_by_name", 0xFFFFFFF0, 0x20) }, want: []string{"EFAULT"}},
		{name: "len-max-u32", build: func(w *wasmBuilder) { w.call("realm_host_load_model_by_name", 16, 0xFFFFFFFF) }, want: []string{"E2BIG"}},
		{name: "out-past-end", build: func(w *wasmBuilder) { w.call("realm_host_list_models", 65530, 4096) }, want: []string{"EFAULT"}},
		{name: "last-error-out-wraps", build: func(w *wasmBuilder) {
			loadName(w, "../x")
			w.call("realm_host_last_error", 0xFFFFFFFF, 0xFFFFFFFF)
		}, want: []string{"EINVAL", "EFAULT"}},
		{name: "stale-model-after-unload", build: func(w *wasmBuilder) {
			loaded(w).call("realm_host_unload_model", 1).call("realm_host_model_info", 1, 4096, 4096)
		}, want: []string{"1", "0", "EBADF"}},
		{name: "double-unload", build: func(w *wasmBuilder) {
			loaded(w).call("realm_host_unload_model", 1).call("realm_host_unload_model", 1)
		}, want: []string{"1", "0", "EBADF"}},
		{name: "never-opened-handle", build: func(w *wasmBuilder) { w.call("realm_host_session_open", 42, 16) }, want: []string{"EBADF"}},
		{name: "negative-handle", build: func(w *wasmBuilder) { w.call("realm_host_tensor_free", -1) }, want: []string{"EBADF"}},
		{name: "stale-session-after-unload", build: func(w *wasmBuilder) {
			loaded(w).call("realm_host_session_open", 1, 16).call("realm_host_unload_model", 1).
				putI32s(2000, 1).call("realm_host_session_decode", 1, 2000, 1)
		}, want: []string{"1", "1", "0", "EBADF"}},
		{name: "token-outside-vocab", build: func(w *wasmBuilder) {
			loaded(w).call("realm_host_session_open", 1, 16).putI32s(2000, 99999).call("realm_host_session_decode", 1, 2000, 1)
		}, want: []string{"1", "1", "EINVAL"}},
		{name: "batch-over-n_ctx", build: func(w *wasmBuilder) {
			loaded(w).call("realm_host_session_open", 1, 4).call("realm_host_session_decode", 1, 2000, 5)
		}, want: []string{"1", "1", "E2BIG"}},
		{name: "ids-count-overflows-u32-bytes", build: func(w *wasmBuilder) {
			loaded(w).call("realm_host_detokenize", 1, 0, 0x40000001, 0, 4096, 100)
		}, want: []string{"1", "E2BIG"}},
		{name: "detokenize-text-over-limit", build: func(w *wasmBuilder) {
			// 1M copies of the longest piece: under the id cap, but the
			// text would pass MaxTextLen; refused before it is built.
			id := longestPiece()
			ids := make([]int32, 1<<20)
			for i := range ids {
				ids[i] = id
			}
			w.minPages = 80
			loaded(w).putI32s(8192, ids...).call("realm_host_detokenize", 1, 8192, 1<<20, 0, 0, 0)
		}, want: []string{"1", "E2BIG"}},
		{name: "context-full", build: func(w *wasmBuilder) {
			loaded(w).call("realm_host_session_open", 1, 4).putI32s(2000, 1, 2, 3, 4).
				call("realm_host_session_decode", 1, 2000, 4).call("realm_host_session_decode", 1, 2000, 1)
		}, want: []string{"1", "1", "4", "ECTXFULL"}},
		{name: "logits-before-decode", build: func(w *wasmBuilder) {
			loaded(w).call("realm_host_session_open", 1, 4).call("realm_host_session_logits", 1, 4096, 1000)
		}, want: []string{"1", "1", "EINVAL"}},
		{name: "bad-json", build: func(w *wasmBuilder) {
			loaded(w).call("realm_host_session_open", 1, 4).putI32s(2000, 1).call("realm_host_session_decode", 1, 2000, 1).
				putString(3000, `{"temperature":`).call("realm_host_session_sample", 1, 3000, 15)
		}, want: []string{"1", "1", "1", "EINVAL"}},
		{name: "json-unknown-field", build: func(w *wasmBuilder) {
			loaded(w).putString(3000, `{"max_tokenz":3}`).putString(3100, "hi").call("realm_host_generate", 1, 3100, 2, 3000, 16)
		}, want: []string{"1", "EINVAL"}},
		{name: "json-trailing-data", build: func(w *wasmBuilder) {
			loaded(w).putString(3000, `{"max_tokens":3}{"max_tokens":100000}`).putString(3100, "hi").call("realm_host_generate", 1, 3100, 2, 3000, 37)
		}, want: []string{"1", "EINVAL"}},
		{name: "json-trailing-nul", build: func(w *wasmBuilder) {
			loaded(w).putString(3000, "{\"max_tokens\":3}\x00").putString(3100, "hi").call("realm_host_generate", 1, 3100, 2, 3000, 17)
		}, want: []string{"1", "EINVAL"}},
		{name: "huge-json", build: func(w *wasmBuilder) {
			w.minPages = 4
			loaded(w).call("realm_host_session_open", 1, 4).call("realm_host_session_sample", 1, 0, 200000)
		}, want: []string{"1", "1", "E2BIG"}},
		{name: "shape-mismatch", build: func(w *wasmBuilder) {
			w.putI32s(2000, 3, 3).call("realm_host_tensor_from_data", 3000, 4, 2000, 2)
		}, want: []string{"EINVAL"}},
		{name: "rank-too-high", build: func(w *wasmBuilder) {
			w.call("realm_host_tensor_from_data", 3000, 1, 2000, 9)
		}, want: []string{"EINVAL"}},
		{name: "shape-product-overflow", build: func(w *wasmBuilder) {
			w.putI32s(2000, 65536, 65536, 2).call("realm_host_tensor_from_data", 3000, 0, 2000, 3)
		}, want: []string{"EINVAL"}},
		{name: "tensor-data-over-budget", build: func(w *wasmBuilder) {
			w.putI32s(2000, 1<<20).call("realm_host_tensor_from_data", 0, 1<<20, 2000, 1)
		}, policy: Policy{MaxTensorBytes: 1 << 20}, want: []string{"ENOMEM"}},
		{name: "unknown-op", build: func(w *wasmBuilder) {
			w.putString(3000, "fork_bomb").call("realm_host_tensor_op", 3000, 9, 2000, 1, 0, 0)
		}, want: []string{"EINVAL"}},
		{name: "op-stale-tensor", build: func(w *wasmBuilder) {
			w.putString(3000, "silu").putI32s(2000, 7).call("realm_host_tensor_op", 3000, 4, 2000, 1, 0, 0)
		}, want: []string{"EBADF"}},
		{name: "missing-weight", build: func(w *wasmBuilder) {
			loaded(w).putString(3000, "no.such.weight").call("realm_host_tensor_from_weight", 1, 3000, 14)
		}, want: []string{"1", "ENOENT"}},
		{name: "bad-log-level", build: func(w *wasmBuilder) { w.call("realm_host_log", 9, 0, 1) }, want: []string{"EINVAL"}},
		{name: "bad-tokenize-flags", build: func(w *wasmBuilder) {
			loaded(w).call("realm_host_tokenize", 1, 0, 1, 0x100, 4096, 10)
		}, want: []string{"1", "EINVAL"}},
		{name: "truncate-past-end", build: func(w *wasmBuilder) {
			loaded(w).call("realm_host_session_open", 1, 4).call("realm_host_session_truncate", 1, 3)
		}, want: []string{"1", "1", "EINVAL"}},
		{name: "max-tokens-policy", build: func(w *wasmBuilder) {
			loaded(w).putString(3100, "Once").call("realm_host_generate", 1, 3100, 4, 0, 0)
		}, policy: Policy{MaxTokens: 3}, want: []string{"1", "3"}},
		{name: "loop-forever", build: func(w *wasmBuilder) {
			w.raw(opLoop, blockVoid, opBr, 0, opEnd)
		}, policy: Policy{Timeout: 300 * time.Millisecond}, wantErr: ErrDeadline},
		{name: "grow-memory-forever", build: func(w *wasmBuilder) {
			// loop { if memory.grow(16) != -1 { continue } }; unreachable
			w.raw(opLoop, blockVoid).i32(16).raw(opMemoryGrow, 0).i32(-1).raw(opI32Ne, opBrIf, 0, opEnd, opUnreachable)
		}, policy: Policy{MemoryBytes: 8 << 20}, wantErr: ErrTrap},
		{name: "1GB-stdout", build: func(w *wasmBuilder) {
			// iovec at 0: {buf=64, len=65536-64}; loop { fd_write(1, 0, 1, 8) }
			w.putI32s(0, 64, 65536-64)
			w.raw(opLoop, blockVoid)
			w.callIn("wasi_snapshot_preview1", "fd_write", 1, 0, 1, 8)
			w.raw(opBr, 0, opEnd)
		}, policy: Policy{MaxOutput: 1 << 20}, wantErr: ErrOutputLimit},
		{name: "trap-mid-generation", build: func(w *wasmBuilder) {
			loaded(w).call("realm_host_session_open", 1, 16).putI32s(2000, 1, 403).
				call("realm_host_session_decode", 1, 2000, 2).raw(opUnreachable)
		}, want: []string{"1", "1", "2"}, wantErr: ErrTrap},
		{name: "stale-session-close", build: func(w *wasmBuilder) {
			loaded(w).call("realm_host_session_open", 1, 4).call("realm_host_session_close", 1).call("realm_host_session_close", 1)
		}, want: []string{"1", "1", "0", "EBADF"}},
		{name: "n_ctx-over-model", build: func(w *wasmBuilder) {
			loaded(w).call("realm_host_session_open", 1, 1<<30)
		}, want: []string{"1", "EINVAL"}},
		{name: "n_ctx-over-policy", build: func(w *wasmBuilder) {
			loaded(w).call("realm_host_session_open", 1, 64)
		}, policy: Policy{MaxContext: 32}, want: []string{"1", "EINVAL"}},
		{name: "prompt-over-context", build: func(w *wasmBuilder) {
			loaded(w).putString(3100, strings.Repeat("Once upon a time ", 8)).putString(3000, `{"n_ctx":8}`).
				call("realm_host_generate", 1, 3100, 8*17, 3000, 11)
		}, want: []string{"1", "ECTXFULL"}},
		{name: "text-over-limit", build: func(w *wasmBuilder) {
			loaded(w).call("realm_host_tokenize", 1, 0, 5<<20, 0, 0, 0)
		}, want: []string{"1", "E2BIG"}},
		{name: "tensor-shape-read-free-stale", build: func(w *wasmBuilder) {
			w.putI32s(2000, 1).call("realm_host_tensor_from_data", 3000, 1, 2000, 1).call("realm_host_tensor_free", 1).
				call("realm_host_tensor_shape", 1, 4096, 4).call("realm_host_tensor_read", 1, 4096, 4).call("realm_host_tensor_free", 1)
		}, want: []string{"1", "0", "EBADF", "EBADF", "EBADF"}},
		{name: "weight-stale-after-unload", build: func(w *wasmBuilder) {
			loaded(w).putString(3000, "output_norm.weight").call("realm_host_tensor_from_weight", 1, 3000, 18).
				call("realm_host_unload_model", 1).call("realm_host_tensor_read", 1, 4096, 64)
		}, want: []string{"1", "1", "0", "EBADF"}},
		{name: "op-no-backend", build: func(w *wasmBuilder) {
			w.putI32s(2000, 1).putString(3000, "silu").call("realm_host_tensor_from_data", 3100, 1, 2000, 1).
				call("realm_host_tensor_op", 3000, 4, 2000, 1, 0, 0)
		}, want: []string{"1", "ENOTSUP"}},
		{name: "op-bad-shapes", build: func(w *wasmBuilder) {
			loaded(w).putI32s(2000, 2, 3).putI32s(2100, 2).putString(3000, "add").putI32s(2200, 1, 2).
				call("realm_host_tensor_from_data", 3100, 2, 2100, 1).call("realm_host_tensor_from_data", 3100, 6, 2000, 2).
				call("realm_host_tensor_op", 3000, 3, 2200, 2, 0, 0)
		}, want: []string{"1", "1", "2", "EINVAL"}},
		{name: "list-models-policy-filter", build: func(w *wasmBuilder) {
			w.call("realm_host_list_models", 4096, 100)
		}, policy: Policy{ModelPatterns: []string{"*-q8"}}, want: []string{"18"}}, // ["stories260k-q8"]
		{name: "log-flood", build: func(w *wasmBuilder) {
			for range 66 {
				w.call("realm_host_log", 0, 0, 16<<10)
			}
		}, want: append(repeat("0", 64), "ELIMIT", "ELIMIT")},
		{name: "wrong-signature", build: func(w *wasmBuilder) { w.importAs("env", "realm_host_log", 0, 0) }, wantErr: ErrInvalidModule},
		{name: "memory-min-over-cap", build: func(w *wasmBuilder) { w.minPages = 200 }, policy: Policy{MemoryBytes: 1 << 20}, wantErr: ErrInvalidModule},
		{name: "exit-code", build: func(w *wasmBuilder) { w.callIn("wasi_snapshot_preview1", "proc_exit", 3) }},
		{name: "unknown-import", build: func(w *wasmBuilder) { w.call("realm_host_fork", 0) }, wantErr: ErrInvalidModule},
	}
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func TestHostile(t *testing.T) {
	e := newTestEnv(t)
	ok := newWasm()
	loaded(ok).call("realm_host_unload_model", 1)
	okWasm := ok.bytes()
	cases := hostileCases()
	cases = append(cases, hostileCase{name: "garbage-bytes", wantErr: ErrInvalidModule})
	if len(cases) < 30 {
		t.Fatalf("only %d hostile cases", len(cases))
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wasm := []byte("\x00asm\x01\x00\x00\x00garbage")
			if c.build != nil {
				w := newWasm()
				c.build(w)
				wasm = w.bytes()
			}
			p := c.policy
			if p.Timeout == 0 {
				p.Timeout = testTimeout
			}
			out := e.run(t, wasm, p)
			if c.wantErr == nil && out.err != nil {
				t.Fatalf("run failed: %v", out.err)
			}
			if c.wantErr != nil && !errors.Is(out.err, c.wantErr) {
				t.Fatalf("run error = %v, want %v", out.err, c.wantErr)
			}
			var got []string
			for _, l := range strings.Split(out.trace, "\n") {
				if r, ok := strings.CutPrefix(l, "<== "); ok {
					got = append(got, r)
				}
			}
			if strings.Join(got, " ") != strings.Join(c.want, " ") {
				t.Errorf("results = %v, want %v\ntrace:\n%s", got, c.want, out.trace)
			}
			if c.name == "exit-code" && out.res.ExitCode != 3 {
				t.Errorf("exit code = %d, want 3", out.res.ExitCode)
			}
			// The host serves the next run.
			next := e.run(t, okWasm, Policy{Timeout: testTimeout})
			if next.err != nil || traceLines(next.trace) != "==> env.realm_host_load_model_by_name(name_ptr=1024,name_len=11)\n<== 1\n==> env.realm_host_unload_model(model=1)\n<== 0\n" {
				t.Errorf("next run: %v\n%s", next.err, next.trace)
			}
		})
	}
}

// TestForeignHandle: a handle from one instance means nothing in
// another, even while the first instance holds it.
func TestForeignHandle(t *testing.T) {
	e := newTestEnv(t)
	holder := newWasm()
	loaded(holder).raw(opLoop, blockVoid, opBr, 0, opEnd) // hold model 1 until the deadline
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		e.h.Run(context.Background(), RunRequest{Wasm: holder.bytes(), Policy: Policy{Timeout: 500 * time.Millisecond}})
	}()
	time.Sleep(100 * time.Millisecond)
	thief := newWasm()
	thief.call("realm_host_model_info", 1, 4096, 4096).call("realm_host_session_open", 1, 8)
	var tr strings.Builder
	_, err := e.h.Run(context.Background(), RunRequest{Wasm: thief.bytes(), Trace: &tr, Policy: Policy{Timeout: testTimeout}})
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	want := "==> env.realm_host_model_info(model=1,out_ptr=4096,out_cap=4096)\n<== EBADF\n==> env.realm_host_session_open(model=1,n_ctx=8)\n<== EBADF\n"
	if got := traceLines(tr.String()); got != want {
		t.Errorf("trace:\n%s\nwant:\n%s", got, want)
	}
	if held := e.tm.held(); len(held) != 0 {
		t.Errorf("references held after both runs: %v", held)
	}
}

// TestBackendFaults: backend and output failures reach the guest as
// errnos (EUNAVAIL for a crashed plugin, EBACKEND otherwise, EIO for a
// failing output) and the run still ends cleanly.
func TestBackendFaults(t *testing.T) {
	decode := func(w *wasmBuilder) {
		loaded(w).call("realm_host_session_open", 1, 8).putI32s(2000, 1).call("realm_host_session_decode", 1, 2000, 1)
	}
	gen := func(w *wasmBuilder) {
		loaded(w).putString(3100, "Once").call("realm_host_generate", 1, 3100, 4, 0, 0)
	}
	for _, c := range []struct {
		name      string
		decodeErr error
		stdout    io.Writer
		build     func(*wasmBuilder)
		want      string
		wrap      func(backends.Backend) backends.Backend
	}{
		{"crashed", fmt.Errorf("plugin exited: %w", backends.ErrBackendCrashed), nil, decode, "1 1 EUNAVAIL", nil},
		{"stale", fmt.Errorf("restarted: %w", backends.ErrStaleHandle), nil, decode, "1 1 EUNAVAIL", nil},
		{"kernel-error", errors.New("kernel exploded"), nil, decode, "1 1 EBACKEND", nil},
		{"generate-crashed", fmt.Errorf("plugin exited: %w", backends.ErrBackendCrashed), nil, gen, "1 EUNAVAIL", nil},
		{"stdout-fails", nil, failWriter{}, gen, "1 EIO", nil},
		{"short-logits", nil, nil, decode, "1 1 EBACKEND", func(b backends.Backend) backends.Backend { return lyingBackend{Backend: b} }},
		{"wrong-position", nil, nil, decode, "1 1 EBACKEND", func(b backends.Backend) backends.Backend { return lyingBackend{Backend: b, position: true} }},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newTestEnv(t)
			e.tm.decodeErr = c.decodeErr
			e.tm.wrap = c.wrap
			w := newWasm()
			c.build(w)
			var tr strings.Builder
			_, err := e.h.Run(context.Background(), RunRequest{Wasm: w.bytes(), Stdout: c.stdout, Trace: &tr, Policy: Policy{Timeout: testTimeout}})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, l := range strings.Split(tr.String(), "\n") {
				if r, ok := strings.CutPrefix(l, "<== "); ok {
					got = append(got, r)
				}
			}
			if strings.Join(got, " ") != c.want {
				t.Errorf("results %v, want %s\n%s", got, c.want, tr.String())
			}
			if held := e.tm.held(); len(held) != 0 {
				t.Errorf("held: %v", held)
			}
		})
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("client went away") }

// longestPiece returns the id of the stories260K token with the longest
// piece (at least 5 bytes, so 1M of them exceed abi.MaxTextLen).
func longestPiece() int32 {
	path, err := refdata.Path("models", "stories260K.gguf")
	if err != nil {
		panic(err)
	}
	f, err := os.Open(path)
	if err != nil {
		panic(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		panic(err)
	}
	g, err := gguf.Read(f, st.Size())
	if err != nil {
		panic(err)
	}
	tok, err := tokenizer.FromGGUF(g)
	if err != nil {
		panic(err)
	}
	best := int32(0)
	for id := int32(0); int(id) < tok.NVocab(); id++ {
		if len(tok.Piece(id)) > len(tok.Piece(best)) {
			best = id
		}
	}
	if len(tok.Piece(best)) < 5 {
		panic(fmt.Sprintf("longest piece is %d bytes", len(tok.Piece(best))))
	}
	return best
}

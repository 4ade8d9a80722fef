package core

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/realmrt/realm/internal/refdata"
)

// newEmbedEnv is newTestEnv with testdata/arch/bert.gguf added to the
// models directory as "bert-tiny".
func newEmbedEnv(t *testing.T) *testEnv {
	t.Helper()
	e := newTestEnv(t)
	root, err := refdata.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "testdata", "arch", "bert.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.tm.dir, "bert-tiny.gguf"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return e
}

// TestEmbedHostFunc embeds two of llama.cpp's inputs in one call,
// normalized, writes the floats to stdout and compares them with
// llama.cpp's pooled vectors; a size query (out_cap too small) returns
// the count without writing.
func TestEmbedHostFunc(t *testing.T) {
	e := newEmbedEnv(t)
	root, _ := refdata.RepoRoot()
	raw, err := os.ReadFile(filepath.Join(root, "testdata", "arch", "bert.llamacpp.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Inputs []struct {
			IDs       []int32   `json:"ids"`
			Embedding []float32 `json:"embedding"`
		} `json:"inputs"`
	}
	if err := json.Unmarshal(raw, &ref); err != nil {
		t.Fatal(err)
	}
	a, b := ref.Inputs[0], ref.Inputs[1]
	ids := append(append([]int32{}, a.IDs...), b.IDs...)
	w := newWasm()
	loadName(w, "bert-tiny").putI32s(2000, ids...).putI32s(1800, int32(len(a.IDs)), int32(len(b.IDs))).
		call("realm_host_embed", 1, 2000, int64(len(ids)), 1800, 2, 1, 4096, 0).
		call("realm_host_embed", 1, 2000, int64(len(ids)), 1800, 2, 1, 4096, 128)
	w.putI32s(0, 4096, 128*4)
	w.callIn("wasi_snapshot_preview1", "fd_write", 1, 0, 1, 8)
	out := e.run(t, w.bytes(), Policy{Timeout: testTimeout})
	if out.err != nil {
		t.Fatal(out.err)
	}
	if got := results(out.trace); got != "1 128 128" {
		t.Fatalf("results %q\n%s", got, out.trace)
	}
	if len(out.stdout) != 512 {
		t.Fatalf("stdout has %d bytes, want 512", len(out.stdout))
	}
	for i, want := range [][]float32{a.Embedding, b.Embedding} {
		var dot, nn, ww float64
		for j := range 64 {
			v := float64(math.Float32frombits(binary.LittleEndian.Uint32([]byte(out.stdout[(i*64+j)*4:]))))
			dot += v * float64(want[j])
			nn += v * v
			ww += float64(want[j]) * float64(want[j])
		}
		if math.Abs(nn-1) > 1e-5 || dot/math.Sqrt(nn*ww) < 0.9999 {
			t.Errorf("input %d: |v|² %g, cosine %g with llama.cpp", i, nn, dot/math.Sqrt(nn*ww))
		}
	}
}

// TestEmbedHostFuncBadInput: every malformed call fails with its errno.
func TestEmbedHostFuncBadInput(t *testing.T) {
	e := newEmbedEnv(t)
	bert := func(w *wasmBuilder) *wasmBuilder {
		return loadName(w, "bert-tiny").putI32s(2000, 101, 7592, 102).putI32s(1800, 3)
	}
	for _, c := range []struct {
		name   string
		build  func(w *wasmBuilder)
		policy Policy
		want   string
	}{
		{"bad-handle", func(w *wasmBuilder) { w.call("realm_host_embed", 7, 2000, 3, 1800, 1, 0, 4096, 64) }, Policy{}, "EBADF"},
		{"unknown-flags", func(w *wasmBuilder) { bert(w).call("realm_host_embed", 1, 2000, 3, 1800, 1, 8, 4096, 64) }, Policy{}, "1 EINVAL"},
		{"no-inputs", func(w *wasmBuilder) { bert(w).call("realm_host_embed", 1, 2000, 3, 1800, 0, 0, 4096, 64) }, Policy{}, "1 EINVAL"},
		{"lengths-mismatch", func(w *wasmBuilder) { bert(w).call("realm_host_embed", 1, 2000, 2, 1800, 1, 0, 4096, 64) }, Policy{}, "1 EINVAL"},
		{"empty-input", func(w *wasmBuilder) {
			bert(w).putI32s(1800, 3, 0).call("realm_host_embed", 1, 2000, 3, 1800, 2, 0, 4096, 128)
		}, Policy{}, "1 EINVAL"},
		{"negative-length", func(w *wasmBuilder) {
			bert(w).putI32s(1800, -1).call("realm_host_embed", 1, 2000, 3, 1800, 1, 0, 4096, 64)
		}, Policy{}, "1 EINVAL"},
		{"id-out-of-vocab", func(w *wasmBuilder) {
			bert(w).putI32s(2000, 101, 999999, 102).call("realm_host_embed", 1, 2000, 3, 1800, 1, 0, 4096, 64)
		}, Policy{}, "1 EINVAL"},
		{"over-policy-context", func(w *wasmBuilder) { bert(w).call("realm_host_embed", 1, 2000, 3, 1800, 1, 0, 4096, 64) }, Policy{MaxContext: 2}, "1 E2BIG"},
		{"too-many-inputs", func(w *wasmBuilder) { bert(w).call("realm_host_embed", 1, 2000, 3, 1800, 1<<20, 0, 4096, 64) }, Policy{}, "1 E2BIG"},
		{"lens-past-memory", func(w *wasmBuilder) { bert(w).call("realm_host_embed", 1, 2000, 3, 65530, 2, 0, 4096, 64) }, Policy{}, "1 EFAULT"},
		{"out-past-memory", func(w *wasmBuilder) { bert(w).call("realm_host_embed", 1, 2000, 3, 1800, 1, 0, 65500, 64) }, Policy{}, "1 EFAULT"},
		{"not-an-embedding-model", func(w *wasmBuilder) {
			loaded(w).putI32s(2000, 1, 2).putI32s(1800, 2).call("realm_host_embed", 1, 2000, 2, 1800, 1, 0, 4096, 64)
		}, Policy{}, "1 ENOTSUP"},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := newWasm()
			c.build(w)
			p := c.policy
			p.Timeout = testTimeout
			out := e.run(t, w.bytes(), p)
			if out.err != nil {
				t.Fatal(out.err)
			}
			if got := results(out.trace); got != c.want {
				t.Errorf("results %q, want %q\n%s", got, c.want, out.trace)
			}
		})
	}
}

// results joins the <== lines of a trace.
func results(trace string) string {
	var got []string
	for _, l := range strings.Split(trace, "\n") {
		if r, ok := strings.CutPrefix(l, "<== "); ok {
			got = append(got, r)
		}
	}
	return strings.Join(got, " ")
}

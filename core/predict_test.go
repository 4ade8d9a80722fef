package core

import (
	"context"
	"encoding/binary"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/internal/sample"
)

// wantRecorder records the Want of every Decode and the Truncates.
type wantRecorder struct {
	backends.Backend
	mu  *sync.Mutex
	log *[]string
}

func (r wantRecorder) Decode(ctx context.Context, req backends.DecodeRequest) (*backends.DecodeResult, error) {
	r.mu.Lock()
	*r.log = append(*r.log, map[backends.Want]string{backends.WantLogits: "logits", backends.WantSample: "sample", backends.WantNone: "none"}[req.Want])
	r.mu.Unlock()
	return r.Backend.Decode(ctx, req)
}

func (r wantRecorder) Truncate(ctx context.Context, id backends.SessionID, n int) error {
	r.mu.Lock()
	*r.log = append(*r.log, "truncate "+strconv.Itoa(n))
	r.mu.Unlock()
	return r.Backend.Truncate(ctx, id, n)
}

// TestGuestLoopSamplesInPlugin: a guest's own greedy loop (decode one
// token, sample with temperature 0) makes the backend sample from the
// second step on, so only a token crosses the plugin boundary, and the
// guest sees exactly what it saw when every decode fetched the logits:
// the same ids, and, when it reads the logits after such a decode after
// all, the same logits (decoded again) and then a non-greedy sample on
// them.
func TestGuestLoopSamplesInPlugin(t *testing.T) {
	e := newTestEnv(t)
	var mu sync.Mutex
	var log []string
	e.tm.wrap = func(b backends.Backend) backends.Backend { return wantRecorder{b, &mu, &log} }
	toks := []int32{1, 300, 17, 42, 99}
	const offLogits, nVocab = 16384, 512
	w := newWasm()
	loaded(w).call("realm_host_session_open", 1, 16)
	for i, tok := range toks {
		w.putI32s(uint32(2000+4*i), tok)
		w.call("realm_host_session_decode", 1, int64(2000+4*i), 1)
		if i < len(toks)-1 {
			w.call("realm_host_session_sample", 1, 0, 0)
		}
	}
	// The last decode was predicted greedy: the guest reads its logits
	// instead, then samples with a temperature.
	params := `{"temperature":0.8,"seed":7}`
	w.call("realm_host_session_logits", 1, offLogits, nVocab).
		putString(3000, params).call("realm_host_session_sample", 1, 3000, int64(len(params))).
		put(0, binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, offLogits), 4*nVocab)).
		callIn("wasi_snapshot_preview1", "fd_write", 1, 0, 1, 8)
	out := e.run(t, w.bytes(), Policy{Timeout: testTimeout})
	if out.err != nil {
		t.Fatal(out.err)
	}

	// The same steps on the backend directly, every decode with logits.
	ctx := context.Background()
	m, err := e.tm.Acquire(ctx, "stories260k")
	if err != nil {
		t.Fatal(err)
	}
	defer e.tm.Release(m)
	sid, err := e.tm.be.OpenSession(ctx, m.Info.ID, 16)
	if err != nil {
		t.Fatal(err)
	}
	defer e.tm.be.CloseSession(ctx, sid)
	var want []string
	var last []float32
	for i, tok := range toks {
		res, err := e.tm.be.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: []int32{tok}, Want: backends.WantLogits})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, strconv.Itoa(i+1))
		if i < len(toks)-1 {
			want = append(want, strconv.Itoa(int(sample.Greedy(res.Logits))))
		}
		last = res.Logits
	}
	want = append(want, "512")
	id, err := sample.New(backends.SampleParams{Temperature: 0.8, Seed: 7}).Sample(last, toks)
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, strconv.Itoa(int(id)))

	var got []string
	for _, l := range strings.Split(out.trace, "\n") {
		if r, ok := strings.CutPrefix(l, "<== "); ok {
			got = append(got, r)
		}
	}
	// load, open, then the steps.
	if len(got) < 2 || strings.Join(got[2:], " ") != strings.Join(want, " ") {
		t.Errorf("results %v, want load, open, %v", got, want)
	}
	if len(out.stdout) != 4*nVocab {
		t.Fatalf("stdout holds %d bytes, want the %d logits", len(out.stdout), nVocab)
	}
	for i, l := range last {
		if g := math.Float32frombits(binary.LittleEndian.Uint32([]byte(out.stdout[4*i:]))); g != l {
			t.Fatalf("logit %d = %v, want %v (exactly)", i, g, l)
		}
	}
	// First step fetches logits (nothing predicted yet), the next four
	// are sampled by the backend; reading the logits of the last one
	// decodes its token again.
	mu.Lock()
	defer mu.Unlock()
	if g, w := strings.Join(log, ", "), "logits, sample, sample, sample, sample, truncate 4, logits"; g != w {
		t.Errorf("backend calls: %s\nwant: %s", g, w)
	}
}

// TestGuestLoopPredictionStops: a guest that reads the logits after each
// greedy sample never makes the backend sample, and one whose sample is
// not a plain argmax (repetition penalty) gets the host's sampler.
func TestGuestLoopPredictionStops(t *testing.T) {
	for _, c := range []struct {
		name string
		step func(w *wasmBuilder)
	}{
		{"logits-after-sample", func(w *wasmBuilder) {
			w.call("realm_host_session_sample", 1, 0, 0).call("realm_host_session_logits", 1, 16384, 512)
		}},
		{"penalty", func(w *wasmBuilder) {
			w.call("realm_host_session_sample", 1, 3000, int64(len(`{"repeat_penalty":1.3}`)))
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newTestEnv(t)
			var mu sync.Mutex
			var log []string
			e.tm.wrap = func(b backends.Backend) backends.Backend { return wantRecorder{b, &mu, &log} }
			w := newWasm()
			loaded(w).call("realm_host_session_open", 1, 16).putString(3000, `{"repeat_penalty":1.3}`).putI32s(2000, 5)
			for range 4 {
				w.call("realm_host_session_decode", 1, 2000, 1)
				c.step(w)
			}
			out := e.run(t, w.bytes(), Policy{Timeout: testTimeout})
			if out.err != nil {
				t.Fatal(out.err)
			}
			if strings.Contains(out.trace, "<== E") {
				t.Errorf("an error:\n%s", out.trace)
			}
			mu.Lock()
			defer mu.Unlock()
			if g := strings.Join(log, ", "); g != "logits, logits, logits, logits" {
				t.Errorf("backend calls: %s", g)
			}
		})
	}
}

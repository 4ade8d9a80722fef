package cluster

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// inProcess is one NATS server, one front end and in-process workers.
type inProcess struct {
	fe   *Frontend
	http *httptest.Server
	url  string
}

func newInProcess(t *testing.T, ctx context.Context, workers int, rate, conc int) *inProcess {
	return newInProcessHB(t, ctx, workers, rate, conc, 0, Heartbeat)
}

func newInProcessHB(t *testing.T, ctx context.Context, workers int, rate, conc int, prefill, hb time.Duration) *inProcess {
	t.Helper()
	s := startServers(t, 1)[0]
	nc, err := Connect(ctx, "fe", s.ClientURL(), Security{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	fe, err := NewFrontend(ctx, FrontendConfig{Conn: nc, Heartbeat: hb})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fe.Close)
	for i := range workers {
		id := fmt.Sprintf("w%d", i+1)
		wnc, err := Connect(ctx, id, s.ClientURL(), Security{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(wnc.Close)
		nctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		w, err := NewWorker(ctx, WorkerConfig{ID: id, Conn: wnc, Node: newFakeNode(nctx, id, nil, []string{"m"}, rate, conc, prefill), Heartbeat: hb})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(w.Close)
	}
	for len(fe.Members()) < workers {
		time.Sleep(10 * time.Millisecond)
	}
	hs := httptest.NewServer(fe.Handler())
	t.Cleanup(hs.Close)
	return &inProcess{fe: fe, http: hs, url: hs.URL}
}

// streamTokens posts a streaming request and calls onToken with each
// token's text and arrival time.
func streamTokens(ctx context.Context, url string, maxTokens int, onToken func(tok string, at time.Time)) error {
	b, _ := json.Marshal(map[string]any{"model": "m", "max_tokens": maxTokens, "stream": true, "messages": []any{map[string]any{"role": "user", "content": "x"}}})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/chat/completions", bytes.NewReader(b))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		at := time.Now()
		var v struct {
			Choices []struct {
				Delta struct{ Content string } `json:"delta"`
			} `json:"choices"`
		}
		if json.Unmarshal([]byte(data), &v) == nil && len(v.Choices) > 0 {
			onToken(v.Choices[0].Delta.Content, at)
		}
	}
	return sc.Err()
}

// TestScaling reports the aggregate tokens/s of 1, 2 and 3 workers whose
// test backend emits a fixed number of tokens per second, against the
// linear ideal. It reports and does not assert: speed is measured, not
// asserted (the machine is shared).
func TestScaling(t *testing.T) {
	if testing.Short() {
		t.Skip("measures for a few seconds")
	}
	const (
		rate   = 1000 // tokens/s per worker
		window = 3 * time.Second
		tokens = 25 // per request
	)
	for n := 1; n <= 3; n++ {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		c := newInProcess(t, ctx, n, rate, 64)
		var got atomic.Int64
		wctx, stop := context.WithTimeout(ctx, window)
		var wg sync.WaitGroup
		start := time.Now()
		for range 12 * n {
			wg.Go(func() {
				for wctx.Err() == nil {
					streamTokens(wctx, c.url, tokens, func(string, time.Time) { got.Add(1) })
				}
			})
		}
		wg.Wait()
		el := time.Since(start)
		stop()
		cancel()
		tps := float64(got.Load()) / el.Seconds()
		t.Logf("%d worker(s): %.0f tokens/s aggregate = %.2f × linear (%d × %d tokens/s)", n, tps, tps/float64(n*rate), n, rate)
	}
}

// TestAddedLatency reports what routing through the cluster adds to the
// time to first token and to each token's delivery, against the same
// handler served directly over HTTP.
func TestAddedLatency(t *testing.T) {
	if testing.Short() {
		t.Skip("measures for a few seconds")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := newInProcess(t, ctx, 1, 1000, 4)
	nctx, ncancel := context.WithCancel(ctx)
	defer ncancel()
	direct := httptest.NewServer(newFakeNode(nctx, "d", nil, []string{"m"}, 1000, 4, 0).Handler())
	defer direct.Close()
	measure := func(url string) (ttft, tok []time.Duration) {
		for range 40 {
			sent := time.Now()
			first := true
			err := streamTokens(ctx, url, 20, func(s string, at time.Time) {
				if first {
					first = false
					ttft = append(ttft, at.Sub(sent))
				}
				f := strings.Split(strings.TrimSpace(s), ":")
				if ns, err := strconv.ParseInt(f[len(f)-1], 10, 64); err == nil {
					tok = append(tok, at.Sub(time.Unix(0, ns)))
				}
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		return ttft, tok
	}
	pct := func(d []time.Duration, p float64) time.Duration {
		slices.Sort(d)
		return d[int(float64(len(d)-1)*p)]
	}
	measure(direct.URL) // warm up both paths
	measure(c.url)
	dT, dK := measure(direct.URL)
	cT, cK := measure(c.url)
	t.Logf("time to first token p50: direct %v, cluster %v (added %v)", pct(dT, .5), pct(cT, .5), pct(cT, .5)-pct(dT, .5))
	t.Logf("token delivery (emitted → client) p50: direct %v, cluster %v (added %v); p99: direct %v, cluster %v",
		pct(dK, .5), pct(cK, .5), pct(cK, .5)-pct(dK, .5), pct(dK, .99), pct(cK, .99))
}

// TestHeartbeatsDuringPrefill: a first token 10 heartbeats late is no
// lost worker, because heartbeats flow while nothing else does.
func TestHeartbeatsDuringPrefill(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const hb = 50 * time.Millisecond
	c := newInProcessHB(t, ctx, 1, 1000, 4, 10*hb, hb)
	n := 0
	if err := streamTokens(ctx, c.url, 5, func(tok string, _ time.Time) {
		if strings.HasPrefix(tok, "w1:") {
			n++
		}
	}); err != nil {
		t.Fatal(err)
	}
	if n != 5 {
		t.Errorf("%d tokens after a prefill of 10 heartbeats, want 5", n)
	}
}

// slowWriter is a client that stops reading for a while at the first
// bytes.
type slowWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
	pause  time.Duration
}

func (s *slowWriter) Header() http.Header { return s.header }
func (s *slowWriter) WriteHeader(c int)   { s.status = c }
func (s *slowWriter) Write(p []byte) (int, error) {
	if s.pause > 0 {
		time.Sleep(s.pause)
		s.pause = 0
	}
	return s.body.Write(p)
}
func (s *slowWriter) Flush() {}

// TestSlowClient: frames wait for a client that stops reading; none is
// dropped (a dropped frame would end the stream with an error).
func TestSlowClient(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 6000 tokens")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := newInProcess(t, ctx, 1, 20000, 4)
	const n = 6000
	body := `{"model":"m","max_tokens":6000,"stream":true,"messages":[{"role":"user","content":"x"}]}`
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/v1/chat/completions", strings.NewReader(body))
	w := &slowWriter{header: http.Header{}, pause: time.Second}
	c.fe.Handler().ServeHTTP(w, req)
	out := w.body.String()
	if strings.Contains(out, `"error"`) || strings.Count(out, "w1:") != n || !strings.HasSuffix(out, "data: [DONE]\n\n") {
		t.Errorf("status %d, %d tokens, error event %v; want %d tokens and [DONE]", w.status, strings.Count(out, "w1:"), strings.Contains(out, `"error"`), n)
	}
}

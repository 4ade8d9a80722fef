package cluster

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Environment of a worker subprocess (the test binary run again).
const (
	envWorker   = "REALM_CLUSTER_TEST_WORKER" // worker id
	envURLs     = "REALM_CLUSTER_TEST_URLS"
	envLoaded   = "REALM_CLUSTER_TEST_LOADED"
	envLoadable = "REALM_CLUSTER_TEST_LOADABLE"
	envRate     = "REALM_CLUSTER_TEST_RATE"
	envConc     = "REALM_CLUSTER_TEST_CONC"
	testHB      = 200 * time.Millisecond
)

func TestMain(m *testing.M) {
	if id := os.Getenv(envWorker); id != "" {
		os.Exit(workerProcess(id))
	}
	os.Exit(m.Run())
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// workerProcess is a worker with a fakeNode that drains on SIGTERM.
func workerProcess(id string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	rate, _ := strconv.Atoi(os.Getenv(envRate))
	conc, _ := strconv.Atoi(os.Getenv(envConc))
	node := newFakeNode(context.Background(), id, splitList(os.Getenv(envLoaded)), splitList(os.Getenv(envLoadable)), rate, conc, 0)
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	nc, err := Connect(cctx, id, os.Getenv(envURLs), Security{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer nc.Close()
	w, err := NewWorker(cctx, WorkerConfig{ID: id, Conn: nc, Node: node, Heartbeat: testHB})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	<-ctx.Done()
	dctx, dcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer dcancel()
	if err := w.Drain(dctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// testCluster is 3 NATS servers, 2 front ends and worker processes.
type testCluster struct {
	t       *testing.T
	servers []*Server
	fes     []*Frontend
	https   []*httptest.Server
	workers map[string]*exec.Cmd
}

func startServers(t *testing.T, n int) []*Server {
	t.Helper()
	var out []*Server
	// A JetStream cluster wants every server to list the routes, so the
	// route ports are chosen first.
	var routes, listens []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		listens = append(listens, ln.Addr().String())
		routes = append(routes, "nats://"+ln.Addr().String())
		ln.Close()
	}
	for i := range n {
		cfg := ServerConfig{Name: fmt.Sprintf("n%d", i+1), Listen: "127.0.0.1:0", StoreDir: t.TempDir(),
			Logger: hclog.New(&hclog.LoggerOptions{Output: os.Stderr, Level: hclog.Warn})}
		if n > 1 {
			cfg.ClusterListen = listens[i]
			cfg.Routes = routes
		}
		s, err := StartServer(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Shutdown)
		out = append(out, s)
	}
	return out
}

func newTestCluster(t *testing.T) *testCluster {
	t.Helper()
	c := &testCluster{t: t, servers: startServers(t, 3), workers: map[string]*exec.Cmd{}}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := range 2 {
		nc, err := Connect(ctx, fmt.Sprintf("fe%d", i+1), c.servers[i].ClientURL(), Security{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		fe, err := NewFrontend(ctx, FrontendConfig{Conn: nc, Replicas: 3, Heartbeat: testHB})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(fe.Close)
		hs := httptest.NewServer(fe.Handler())
		t.Cleanup(hs.Close)
		c.fes, c.https = append(c.fes, fe), append(c.https, hs)
	}
	return c
}

// startWorker runs a worker process connected to server 3 first.
func (c *testCluster) startWorker(id string, loaded, loadable []string, rate, conc int) {
	c.t.Helper()
	urls := []string{c.servers[2].ClientURL(), c.servers[0].ClientURL(), c.servers[1].ClientURL()}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envWorker+"="+id, envURLs+"="+strings.Join(urls, ","),
		envLoaded+"="+strings.Join(loaded, ","), envLoadable+"="+strings.Join(loadable, ","),
		envRate+"="+strconv.Itoa(rate), envConc+"="+strconv.Itoa(conc))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.workers[id] = cmd
	c.t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGCONT)
		cmd.Process.Kill()
		cmd.Wait()
	})
	c.waitFor(fmt.Sprintf("%s to join", id), 30*time.Second, func() bool { return c.has(id, false) })
}

// has reports whether every front end sees id (alive, and draining if
// asked).
func (c *testCluster) has(id string, draining bool) bool {
	for _, fe := range c.fes {
		found := false
		for _, m := range fe.Members() {
			if m.ID == id && m.Draining == draining {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func (c *testCluster) gone(id string) bool {
	for _, fe := range c.fes {
		for _, m := range fe.Members() {
			if m.ID == id {
				return false
			}
		}
	}
	return true
}

func (c *testCluster) waitFor(what string, d time.Duration, cond func() bool) time.Duration {
	c.t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			c.t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// result is a finished request as the client saw it.
type result struct {
	status int
	text   string // the concatenated content
	worker string // the worker of the first token
	events []string
	errEv  string // an error event, if the stream ended with one
	body   string
}

func post(ctx context.Context, t *testing.T, base string, body any, onEvent func(string)) result {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/chat/completions", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("POST: %v", err)
		return result{}
	}
	defer resp.Body.Close()
	res := result{status: resp.StatusCode}
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		raw, _ := io.ReadAll(resp.Body)
		res.body = string(raw)
		var v struct {
			Choices []struct {
				Message struct{ Content string } `json:"message"`
			} `json:"choices"`
		}
		if json.Unmarshal(raw, &v) == nil && len(v.Choices) > 0 {
			res.text = v.Choices[0].Message.Content
		}
	} else {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			res.events = append(res.events, data)
			if onEvent != nil {
				onEvent(data)
			}
			if strings.HasPrefix(data, `{"error"`) {
				res.errEv = data
				continue
			}
			var v struct {
				Choices []struct {
					Delta struct{ Content string } `json:"delta"`
				} `json:"choices"`
			}
			if json.Unmarshal([]byte(data), &v) == nil && len(v.Choices) > 0 {
				res.text += v.Choices[0].Delta.Content
			}
		}
	}
	if i := strings.IndexByte(res.text, ':'); i > 0 {
		res.worker = res.text[:i]
	}
	return res
}

func chat(model string, maxTokens int, stream bool, msgs ...string) map[string]any {
	var m []any
	for i, s := range msgs {
		role := "user"
		if i%2 == 1 {
			role = "assistant"
		}
		m = append(m, map[string]any{"role": role, "content": s})
	}
	return map[string]any{"model": model, "max_tokens": maxTokens, "stream": stream, "messages": m}
}

// workers returns the distinct worker ids of a text's tokens.
func workersOf(text string) map[string]bool {
	out := map[string]bool{}
	for _, tok := range strings.Fields(text) {
		if i := strings.IndexByte(tok, ':'); i > 0 {
			out[tok[:i]] = true
		}
	}
	return out
}

func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts NATS servers and worker processes")
	}
	c := newTestCluster(t)
	// w1 holds m1 in memory; w2 can load m1 and m2; w3 serves m2 and m3.
	c.startWorker("w1", []string{"m1"}, []string{"m1", "m2"}, 400, 1)
	c.startWorker("w2", nil, []string{"m1", "m2"}, 400, 4)
	c.startWorker("w3", nil, []string{"m2", "m3"}, 400, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	t.Run("route by model", func(t *testing.T) {
		for i := range 4 {
			base := c.https[i%2].URL
			if r := post(ctx, t, base, chat("m1", 3, false, "hi"), nil); r.status != 200 || r.worker != "w1" {
				t.Errorf("m1 via fe%d: status %d worker %q (%s), want w1 (the one holding m1)", i%2+1, r.status, r.worker, r.body)
			}
			if r := post(ctx, t, base, chat("m3", 3, true, "hi"), nil); r.status != 200 || r.worker != "w3" {
				t.Errorf("m3 via fe%d: status %d worker %q, want w3 (the only one serving m3)", i%2+1, r.status, r.worker)
			}
		}
		resp, err := http.Get(c.https[1].URL + "/v1/models")
		if err != nil {
			t.Fatal(err)
		}
		var list struct {
			Data []struct{ ID string } `json:"data"`
		}
		json.NewDecoder(resp.Body).Decode(&list)
		resp.Body.Close()
		if len(list.Data) != 3 || list.Data[0].ID != "m1" || list.Data[2].ID != "m3" {
			t.Errorf("/v1/models: %+v, want m1, m2, m3 (the union of the workers')", list.Data)
		}
		if r := post(ctx, t, c.https[0].URL, chat("nope", 3, false, "hi"), nil); r.status != 404 || !strings.Contains(r.body, "model_not_found") {
			t.Errorf("unknown model: status %d %s, want 404 model_not_found", r.status, r.body)
		}
	})

	t.Run("prefix affinity", func(t *testing.T) {
		first := map[string]bool{}
		for conv := range 6 {
			q1 := fmt.Sprintf("conversation %d: tell me a story", conv)
			r1 := post(ctx, t, c.https[0].URL, chat("m2", 2, true, q1), nil)
			if r1.status != 200 || r1.worker == "" {
				t.Fatalf("turn 1: status %d %q", r1.status, r1.text)
			}
			first[r1.worker] = true
			// Turn 2 goes through the other front end, which learns of
			// the prefix from the worker's published state.
			h := PrefixHashes("m2", parseHead(mustJSON(chat("m2", 2, true, q1))))
			c.waitFor("the prefix in the worker state", 5*time.Second, func() bool {
				for _, m := range c.fes[1].Members() {
					if m.ID == r1.worker && contains(m.Prefixes, h[len(h)-1]) {
						return true
					}
				}
				return false
			})
			r2 := post(ctx, t, c.https[1].URL, chat("m2", 2, true, q1, r1.text, "and then?"), nil)
			if r2.status != 200 || r2.worker != r1.worker {
				t.Errorf("conversation %d: turn 1 on %s, turn 2 on %s (status %d)", conv, r1.worker, r2.worker, r2.status)
			}
		}
		if len(first) < 2 {
			t.Errorf("first turns all went to %v: least-loaded spreading does not show", first)
		}
	})

	t.Run("sigstop detected by TTL", func(t *testing.T) {
		p := c.workers["w3"].Process
		if err := p.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		took := c.waitFor("w3 to expire", 3*StateTTL, func() bool { return c.gone("w3") })
		t.Logf("stopped worker gone from both front ends after %v (TTL %v)", took.Round(10*time.Millisecond), StateTTL)
		if r := post(ctx, t, c.https[0].URL, chat("m3", 2, false, "hi"), nil); r.status != 404 {
			t.Errorf("m3 with its only worker stopped: status %d, want 404", r.status)
		}
		for range 4 {
			if r := post(ctx, t, c.https[1].URL, chat("m2", 2, false, "x"), nil); r.status != 200 || r.worker == "w3" {
				t.Errorf("m2 with w3 stopped: status %d worker %q", r.status, r.worker)
			}
		}
		p.Signal(syscall.SIGCONT)
		c.waitFor("w3 to come back", 5*time.Second, func() bool { return c.has("w3", false) })
		if r := post(ctx, t, c.https[0].URL, chat("m3", 2, false, "hi"), nil); r.status != 200 || r.worker != "w3" {
			t.Errorf("m3 after SIGCONT: status %d worker %q", r.status, r.worker)
		}
	})

	t.Run("kill -9 mid-stream", func(t *testing.T) {
		// w1 holds m1 and runs one request at a time: A runs, B and C
		// queue behind it.
		started := make(chan struct{})
		resA := make(chan result, 1)
		var killedAt time.Time
		go func() {
			once := false
			resA <- post(ctx, t, c.https[0].URL, chat("m1", 4000, true, "long"), func(string) {
				if !once {
					once = true
					close(started)
				}
			})
		}()
		<-started
		queued := make(chan result, 2)
		for i := range 2 {
			go func() { queued <- post(ctx, t, c.https[i].URL, chat("m1", 5, true, fmt.Sprint("queued ", i)), nil) }()
		}
		time.Sleep(300 * time.Millisecond) // B and C are on w1, queued
		killedAt = time.Now()
		c.workers["w1"].Process.Kill()
		a := <-resA
		ended := time.Since(killedAt)
		if a.errEv == "" || !strings.Contains(a.errEv, "worker_lost") || a.worker != "w1" {
			t.Errorf("stream A: want an error event worker_lost after tokens of w1, got worker %q, last events %q", a.worker, a.events[max(0, len(a.events)-2):])
		}
		t.Logf("stream cut by the kill ended with an error event %v after the kill (heartbeat %v)", ended.Round(time.Millisecond), testHB)
		if ended > 3*testHB+500*time.Millisecond {
			t.Errorf("stream A ended %v after the kill; want within 3 heartbeats (%v) plus slack", ended, 3*testHB)
		}
		for range 2 {
			r := <-queued
			if r.status != 200 || r.errEv != "" || r.worker != "w2" || len(strings.Fields(r.text)) != 5 {
				t.Errorf("queued request: status %d worker %q err %q text %q; want it finished on w2", r.status, r.worker, r.errEv, r.text)
			}
		}
		c.waitFor("w1 to expire", 3*StateTTL, func() bool { return c.gone("w1") })
		if r := post(ctx, t, c.https[1].URL, chat("m1", 2, false, "after"), nil); r.status != 200 || r.worker != "w2" {
			t.Errorf("m1 after the kill: status %d worker %q, want w2", r.status, r.worker)
		}
		c.startWorker("w1", []string{"m1"}, []string{"m1", "m2"}, 400, 1)
		if r := post(ctx, t, c.https[1].URL, chat("m1", 2, false, "rejoined"), nil); r.status != 200 || r.worker != "w1" {
			t.Errorf("m1 after w1 rejoined: status %d worker %q, want w1", r.status, r.worker)
		}
	})

	t.Run("nats server killed", func(t *testing.T) {
		// The workers are connected to server 3 first.
		c.servers[2].Shutdown()
		before := map[string]uint64{}
		for _, m := range c.fes[0].Members() {
			before[m.ID] = m.Served
		}
		for i := range 6 {
			model := []string{"m1", "m2", "m3"}[i%3]
			if r := post(ctx, t, c.https[i%2].URL, chat(model, 2, true, "after the server died"), nil); r.status != 200 || r.errEv != "" {
				t.Errorf("%s after server 3 died: status %d %q", model, r.status, r.errEv)
			}
		}
		// The workers' keys keep being written (R3 bucket, 2 of 3 up).
		took := c.waitFor("state written after the server died", 10*time.Second, func() bool {
			for _, fe := range c.fes {
				n := 0
				for _, m := range fe.Members() {
					if m.Served > before[m.ID] {
						n++
					}
				}
				if n != 3 {
					return false
				}
			}
			return true
		})
		t.Logf("both front ends saw the 3 workers' new state %v after the requests", took.Round(time.Millisecond))
	})

	t.Run("drain on SIGTERM", func(t *testing.T) {
		res := make(chan result, 1)
		started := make(chan struct{})
		go func() {
			once := false
			res <- post(ctx, t, c.https[0].URL, chat("m3", 400, true, "drain me"), func(string) {
				if !once {
					once = true
					close(started)
				}
			})
		}()
		<-started
		cmd := c.workers["w3"]
		cmd.Process.Signal(syscall.SIGTERM)
		c.waitFor("w3 to drain", 5*time.Second, func() bool { return c.has("w3", true) || c.gone("w3") })
		if r := post(ctx, t, c.https[1].URL, chat("m3", 2, false, "new"), nil); r.status == 200 {
			t.Errorf("a new request reached the draining worker (%q)", r.worker)
		}
		r := <-res
		if r.status != 200 || r.errEv != "" || len(strings.Fields(r.text)) != 400 {
			t.Errorf("running request during drain: status %d err %q tokens %d, want 400", r.status, r.errEv, len(strings.Fields(r.text)))
		}
		if err := cmd.Wait(); err != nil {
			t.Errorf("drained worker exit: %v", err)
		}
		c.waitFor("w3's key to go", 5*time.Second, func() bool { return c.gone("w3") })
	})

	t.Run("metrics re-exported", func(t *testing.T) {
		resp, err := http.Get(c.https[0].URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range []string{`realm_fake_tokens_total{worker="w1"}`, `realm_fake_tokens_total{worker="w2"}`, `realm_cluster_routed_total{worker="w1",outcome="lost_after_start"} 1`, "realm_cluster_queue_depth"} {
			if !strings.Contains(string(b), want) {
				t.Errorf("metrics lack %s:\n%s", want, b)
			}
		}
	})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

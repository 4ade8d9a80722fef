package serve_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/realmrt/realm/server"
)

// post sends a JSON body and returns the status and the body read.
func post(t testing.TB, url, body string, hdr ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	c := &http.Client{Timeout: 60 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func get(t testing.TB, url string, hdr ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

type apiError struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

func decodeError(t testing.TB, b []byte) apiError {
	t.Helper()
	var e apiError
	if err := json.Unmarshal(b, &e); err != nil || e.Error.Message == "" {
		t.Fatalf("not an OpenAI error (%v): %.300s", err, b)
	}
	return e
}

// TestIdleConnectionFlood opens 5,000 idle connections to `realm
// serve` from 127.0.0.1: the server keeps at most its per-address cap
// of them (its descriptors stay bounded) and /health still answers a
// client at another address, 127.0.0.2.
func TestIdleConnectionFlood(t *testing.T) {
	p := startServe(t)
	pid := p.cmd.Process.Pid
	before := openFDs(pid)
	const n = 5000
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	addr := strings.TrimPrefix(p.base, "http://")
	d := net.Dialer{Timeout: 500 * time.Millisecond}
	for range n {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			continue // a full backlog refuses some: that is fine
		}
		conns = append(conns, c)
	}
	// Give the accept loop time to take (and refuse) the backlog.
	var during int
	waitFor(3*time.Second, func() bool {
		during = openFDs(pid)
		return false
	})
	other := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 2 * time.Second}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: other.DialContext}}
	resp, err := hc.Get(p.base + "/health")
	if err != nil {
		t.Fatalf("/health from 127.0.0.2 under %d idle connections: %v", len(conns), err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("/health: %d", resp.StatusCode)
	}
	resp, err = hc.Get(p.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	refused := regexp.MustCompile(`(?m)^realm_connections_refused_total\{reason="per_address"\} (\d+)`).FindStringSubmatch(string(mb))
	if refused == nil || refused[1] == "0" {
		t.Errorf("no refused connections counted:\n%.2000s", mb)
	} else {
		t.Logf("refused connections counted: %s", refused[1])
	}
	t.Logf("realm serve fds: %d idle, %d with %d idle connections open (per-address cap %d)",
		before, during, len(conns), server.DefaultHTTPLimits.MaxConnsPerAddr)
	if limit := before + server.DefaultHTTPLimits.MaxConnsPerAddr + 64; during > limit {
		t.Errorf("%d fds under %d idle connections from one address, want ≤ %d", during, len(conns), limit)
	}
}

// TestSlowBody sends a body one byte every 200ms: the server gives up
// on it at ReadTimeout instead of holding the connection forever.
func TestSlowBody(t *testing.T) {
	base, _ := startServer(t, server.Options{HTTP: server.HTTPLimits{ReadTimeout: time.Second}})
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
	closed := make(chan time.Duration, 1)
	start := time.Now()
	go func() {
		io.Copy(io.Discard, c) // until the server closes
		closed <- time.Since(start)
	}()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case d := <-closed:
			t.Logf("slow body cut after %v", d.Round(time.Millisecond))
			return
		case <-tick.C:
			if time.Since(start) > 8*time.Second {
				t.Fatal("the server still reads a body dribbled for 8s (ReadTimeout 1s)")
			}
			c.Write([]byte(" "))
		}
	}
}

// TestAuthFailureCloses: a client without a valid key gets its 401
// with Connection: close and loses the connection at once, also while
// it is still sending a body.
func TestAuthFailureCloses(t *testing.T) {
	base, _ := startServer(t, server.Options{APIKeys: []string{"sk-hostile"}})
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Headers and a part of the body; the rest never comes.
	fmt.Fprintf(c, "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"model\":")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 401 || !resp.Close {
		t.Errorf("status %d, Connection: close %v", resp.StatusCode, resp.Close)
	}
	start := time.Now()
	if _, err := br.ReadByte(); err == nil {
		t.Error("the connection stayed open after the 401")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Errorf("the connection stayed open %v after the 401", time.Since(start).Round(time.Millisecond))
	}
}

// TestProbesNeedKey: with keys configured, /health and /metrics need
// one too, unless PublicProbes.
func TestProbesNeedKey(t *testing.T) {
	base, _ := startServer(t, server.Options{APIKeys: []string{"sk-hostile"}})
	for _, path := range []string{"/health", "/metrics"} {
		if st, b := get(t, base+path); st != 401 {
			t.Errorf("%s without a key: %d %.200s", path, st, b)
		}
		if st, b := get(t, base+path, "Authorization", "Bearer sk-hostile"); st != 200 {
			t.Errorf("%s with the key: %d %.200s", path, st, b)
		}
	}
	open, _ := startServer(t, server.Options{APIKeys: []string{"sk-hostile"}, PublicProbes: true})
	for _, path := range []string{"/health", "/metrics"} {
		if st, _ := get(t, open+path); st != 200 {
			t.Errorf("%s with PublicProbes: %d", path, st)
		}
	}
}

// TestHugePrompts sends three 8 MB prompts at once to `realm serve`:
// each is refused with context_length_exceeded without being tokenized,
// and the server's peak RSS stays bounded.
func TestHugePrompts(t *testing.T) {
	p := startServe(t)
	pid := p.cmd.Process.Pid
	rssBefore := procStatus(pid, "VmHWM")
	prompt := strings.Repeat("Lily saw a big cat. ", (8<<20-4096)/20)
	body := `{"model":"stories260k","prompt":"` + prompt + `","max_tokens":4}`
	var wg sync.WaitGroup
	type answer struct {
		status int
		body   []byte
		took   time.Duration
	}
	answers := make([]answer, 3)
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			st, b := post(t, p.base+"/v1/completions", body)
			answers[i] = answer{st, b, time.Since(start)}
		}()
	}
	wg.Wait()
	peak := procStatus(pid, "VmHWM")
	for i, a := range answers {
		if a.status != 400 {
			t.Errorf("prompt %d: status %d: %.300s", i, a.status, a.body)
			continue
		}
		if e := decodeError(t, a.body); e.Error.Code == nil || *e.Error.Code != "context_length_exceeded" {
			t.Errorf("prompt %d: %.300s", i, a.body)
		}
		t.Logf("prompt %d: 400 after %v", i, a.took.Round(time.Millisecond))
	}
	t.Logf("realm serve peak RSS: %d MiB before, %d MiB after three %.1f MiB prompts", rssBefore>>10, peak>>10, float64(len(prompt))/(1<<20))
	// The bodies are 8 MiB each: reading and decoding one costs about
	// twice that. Tokenizing them before admission grew the peak by
	// 207 MiB with this model's 512-token vocabulary (and by gigabytes
	// with real ones).
	if grew := (peak - rssBefore) >> 10; grew > 120 {
		t.Errorf("peak RSS grew by %d MiB", grew)
	}
	// The plugin survived: the supervisor did not restart it.
	if st, b := get(t, p.base+"/health"); st != 200 {
		t.Errorf("/health after: %d %s", st, b)
	}
}

// TestLongRequestsOutliveTimeouts: ReadTimeout and WriteTimeout bound
// reading a request and each write, not the run: a streamed and a
// whole answer that take 1.5s both arrive under 500ms timeouts.
func TestLongRequestsOutliveTimeouts(t *testing.T) {
	base, _ := startServer(t, server.Options{HTTP: server.HTTPLimits{ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond}})
	for _, stream := range []bool{false, true} {
		st, b := post(t, base+"/v1/apps/sleeper/completions", fmt.Sprintf(`{"model":"stories260k","prompt":"x","stream":%v}`, stream))
		if st != 200 || !strings.Contains(string(b), " end") || (stream && !strings.Contains(string(b), "[DONE]")) {
			t.Errorf("stream %v: %d %.300s", stream, st, b)
		}
	}
}

// TestStalledReader: a client that stops reading a stream is cut off
// once a write has waited WriteTimeout, and its slot is freed.
func TestStalledReader(t *testing.T) {
	zero := 0
	// Small socket buffers on both sides, so that a stalled reader
	// blocks the server's writes within moments, not megabytes.
	base, _ := startServerOn(t, server.Options{MaxConcurrent: 1, MaxQueue: &zero, HTTP: server.HTTPLimits{WriteTimeout: 500 * time.Millisecond}},
		func(ln net.Listener) net.Listener { return smallWrites{ln} })
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetReadBuffer(4096) // fill up soon
	}
	body := `{"model":"stories260k","prompt":"Once upon a time","max_tokens":200,"stream":true}`
	fmt.Fprintf(c, "POST /v1/apps/longgen/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	// Never read. The run must end and give the slot back.
	var st int
	if !waitFor(15*time.Second, func() bool {
		st, _ = post(t, base+"/v1/completions", `{"model":"stories260k","prompt":"Once","max_tokens":2}`)
		return st == 200
	}) {
		t.Fatalf("the slot of a client that stopped reading was not freed in 15s (last status %d)", st)
	}
}

// smallWrites gives every accepted connection a 4 KiB send buffer.
type smallWrites struct{ net.Listener }

func (l smallWrites) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(4096)
	}
	return c, err
}

// TestBodiesInFlight: clients that each send a large body slowly hold
// at most HTTPLimits.MaxBodyBytes of the server's memory together; the
// next one is refused at once with 503, and the budget comes back when
// they go.
func TestBodiesInFlight(t *testing.T) {
	base, _ := startServer(t, server.Options{HTTP: server.HTTPLimits{MaxBodyBytes: 24 << 20}})
	addr := strings.TrimPrefix(base, "http://")
	const size = 5 << 20 // counts twice: 10 MiB of the 24
	var slow []net.Conn
	for range 2 {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{\"model\":", size)
		slow = append(slow, c)
	}
	body := `{"model":"stories260k","max_tokens":2,"prompt":"` + strings.Repeat("a", size-64) + `"}`
	var st int
	var b []byte
	// The two slow requests reach the handler in a moment (on a loaded
	// machine, a few seconds).
	if !waitFor(20*time.Second, func() bool { st, b = post(t, base+"/v1/completions", body); return st == 503 }) {
		t.Fatalf("a third large body while two are in flight: %d %.300s", st, b)
	}
	if e := decodeError(t, b); e.Error.Code == nil || *e.Error.Code != "server_busy" {
		t.Errorf("%s", b)
	}
	for _, c := range slow {
		c.Close()
	}
	if !waitFor(5*time.Second, func() bool { st, b = post(t, base+"/v1/completions", body); return st != 503 }) {
		t.Fatalf("the budget did not come back: %d %.300s", st, b)
	}
	if st != 400 { // the prompt is over this model's context
		t.Errorf("after: %d %.300s", st, b)
	}
}

// TestBadInput: the answers to inputs that once gave a 500, a 1 MB
// 404 or a confusing text.
func TestBadInput(t *testing.T) {
	base, _ := startServer(t, server.Options{})
	comp, chat := base+"/v1/completions", base+"/v1/chat/completions"
	long := strings.Repeat("m", 1<<20)
	for _, c := range []struct {
		name, url, body string
		status          int
		param, want     string
	}{
		{"empty prompt", comp, `{"model":"stories260k","prompt":""}`, 400, "prompt", "empty"},
		{"empty prompt array", comp, `{"model":"stories260k","prompt":[""]}`, 400, "prompt", "empty"},
		{"temperature 1e400", comp, `{"model":"stories260k","prompt":"x","temperature":1e400}`, 400, "temperature", "temperature must be between 0 and 2"},
		{"max_tokens 1e30", comp, `{"model":"stories260k","prompt":"x","max_tokens":1e30}`, 400, "max_tokens", "max_tokens must be"},
		{"1 MB model name", comp, `{"model":"` + long + `","prompt":"x"}`, 404, "model", "bytes)"},
		{"1 MB role", chat, `{"model":"stories260k","messages":[{"role":"` + long + `","content":"x"}]}`, 400, "messages[0].role", "bytes)"},
		{"prompt over the context, within the byte bound", comp, `{"model":"stories260k","prompt":"` + strings.Repeat("a ", 2100) + `","max_tokens":2}`, 400, "prompt", "context"},
	} {
		t.Run(c.name, func(t *testing.T) {
			st, b := post(t, c.url, c.body)
			if st != c.status {
				t.Fatalf("status %d, want %d: %.300s", st, c.status, b)
			}
			if len(b) > 4096 {
				t.Errorf("a %d-byte answer", len(b))
			}
			e := decodeError(t, b)
			if e.Error.Param == nil || *e.Error.Param != c.param {
				t.Errorf("param %v, want %q", e.Error.Param, c.param)
			}
			if !strings.Contains(e.Error.Message, c.want) {
				t.Errorf("message %q does not say %q", e.Error.Message, c.want)
			}
		})
	}
}

// TestErrorsRedacted: errors name no absolute path and no process id.
func TestErrorsRedacted(t *testing.T) {
	base, _ := startServer(t, server.Options{})
	leak := regexp.MustCompile(`/(tmp|home|root|usr|var|work)/|pid \d|` + regexp.QuoteMeta(testEnv.dir))
	st, b := post(t, base+"/v1/completions", `{"model":"broken","prompt":"x","max_tokens":2}`)
	if st < 400 {
		t.Fatalf("a truncated model file served: %d %s", st, b)
	}
	msg := decodeError(t, b).Error.Message
	if m := leak.FindString(msg); m != "" {
		t.Errorf("the error shows %q: %s", m, msg)
	}
	if !strings.Contains(msg, "broken.gguf") {
		t.Errorf("the error no longer says which file: %s", msg)
	}
	t.Logf("%d: %s", st, msg)
}

// TestModelsListServableOnly: /v1/models leaves out a file whose header
// does not parse (realm models lists it with the reason), and
// /v1/models/broken is a 404.
func TestModelsListServableOnly(t *testing.T) {
	base, _ := startServer(t, server.Options{})
	st, b := get(t, base+"/v1/models")
	if st != 200 || !strings.Contains(string(b), `"stories260k"`) {
		t.Fatalf("/v1/models: %d %s", st, b)
	}
	if strings.Contains(string(b), `"broken"`) {
		t.Errorf("/v1/models lists the truncated file: %s", b)
	}
	if st, b := get(t, base+"/v1/models/broken"); st != 404 {
		t.Errorf("/v1/models/broken: %d %s", st, b)
	}
}

// TestHealthStoppedPlugin: /health says 503 while the plugin process is
// up but stopped (SIGSTOP), and ok again once it continues.
func TestHealthStoppedPlugin(t *testing.T) {
	base, _ := startServer(t, server.Options{})
	sup := testEnv.rt.Supervisor
	if st, b := get(t, base+"/health"); st != 200 {
		t.Fatalf("/health: %d %s", st, b)
	}
	pid := sup.PID()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// SIGSTOP takes effect asynchronously, thread by thread: probe once
	// every thread of the plugin has stopped (the leader alone showing T
	// leaves a gRPC thread that can still answer).
	stopped := waitFor(time.Second, func() bool { return allThreadsStopped(pid) })
	st, b := get(t, base+"/health")
	// Continue it before the supervisor's ping (5s) declares it hung.
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if !stopped {
		t.Fatalf("plugin %d did not stop (state %c)", pid, procState(pid))
	}
	if st != 503 {
		t.Errorf("/health of a stopped plugin %d (pid now %d): %d %s", pid, sup.PID(), st, b)
	}
	if !waitFor(5*time.Second, func() bool { st, _ := get(t, base+"/health"); return st == 200 }) {
		t.Error("/health did not come back after SIGCONT")
	}
	if sup.PID() != pid {
		t.Errorf("the plugin was replaced (%d → %d)", pid, sup.PID())
	}
}

// TestDisconnectFreesSlot: with one slot and no queue, a client that
// goes away mid-stream gives its slot back; the next request is served.
func TestDisconnectFreesSlot(t *testing.T) {
	zero := 0
	base, _ := startServer(t, server.Options{MaxConcurrent: 1, MaxQueue: &zero})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/apps/longgen/completions",
		strings.NewReader(`{"model":"stories260k","prompt":"Once upon a time","max_tokens":200,"stream":true}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil || !strings.HasPrefix(line, "data: {") {
		t.Fatalf("first chunk %q: %v", line, err)
	}
	if st, _ := post(t, base+"/v1/completions", `{"model":"stories260k","prompt":"Once","max_tokens":2}`); st != 429 {
		t.Fatalf("a second request while the slot is taken: %d, want 429", st)
	}
	cancel()
	resp.Body.Close()
	gone := time.Now()
	var st int
	if !waitFor(5*time.Second, func() bool {
		st, _ = post(t, base+"/v1/completions", `{"model":"stories260k","prompt":"Once","max_tokens":2}`)
		return st == 200
	}) {
		t.Fatalf("the slot was not freed 5s after the disconnect (last status %d)", st)
	}
	t.Logf("slot free %v after the disconnect", time.Since(gone).Round(time.Millisecond))
}

// TestSIGTERM: `realm serve` drains a request in flight on SIGTERM,
// refuses new connections, exits 0, and leaves no plugin process and no
// socket directory behind; a request longer than the grace period is
// cancelled at its end.
func TestSIGTERM(t *testing.T) {
	for _, c := range []struct {
		name    string
		args    []string
		app     string
		drained bool
	}{
		{"drain", nil, "sleeper", true},
		{"grace bound", []string{"--shutdown-grace", "1s"}, "longgen", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := startServe(t, c.args...)
			children := childPIDs(p.cmd.Process.Pid)
			if len(children) == 0 {
				t.Fatal("no plugin process")
			}
			resp, err := http.Post(p.base+"/v1/apps/"+c.app+"/completions", "application/json",
				strings.NewReader(`{"model":"stories260k","prompt":"Once upon a time","max_tokens":200,"stream":true}`))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			br := bufio.NewReader(resp.Body)
			if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, "data: {") {
				t.Fatalf("first chunk %q: %v", line, err)
			}
			if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			sent := time.Now()
			rest, _ := io.ReadAll(br)
			finished := strings.Contains(string(rest), "data: [DONE]")
			if finished != c.drained {
				t.Errorf("stream finished %v, want %v (%d bytes after SIGTERM)", finished, c.drained, len(rest))
			}
			if !waitFor(1*time.Second, func() bool {
				_, err := net.DialTimeout("tcp", strings.TrimPrefix(p.base, "http://"), 200*time.Millisecond)
				return err != nil
			}) {
				t.Error("still accepting connections after SIGTERM")
			}
			exited := make(chan error, 1)
			go func() { exited <- p.cmd.Wait() }()
			select {
			case err := <-exited:
				if err != nil {
					t.Errorf("exit: %v\n%s", err, p.log.String())
				}
			case <-time.After(20 * time.Second):
				p.cmd.Process.Kill()
				t.Fatalf("realm serve did not exit 20s after SIGTERM:\n%s", p.log.String())
			}
			t.Logf("exited %v after SIGTERM", time.Since(sent).Round(time.Millisecond))
			for _, pid := range children {
				if err := syscall.Kill(pid, 0); err == nil {
					t.Errorf("plugin process %d still runs", pid)
				}
			}
			if left, _ := filepath.Glob(filepath.Join(p.tmp, "realm-plugins-*")); len(left) > 0 {
				t.Errorf("left behind: %v", left)
			}
		})
	}
}

// childPIDs lists the child processes of pid.
func childPIDs(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, s := range strings.Fields(string(b)) {
			var c int
			fmt.Sscan(s, &c)
			out = append(out, c)
		}
	}
	return out
}

// procState returns the state letter of /proc/pid/stat (R, S, T, ...),
// 0 when unreadable.
// allThreadsStopped reports whether every thread of process pid is in
// the stopped state.
func allThreadsStopped(pid int) bool {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil || len(ents) == 0 {
		return false
	}
	for _, e := range ents {
		if taskState(fmt.Sprintf("/proc/%d/task/%s/stat", pid, e.Name())) != 'T' {
			return false
		}
	}
	return true
}

func procState(pid int) byte {
	return taskState(fmt.Sprintf("/proc/%d/stat", pid))
}

// taskState is the state letter of a /proc stat file, 0 if unreadable.
func taskState(path string) byte {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 || i+2 >= len(b) {
		return 0
	}
	return b[i+2]
}

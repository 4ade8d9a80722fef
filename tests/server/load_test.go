package server_test

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/realmrt/realm/internal/servetest"
)

var (
	loadRun      = flag.Bool("load", false, "run TestLoad, the load test of realm serve (make loadtest)")
	loadClients  = flag.Int("load.clients", 64, "concurrent clients of TestLoad")
	loadDuration = flag.Duration("load.duration", 30*time.Second, "how long TestLoad runs")
	loadRSSBound = flag.Int64("load.rss-growth-mib", 64, "the most the server's RSS may grow during TestLoad (MiB)")
)

// TestLoad runs `realm serve` as its own process on 127.0.0.1 and
// drives it with -load.clients concurrent streaming clients for
// -load.duration, then reports requests/s, p50/p99 time to first token,
// errors by kind and the RSS of the server (and its plugin) before and
// after. It runs only with -load:
//
//	go test ./tests/server -run TestLoad -load -v
func TestLoad(t *testing.T) {
	if !*loadRun {
		t.Skip("the load test runs with -load (make loadtest)")
	}
	// The shared config with a queue that holds every client.
	cfg, err := os.ReadFile(testEnv.rt.Config.Path)
	if err != nil {
		t.Fatal(err)
	}
	cfgText := strings.Replace(string(cfg), "max_queue      = 16", fmt.Sprintf("max_queue      = %d", *loadClients), 1)
	base, srv, _ := startServeCommand(t, cfgText)

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *loadClients}}
	// Warm up (compiled guest, loaded model, connections) before the
	// first RSS reading, so that the bound is on growth under load.
	runLoad(client, base, *loadClients, 2*time.Second)
	rssBefore, pluginBefore := rssKiB(srv.Process.Pid), pluginRSS(srv.Process.Pid)

	res := runLoad(client, base, *loadClients, *loadDuration)
	time.Sleep(time.Second) // let the server settle
	rssAfter, pluginAfter := rssKiB(srv.Process.Pid), pluginRSS(srv.Process.Pid)

	sort.Slice(res.ttft, func(i, j int) bool { return res.ttft[i] < res.ttft[j] })
	pct := func(p float64) time.Duration {
		if len(res.ttft) == 0 {
			return 0
		}
		return res.ttft[min(len(res.ttft)-1, int(p*float64(len(res.ttft))))]
	}
	t.Logf("load: %d clients, %v, loopback, stories260k on the reference backend", *loadClients, *loadDuration)
	t.Logf("requests: %d ok, %.1f requests/s, %d tokens (%.0f tokens/s)", res.ok, float64(res.ok)/res.elapsed.Seconds(), res.tokens, float64(res.tokens)/res.elapsed.Seconds())
	t.Logf("time to first token: p50 %v, p99 %v (n=%d)", pct(0.50).Round(time.Millisecond), pct(0.99).Round(time.Millisecond), len(res.ttft))
	t.Logf("errors by kind: %v", res.errors)
	t.Logf("server RSS: %d MiB before, %d MiB after (growth %+d KiB); plugin RSS %d MiB → %d MiB",
		rssBefore/1024, rssAfter/1024, rssAfter-rssBefore, pluginBefore/1024, pluginAfter/1024)

	if res.ok == 0 {
		t.Fatal("no request succeeded")
	}
	var nErr int
	for _, n := range res.errors {
		nErr += n
	}
	if nErr > 0 {
		t.Errorf("%d requests failed: %v", nErr, res.errors)
	}
	if rssBefore <= 0 || rssAfter <= 0 {
		t.Fatal("could not read the server's RSS")
	}
	if growth := rssAfter - rssBefore; growth > *loadRSSBound*1024 {
		t.Errorf("server RSS grew by %d KiB, more than the bound of %d MiB", growth, *loadRSSBound)
	}
}

// loadResult is the outcome of runLoad.
type loadResult struct {
	ok      int
	tokens  int
	ttft    []time.Duration
	errors  map[string]int
	elapsed time.Duration
}

// runLoad runs n clients, each sending streamed chat completions one
// after the other, for d.
func runLoad(client *http.Client, base string, n int, d time.Duration) loadResult {
	res := loadResult{errors: map[string]int{}}
	var mu sync.Mutex
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for c := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				body := fmt.Sprintf(`{"model":"stories260k","messages":[{"role":"user","content":"Tell me a story about %d."}],"max_tokens":32,"temperature":0.8,"seed":%d,"stream":true,"stream_options":{"include_usage":true}}`, i%7, c*1000+i)
				ttft, tokens, kind := oneStream(client, base, body)
				mu.Lock()
				if kind != "" {
					res.errors[kind]++
				} else {
					res.ok++
					res.tokens += tokens
					res.ttft = append(res.ttft, ttft)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	return res
}

// oneStream sends one streamed request and returns the time to the
// first content chunk, the completion tokens of the usage chunk, and
// an error kind ("" on success).
func oneStream(client *http.Client, base, body string) (time.Duration, int, string) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/chat/completions", strings.NewReader(body))
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return 0, 0, "timeout"
		}
		return 0, 0, "transport"
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return 0, 0, "http_" + strconv.Itoa(resp.StatusCode)
	}
	var ttft time.Duration
	tokens := -1
	done := false
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if data == "[DONE]" {
			done = true
			break
		}
		if strings.Contains(data, `"error"`) {
			return 0, 0, "stream_error"
		}
		if ttft == 0 && strings.Contains(data, `"content":"`) && !strings.Contains(data, `"content":""`) {
			ttft = time.Since(start)
		}
		if i := strings.Index(data, `"completion_tokens":`); i >= 0 {
			fmt.Sscanf(data[i+len(`"completion_tokens":`):], "%d", &tokens)
		}
	}
	if !done || tokens < 0 {
		return 0, 0, "truncated_stream"
	}
	if ttft == 0 {
		ttft = time.Since(start) // an empty completion
	}
	return ttft, tokens, ""
}

// rssKiB returns the resident set size of a process (Linux), or -1.
func rssKiB(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			v, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return -1
			}
			return v
		}
	}
	return -1
}

// pluginRSS sums the RSS of the children of pid (the backend plugin).
func pluginRSS(pid int) int64 {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var sum int64
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, c := range strings.Fields(string(b)) {
			if cp, err := strconv.Atoi(c); err == nil {
				if r := rssKiB(cp); r > 0 {
					sum += r
				}
			}
		}
	}
	return sum
}

// lockedWriter serializes writes (exec copies stderr from a goroutine).
type lockedWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.w.Len() > 1<<20 {
		return len(p), nil
	}
	return l.w.Write(p)
}

// startServeCommand builds cmd/realm and runs `realm serve` on a free
// 127.0.0.1 port with the given plugins.hcl text; it returns the base
// URL, the process and its log. The process is interrupted at cleanup.
func startServeCommand(t *testing.T, cfgText string) (string, *exec.Cmd, *lockedWriter) {
	t.Helper()
	realm := filepath.Join(testEnv.dir, "bin", "realm")
	if err := servetest.Build(filepath.Dir(realm), servetest.Realm); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(t.TempDir(), "plugins.hcl")
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	srv := exec.Command(realm, "serve", "--config", cfgPath, "--backend", "reference", "--addr", addr,
		"--chat-wasm", testEnv.chat, "--cache-dir", testEnv.cacheDir)
	logw := &lockedWriter{w: &strings.Builder{}}
	srv.Stderr = logw
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if srv.ProcessState == nil {
			srv.Process.Signal(os.Interrupt)
			srv.Wait()
		}
	})
	base := "http://" + addr
	if !waitFor(30*time.Second, func() bool {
		r, err := http.Get(base + "/health")
		if err == nil {
			r.Body.Close()
		}
		return err == nil && r.StatusCode == 200
	}) {
		t.Fatalf("realm serve did not come up:\n%s", logw.String())
	}
	return base, srv, logw
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}

// TestServeCommand runs the `realm serve` binary: it serves on the
// address given, answers a completion, and exits cleanly on SIGINT.
func TestServeCommand(t *testing.T) {
	cfg, err := os.ReadFile(testEnv.rt.Config.Path)
	if err != nil {
		t.Fatal(err)
	}
	base, srv, logw := startServeCommand(t, string(cfg))
	resp, b := post(t, base+"/v1/completions", `{"model":"stories260k","prompt":"Once upon a time","max_tokens":8,"temperature":0}`)
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"text":", there was a little girl"`) {
		t.Errorf("%d %s", resp.StatusCode, b)
	}
	if err := srv.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	waitErr := make(chan error, 1)
	go func() { waitErr <- srv.Wait() }()
	select {
	case err := <-waitErr:
		if err != nil {
			t.Errorf("realm serve exited with %v:\n%s", err, logw.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("realm serve did not exit on SIGINT")
	}
	if !strings.Contains(logw.String(), "serving the OpenAI API") {
		t.Errorf("log: %s", logw.String())
	}
}

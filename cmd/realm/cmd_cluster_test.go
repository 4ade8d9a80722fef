package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/realmrt/realm/internal/refdata"
)

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a
// command's logger and the test's reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startCLI runs a realm command in the background until ctx ends; the
// returned channel gives its exit code.
func startCLI(ctx context.Context, stderr io.Writer, args ...string) <-chan int {
	done := make(chan int, 1)
	env := &cliEnv{Stdout: io.Discard, Stderr: stderr, Stdin: strings.NewReader(""), Getenv: func(string) string { return "" }}
	go func() { done <- realMain(ctx, env, args) }()
	return done
}

func completion(t *testing.T, base string, stream bool) (string, []string) {
	t.Helper()
	body := fmt.Sprintf(`{"model":"stories260k","prompt":"Once upon a time","max_tokens":24,"temperature":0,"stream":%v}`, stream)
	resp, err := http.Post(base+"/v1/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("%s: status %d: %s", base, resp.StatusCode, b)
	}
	if !stream {
		var v struct {
			Choices []struct{ Text string } `json:"choices"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || len(v.Choices) != 1 {
			t.Fatalf("decoding: %v", err)
		}
		return v.Choices[0].Text, nil
	}
	var text string
	var events []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		events = append(events, data)
		var v struct {
			Choices []struct{ Text string } `json:"choices"`
		}
		if json.Unmarshal([]byte(data), &v) == nil && len(v.Choices) == 1 {
			text += v.Choices[0].Text
		}
	}
	return text, events
}

// TestClusterCLI runs realm serve --cluster with two realm workers on the
// reference plugin and stories260K: the workers get the chat app from
// the cluster's object store (they have none of their own), the answer
// through the cluster equals realm serve's direct answer, streamed or
// not, and realm cluster status shows who holds the model.
func TestClusterCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the reference plugin and the chat guest")
	}
	root, err := refdata.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, b := range []struct {
		pkg, out string
		wasm     bool
	}{{"./cmd/realm-backend-reference", "realm-backend-reference", false}, {"./examples/chat", "fe/chat.wasm", true}} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, b.out), b.pkg)
		cmd.Dir = root
		cmd.Env = os.Environ()
		if b.wasm {
			cmd.Env = append(cmd.Env, "GOOS=wasip1", "GOARCH=wasm")
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", b.pkg, err, out)
		}
	}
	data, err := os.ReadFile(filepath.Join(root, "models", "stories260K.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(dir, "models"), 0o755)
	if err := os.WriteFile(filepath.Join(dir, "models", "stories260k.gguf"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "plugins.hcl")
	os.WriteFile(cfg, []byte("models_dir = \"models\"\nbackend \"reference\" {\n  binary = \"realm-backend-reference\"\n  arch = \"any\"\n}\n"), 0o644)
	chatWASM := filepath.Join(dir, "fe", "chat.wasm")

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	natsAddr, feAddr, directAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	feCtx, feStop := context.WithCancel(ctx)
	var feLog, wLog [2]syncBuffer
	feDone := startCLI(feCtx, &feLog[0], "serve", "--cluster", "--config", cfg, "--addr", feAddr, "--nats-listen", natsAddr,
		"--nats-dir", filepath.Join(dir, "nats"), "--chat-wasm", chatWASM)
	directDone := startCLI(feCtx, &feLog[1], "serve", "--config", cfg, "--addr", directAddr, "--chat-wasm", chatWASM, "--cache-dir", filepath.Join(dir, "cache-direct"))
	wCtx, wStop := context.WithCancel(ctx)
	var wDone [2]<-chan int
	for i := range 2 {
		wDone[i] = startCLI(wCtx, &wLog[i], "worker", "--join", "nats://"+natsAddr, "--config", cfg,
			"--id", fmt.Sprintf("w%d", i+1), "--cache-dir", filepath.Join(dir, fmt.Sprintf("cache%d", i+1)))
	}
	defer func() {
		if t.Failed() {
			t.Logf("front end:\n%s\nworker 1:\n%s\nworker 2:\n%s", feLog[0].String(), wLog[0].String(), wLog[1].String())
		}
	}()
	feURL, directURL := "http://"+feAddr, "http://"+directAddr
	for deadline := time.Now().Add(2 * time.Minute); ; {
		ok := false
		if resp, err := http.Get(feURL + "/health"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			ok = strings.Contains(string(b), `"workers":2`)
		}
		if resp, err := http.Get(directURL + "/health"); ok && err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the front end, the direct server or the workers did not come up")
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i := range 2 {
		if !strings.Contains(wLog[i].String(), "guest app from the cluster") {
			t.Errorf("worker %d did not take the chat app from the cluster:\n%s", i+1, wLog[i].String())
		}
	}

	want, _ := completion(t, directURL, false)
	if len(strings.Fields(want)) < 5 {
		t.Fatalf("direct answer too short: %q", want)
	}
	got, _ := completion(t, feURL, false)
	if got != want {
		t.Errorf("through the cluster: %q\ndirect: %q", got, want)
	}
	gotStream, events := completion(t, feURL, true)
	if gotStream != want || len(events) < 3 || events[len(events)-1] != "[DONE]" {
		t.Errorf("streamed through the cluster: %q (%d events, last %q)\ndirect: %q", gotStream, len(events), events[len(events)-1], want)
	}
	// Both cluster requests went to the worker that loaded the model first; the
	// workers publish their state within a second.
	var st string
	for deadline := time.Now().Add(5 * time.Second); ; {
		var out bytes.Buffer
		env := &cliEnv{Stdout: &out, Stderr: io.Discard, Stdin: strings.NewReader(""), Getenv: func(string) string { return "" }}
		if code := realMain(ctx, env, []string{"cluster", "status", "--join", "nats://" + natsAddr, "--config", cfg}); code != 0 {
			t.Fatalf("cluster status: exit %d", code)
		}
		st = out.String()
		served := map[string]int{}
		for _, line := range strings.Split(st, "\n") {
			if f := strings.Fields(line); len(f) == 8 && (f[0] == "w1" || f[0] == "w2") {
				served[f[6]+"/"+f[4]]++
			}
		}
		if served["stories260k/2"] == 1 && served["-/0"] == 1 && strings.Contains(st, "2 worker(s)") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("want one worker holding stories260k that served both requests, the other idle:\n%s", st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("realm cluster status:\n%s", st)

	wStop()
	for i := range 2 {
		if code := <-wDone[i]; code != 0 {
			t.Errorf("worker %d drained with exit %d", i+1, code)
		}
	}
	feStop()
	<-feDone
	<-directDone
}

// Package serve_test attacks realm serve as a hostile client and an
// unlucky operator would (issue 14): connection floods, slow bodies,
// unauthenticated clients, huge prompts and names, nonsense numbers,
// disconnects, a stopped plugin and SIGTERM. Everything runs on
// 127.0.0.x, every test bounds its own time, and the package takes well
// under a minute.
//
// The fd and RSS figures are of a `realm serve` process; set
// REALM_HOSTILE_BIN to another realm binary (an older build) to measure
// it instead.
package serve_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/realmrt/realm/internal/servetest"
	"github.com/realmrt/realm/loader"
	"github.com/realmrt/realm/server"
)

// env is what TestMain builds once.
type env struct {
	dir      string
	realm    string // the realm binary
	chat     string // examples/chat build
	cfgPath  string // plugins.hcl
	cacheDir string
	rt       *loader.Runtime
}

var testEnv env

func TestMain(m *testing.M) {
	code, err := setup()
	if err != nil {
		fmt.Fprintln(os.Stderr, "tests/hostile/serve setup:", err)
		os.Exit(1)
	}
	os.Exit(code(m))
}

func setup() (func(*testing.M) int, error) {
	dir, err := os.MkdirTemp("", "realm-hostile")
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(dir, "bin")
	if err := servetest.Build(bin, servetest.Reference, servetest.Realm, servetest.Chat, servetest.LongGen,
		servetest.Target{Out: "sleeper.wasm", Pkg: "./tests/hostile/serve/testdata/sleeper", WASM: true}); err != nil {
		return nil, err
	}
	models := filepath.Join(dir, "models")
	data, err := servetest.Models(models, "stories260k")
	if err != nil {
		return nil, err
	}
	// A truncated copy: loading it fails with an error naming the file.
	if err := os.WriteFile(filepath.Join(models, "broken.gguf"), data[:4096], 0o644); err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf(`
models_dir = %q
backend "reference" {
  binary   = %q
  arch     = "any"
  priority = 10
}
app "longgen" {
  wasm    = %q
  models  = ["*"]
  timeout = "60s"
  memory  = "64MiB"
}
app "sleeper" {
  models  = ["*"]
  wasm    = %q
  timeout = "30s"
  memory  = "64MiB"
}
server {
  max_concurrent = 2
  max_queue      = 4
}
`, models, filepath.Join(bin, "realm-backend-reference"), filepath.Join(bin, "longgen.wasm"), filepath.Join(bin, "sleeper.wasm"))
	cfgPath := filepath.Join(dir, "plugins.hcl")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "hostile", Output: os.Stderr, Level: hclog.Error})
	rt, err := loader.Open(context.Background(), loader.Options{ConfigPath: cfgPath, Pin: "reference", Logger: log})
	if err != nil {
		return nil, err
	}
	realm := filepath.Join(bin, "realm")
	if b := os.Getenv("REALM_HOSTILE_BIN"); b != "" {
		realm = b
	}
	testEnv = env{dir: dir, realm: realm, chat: filepath.Join(bin, "chat.wasm"), cfgPath: cfgPath,
		cacheDir: filepath.Join(dir, "wazero"), rt: rt}
	return func(m *testing.M) int {
		code := m.Run()
		rt.Close()
		os.RemoveAll(dir)
		return code
	}, nil
}

// startServer serves the API on 127.0.0.1 in this process, as realm
// serve does (HTTPServer on a Listen listener), over the shared runtime.
func startServer(t testing.TB, opts server.Options) (base string, srv *server.Server) {
	t.Helper()
	return startServerOn(t, opts, func(ln net.Listener) net.Listener { return ln })
}

// startServerOn is startServer with the listener wrapped by wrap.
func startServerOn(t testing.TB, opts server.Options, wrap func(net.Listener) net.Listener) (base string, srv *server.Server) {
	t.Helper()
	opts.DefaultWASM = testEnv.chat
	opts.CacheDir = testEnv.cacheDir
	srv, err := server.New(context.Background(), testEnv.rt, opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := srv.HTTPServer()
	done := make(chan struct{})
	go func() {
		defer close(done)
		hs.Serve(srv.Listen(wrap(ln)))
	}()
	t.Cleanup(func() {
		hs.Close()
		<-done
		srv.Close(context.Background())
	})
	return "http://" + ln.Addr().String(), srv
}

// serveProcess is a running `realm serve`.
type serveProcess struct {
	base string
	cmd  *exec.Cmd
	log  *lockedBuffer
	tmp  string // its TMPDIR
}

// startServe runs `realm serve` on a free 127.0.0.1 port with the
// shared configuration and waits until /health answers.
func startServe(t *testing.T, args ...string) *serveProcess {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	all := append([]string{"serve", "--config", testEnv.cfgPath, "--backend", "reference", "--addr", addr,
		"--chat-wasm", testEnv.chat, "--cache-dir", testEnv.cacheDir}, args...)
	// A short TMPDIR of its own: the plugin's socket directory goes
	// there, and a test can see that it is removed.
	tmp, err := os.MkdirTemp("", "rh")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	cmd := exec.Command(testEnv.realm, all...)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	p := &serveProcess{base: "http://" + addr, cmd: cmd, log: &lockedBuffer{}, tmp: tmp}
	cmd.Stderr = p.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	if !waitFor(30*time.Second, func() bool {
		r, err := http.Get(p.base + "/health")
		if err == nil {
			r.Body.Close()
		}
		return err == nil && r.StatusCode == 200
	}) {
		t.Fatalf("realm serve did not come up:\n%s", p.log.String())
	}
	return p
}

// lockedBuffer collects a process's stderr (the first MiB).
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() < 1<<20 {
		l.b.Write(p)
	}
	return len(p), nil
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// procStatus returns a field of /proc/pid/status in KiB ("VmRSS",
// "VmHWM"), -1 when unreadable.
func procStatus(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				v, _ := strconv.ParseInt(f[0], 10, 64)
				return v
			}
		}
	}
	return -1
}

// openFDs counts the open file descriptors of a process.
func openFDs(pid int) int {
	es, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1
	}
	return len(es)
}

// waitFor polls cond until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cond()
}

package tests

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/gguf"
	"github.com/realmrt/realm/internal/gen"
	"github.com/realmrt/realm/internal/refdata"
	"github.com/realmrt/realm/loader"
	"github.com/realmrt/realm/tokenizer"
)

// pluginBuildReference builds the reference backend plugin into a
// temporary directory and returns its path.
func pluginBuildReference(tb testing.TB) string {
	tb.Helper()
	root, err := refdata.RepoRoot()
	if err != nil {
		tb.Fatal(err)
	}
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		if goBin, err = exec.LookPath("go"); err != nil {
			tb.Fatal("no go command to build the plugin:", err)
		}
	}
	out := filepath.Join(tb.TempDir(), "realm-backend-reference")
	cmd := exec.Command(goBin, "build", "-o", out, "./cmd/realm-backend-reference")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("building the reference plugin: %v\n%s", err, b)
	}
	return out
}

// pluginStories opens stories260K (model path, tokenizer, reference output).
func pluginStories(tb testing.TB) (string, *tokenizer.Tokenizer, *refdata.Output) {
	tb.Helper()
	path, err := refdata.Path("models", "stories260K.gguf")
	if err != nil {
		tb.Fatal(err)
	}
	m, err := gguf.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer m.Close()
	tok, err := tokenizer.FromGGUF(m.File)
	if err != nil {
		tb.Fatal(err)
	}
	ref, err := refdata.LoadOutput("stories260K.once-upon")
	if err != nil {
		tb.Fatal(err)
	}
	if len(ref.GenIDs) != 64 {
		tb.Fatalf("reference has %d generated ids, want 64", len(ref.GenIDs))
	}
	return path, tok, ref
}

func pluginSupervisor(tb testing.TB, bin string) *loader.Supervisor {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := loader.NewSupervisor(ctx, loader.SupervisorConfig{
		Plugins:      []loader.PluginSpec{{Name: "reference", Binary: bin, Threads: 1}},
		Logger:       hclog.New(&hclog.LoggerOptions{Name: "host", Output: os.Stderr, Level: hclog.Off}),
		MaxRestarts:  1000, // every iteration kills it; never fall back here
		Backoff:      time.Millisecond,
		MaxBackoff:   10 * time.Millisecond,
		PingInterval: 200 * time.Millisecond,
		StartTimeout: 20 * time.Second,
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// killingWriter receives the streamed text and SIGKILLs the plugin on
// the given write, i.e. in the middle of the generation.
type killingWriter struct {
	at    int
	pid   func() int
	n     int
	mu    sync.Mutex
	kills []int
}

func (w *killingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n++
	if w.n == w.at {
		pid := w.pid()
		if pid > 0 && pid != os.Getpid() {
			if err := syscall.Kill(pid, syscall.SIGKILL); err == nil {
				w.kills = append(w.kills, pid)
			}
		}
	}
	return len(p), nil
}

// TestPluginCrashDuringGeneration is the fault-tolerance acceptance
// test: a greedy 64-token generation on stories260K through the real
// reference plugin, the plugin SIGKILLed mid-generation, the call
// failing with ErrBackendCrashed, and the next generation on the same
// model handle giving llama.cpp's tokens exactly; 20 times, without
// leaking processes or file descriptors.
func TestPluginCrashDuringGeneration(t *testing.T) {
	bin := pluginBuildReference(t)
	path, tok, ref := pluginStories(t)
	s := pluginSupervisor(t, bin)
	ctx := context.Background()
	mi, err := s.LoadModel(ctx, backends.LoadRequest{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	req := gen.Request{PromptIDs: ref.PromptIDs, MaxTokens: len(ref.GenIDs)}

	// One clean run first: the plugin path gives the reference tokens.
	res, err := gen.Run(ctx, s, mi.ID, tok, req, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.IDs, ref.GenIDs) {
		t.Fatalf("clean run: got %v\nwant %v", res.IDs, ref.GenIDs)
	}
	pluginLogRSS(t, s)

	fd0 := pluginCountFDs(t)
	var killed []int
	const rounds = 20
	start := time.Now()
	for i := range rounds {
		w := &killingWriter{at: 5 + i%40, pid: s.PID}
		res, err := gen.Run(ctx, s, mi.ID, tok, req, w)
		if len(w.kills) != 1 {
			t.Fatalf("round %d: the plugin was not killed (writes %d, err %v)", i, w.n, err)
		}
		killed = append(killed, w.kills...)
		if !errors.Is(err, backends.ErrBackendCrashed) {
			t.Fatalf("round %d: got %v, want ErrBackendCrashed", i, err)
		}
		if n := len(res.IDs); n == 0 || n >= len(ref.GenIDs) || !slices.Equal(res.IDs, ref.GenIDs[:n]) {
			t.Fatalf("round %d: partial result %v is not a proper prefix of the reference", i, res.IDs)
		}
		res, err = gen.Run(ctx, s, mi.ID, tok, req, nil)
		if err != nil {
			t.Fatalf("round %d: generation after the restart: %v", i, err)
		}
		if !slices.Equal(res.IDs, ref.GenIDs) {
			t.Fatalf("round %d: after the restart got %v\nwant %v", i, res.IDs, ref.GenIDs)
		}
	}
	t.Logf("%d kill/restart/regenerate rounds in %v", rounds, time.Since(start))
	if got := s.Restarts(); got != rounds {
		t.Errorf("Restarts() = %d, want %d", got, rounds)
	}
	for _, pid := range killed {
		pluginWaitFor(t, fmt.Sprintf("killed plugin %d to be reaped", pid), 5*time.Second, func() bool { return pluginReaped(pid) })
	}
	if kids := pluginChildren(t); len(kids) != 1 || kids[0] != s.PID() {
		t.Errorf("children of the test process: %v, want only the live plugin %d", kids, s.PID())
	}
	if fd := pluginCountFDs(t); fd > fd0+3 {
		t.Errorf("file descriptors: %d before the rounds, %d after", fd0, fd)
	}
	live := s.PID()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	pluginWaitFor(t, "the last plugin to be reaped", 5*time.Second, func() bool { return pluginReaped(live) })
	if kids := pluginChildren(t); len(kids) != 0 {
		t.Errorf("children left after Close: %v", kids)
	}
}

// TestPluginStaleSessionAfterRestart: a session opened before a crash
// is rejected afterwards, never silently reused.
func TestPluginStaleSessionAfterRestart(t *testing.T) {
	bin := pluginBuildReference(t)
	path, _, ref := pluginStories(t)
	s := pluginSupervisor(t, bin)
	ctx := context.Background()
	mi, err := s.LoadModel(ctx, backends.LoadRequest{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	sid, err := s.OpenSession(ctx, mi.ID, 128)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: ref.PromptIDs, Want: backends.WantSample}); err != nil {
		t.Fatal(err)
	}
	pid := s.PID()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	pluginWaitFor(t, "the restart", 10*time.Second, func() bool { return s.Restarts() == 1 && s.PID() != 0 })
	_, err = s.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: []int32{1}, Want: backends.WantSample})
	if !errors.Is(err, backends.ErrStaleHandle) {
		t.Fatalf("decode on a session of the dead process: %v, want ErrStaleHandle", err)
	}
	sid2, err := s.OpenSession(ctx, mi.ID, 128)
	if err != nil {
		t.Fatal(err)
	}
	if sid2 == sid {
		t.Fatal("a new session reused the stale id")
	}
	d, err := s.Decode(ctx, backends.DecodeRequest{Session: sid2, Tokens: ref.PromptIDs, Want: backends.WantSample})
	if err != nil {
		t.Fatal(err)
	}
	if d.Token != ref.GenIDs[0] {
		t.Fatalf("first token after restart %d, want %d", d.Token, ref.GenIDs[0])
	}
}

func pluginLogRSS(t *testing.T, s *loader.Supervisor) {
	host, plug := pluginRSS(os.Getpid()), pluginRSS(s.PID())
	if plug == "" {
		t.Errorf("no VmRSS for plugin pid %d", s.PID())
	}
	t.Logf("VmRSS with stories260K loaded: host %s, plugin %s", host, plug)
}

// pluginRSS returns VmRSS of a process as /proc reports it.
func pluginRSS(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			return strings.Join(strings.Fields(v), " ")
		}
	}
	return ""
}

func pluginCountFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// pluginChildren lists the processes whose parent is this one (the go
// build children are long gone by then).
func pluginChildren(t *testing.T) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	me := os.Getpid()
	var kids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		rest := string(b[strings.LastIndexByte(string(b), ')')+1:])
		f := strings.Fields(rest)
		if len(f) > 1 {
			if ppid, _ := strconv.Atoi(f[1]); ppid == me {
				kids = append(kids, pid)
			}
		}
	}
	return kids
}

func pluginReaped(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return errors.Is(err, os.ErrNotExist)
}

func pluginWaitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

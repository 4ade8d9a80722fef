// Package run holds hostile-operations tests of `realm run`: guests that
// sleep through their deadline, signals, a killed host, a TMPDIR too
// long for Unix sockets. Each builds the realm binary and the reference
// plugin once, runs on loopback only, and ends by itself.
package run

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/realmrt/realm/internal/refdata"
)

// bins are the realm binary and the reference plugin, built once.
type bins struct {
	once       sync.Once
	dir        string
	realm, ref string
	err        error
}

var built bins

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

func build(t *testing.T) (realm, plugin string) {
	t.Helper()
	built.once.Do(func() {
		root, err := refdata.RepoRoot()
		if err != nil {
			built.err = err
			return
		}
		if built.dir, built.err = os.MkdirTemp("", "realm-hostile-run-"); built.err != nil {
			return
		}
		built.realm = filepath.Join(built.dir, "realm")
		built.ref = filepath.Join(built.dir, "realm-backend-reference")
		for out, pkg := range map[string]string{built.realm: "./cmd/realm", built.ref: "./cmd/realm-backend-reference"} {
			cmd := exec.Command("go", "build", "-o", out, pkg)
			cmd.Dir = root
			if b, err := cmd.CombinedOutput(); err != nil {
				built.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
				return
			}
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	if r := os.Getenv("REALM_HOSTILE_REALM"); r != "" {
		return r, built.ref // another build of realm (to measure a baseline)
	}
	return built.realm, built.ref
}

// sleeper is a WASI command whose _start sleeps for an hour in one
// poll_oneoff (a relative clock subscription) and returns. With sleep
// false its _start returns at once.
func sleeper(sleep bool) []byte {
	uleb := func(b []byte, v uint64) []byte {
		for {
			c := byte(v & 0x7f)
			v >>= 7
			if v == 0 {
				return append(b, c)
			}
			b = append(b, c|0x80)
		}
	}
	name := func(b []byte, s string) []byte { return append(uleb(b, uint64(len(s))), s...) }
	var out []byte
	section := func(id byte, body []byte) {
		out = append(out, id)
		out = uleb(out, uint64(len(body)))
		out = append(out, body...)
	}
	out = append(out, 0, 'a', 's', 'm', 1, 0, 0, 0)
	// types: 0 = (i32 i32 i32 i32) -> i32, 1 = () -> ()
	section(1, []byte{2, 0x60, 4, 0x7f, 0x7f, 0x7f, 0x7f, 1, 0x7f, 0x60, 0, 0})
	imp := uleb(nil, 1)
	imp = name(imp, "wasi_snapshot_preview1")
	imp = name(imp, "poll_oneoff")
	imp = append(imp, 0, 0)
	section(2, imp)
	section(3, []byte{1, 1})    // _start has type 1
	section(5, []byte{1, 0, 1}) // one memory, 1 page
	exp := uleb(nil, 2)
	exp = append(name(exp, "_start"), 0, 1)
	exp = append(name(exp, "memory"), 2, 0)
	section(7, exp)
	body := []byte{0} // no locals
	if sleep {
		// poll_oneoff(in=0, out=64, nsubscriptions=1, nevents=128); drop
		body = append(body, 0x41, 0, 0x41, 0xc0, 0, 0x41, 1, 0x41, 0x80, 1, 0x10, 0, 0x1a)
	}
	body = append(body, 0x0b)
	section(10, append(uleb([]byte{1}, uint64(len(body))), body...))
	sub := make([]byte, 48) // userdata 0, eventtype clock, clock id 0
	binary.LittleEndian.PutUint64(sub[24:], uint64(time.Hour))
	data := append([]byte{1, 0, 0x41, 0, 0x0b}, uleb(nil, uint64(len(sub)))...)
	section(11, append(data, sub...))
	return out
}

// fixture writes a plugins.hcl for the reference plugin with an app
// block for the guest (timeout as given) and returns its path.
func fixture(t *testing.T, plugin string, wasm []byte, timeout string) (cfg, wasmPath string) {
	t.Helper()
	dir := t.TempDir()
	wasmPath = filepath.Join(dir, "app.wasm")
	if err := os.WriteFile(wasmPath, wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "models"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg = filepath.Join(dir, "plugins.hcl")
	hcl := fmt.Sprintf(`models_dir = "models"
backend "reference" {
  binary = %q
  arch   = "any"
}
app "app" {
  wasm    = %q
  timeout = %q
}
`, plugin, wasmPath, timeout)
	if err := os.WriteFile(cfg, []byte(hcl), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg, wasmPath
}

// start runs `realm run` with TMPDIR set to tmp.
func start(t *testing.T, realm, cfg, wasm, tmp string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(realm, "run", "--config", cfg, wasm)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp, "REALM_BACKEND=")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return cmd, &stderr
}

// socketDirs lists the plugin socket directories under tmp.
func socketDirs(t *testing.T, tmp string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(tmp, "realm-plugins-*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// waitFor polls cond every 10ms for up to d.
func waitFor(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

// wait waits for cmd with a bound and returns its exit code and how
// long it took from since.
func wait(t *testing.T, cmd *exec.Cmd, since time.Time, bound time.Duration) (int, time.Duration) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(bound):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("realm run still running %v later (killed)", bound)
	}
	return cmd.ProcessState.ExitCode(), time.Since(since)
}

// TestSignalEndsSleepingRun: SIGINT or SIGTERM ends `realm run` of a
// guest asleep in poll_oneoff for an hour: the run is cancelled, the
// plugin stopped and its socket directory removed (before: the signal
// was ignored until the sleep ended).
func TestSignalEndsSleepingRun(t *testing.T) {
	realm, plugin := build(t)
	cfg, wasm := fixture(t, plugin, sleeper(true), "1h")
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			tmp := t.TempDir()
			cmd, stderr := start(t, realm, cfg, wasm, tmp)
			if !waitFor(30*time.Second, func() bool { return len(socketDirs(t, tmp)) == 1 }) {
				t.Fatalf("no plugin socket directory appeared\n%s", stderr)
			}
			time.Sleep(300 * time.Millisecond) // into the sleep
			t0 := time.Now()
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			code, took := wait(t, cmd, t0, 30*time.Second)
			t.Logf("%v ended the run after %v (exit %d): %s", sig, took, code, strings.TrimSpace(stderr.String()))
			if code == 0 {
				t.Errorf("exit code 0 for a cancelled run")
			}
			if !strings.Contains(stderr.String(), "run cancelled") {
				t.Errorf("stderr does not say the run was cancelled: %q", stderr)
			}
			if d := socketDirs(t, tmp); len(d) != 0 {
				t.Errorf("socket directories left: %v", d)
			}
		})
	}
}

// TestDeadlineEndsSleepingRun: the app's timeout ends a sleeping guest
// and the run reports a deadline error (before: it slept on).
func TestDeadlineEndsSleepingRun(t *testing.T) {
	realm, plugin := build(t)
	cfg, wasm := fixture(t, plugin, sleeper(true), "1s")
	tmp := t.TempDir()
	t0 := time.Now()
	cmd, stderr := start(t, realm, cfg, wasm, tmp)
	code, took := wait(t, cmd, t0, time.Minute)
	t.Logf("run ended after %v (exit %d): %s", took, code, strings.TrimSpace(stderr.String()))
	if code == 0 || !strings.Contains(stderr.String(), "deadline") {
		t.Errorf("exit %d, stderr %q: want a deadline error", code, stderr)
	}
}

// TestKilledHostLeavesNothing: a `realm run` killed with SIGKILL cannot
// clean up; its plugin dies with it and the next run sweeps its socket
// directory.
func TestKilledHostLeavesNothing(t *testing.T) {
	realm, plugin := build(t)
	cfg, wasm := fixture(t, plugin, sleeper(true), "1h")
	tmp := t.TempDir()
	cmd, stderr := start(t, realm, cfg, wasm, tmp)
	if !waitFor(30*time.Second, func() bool { return len(socketDirs(t, tmp)) == 1 }) {
		t.Fatalf("no plugin socket directory appeared\n%s", stderr)
	}
	stale := socketDirs(t, tmp)[0]
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	cfg2, wasm2 := fixture(t, plugin, sleeper(false), "10s")
	next, stderr2 := start(t, realm, cfg2, wasm2, tmp)
	if code, _ := wait(t, next, time.Now(), time.Minute); code != 0 {
		t.Fatalf("next run: exit %d\n%s", code, stderr2)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("the killed host's socket directory %s is still there (%v)", stale, err)
	}
}

// TestLongTMPDIR: a TMPDIR too long for a Unix socket path (108 bytes)
// does not stop the plugins (before: "bind: invalid argument" for every
// backend); the sockets go to a short directory and the log says why.
func TestLongTMPDIR(t *testing.T) {
	realm, plugin := build(t)
	cfg, wasm := fixture(t, plugin, sleeper(false), "10s")
	tmp := filepath.Join(t.TempDir(), strings.Repeat("t", 100))
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(realm, "run", "-v", "--config", cfg, wasm)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp, "REALM_BACKEND=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("realm run with a %d-byte TMPDIR: %v\n%s", len(tmp), err, out)
	}
	if !strings.Contains(string(out), "socket paths would be") {
		t.Errorf("the log does not say why the sockets moved:\n%s", out)
	}
}

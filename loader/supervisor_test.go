package loader_test

import (
	"bufio"
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
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"golang.org/x/sys/unix"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/backends/backendtest"
	"github.com/realmrt/realm/backends/sdk"
	"github.com/realmrt/realm/gguf"
	"github.com/realmrt/realm/loader"
)

// The test binary doubles as the plugin (and, for the parent-death
// test, as a host): TestSupervisorHelperProcess runs a mode named by
// supHelperEnv when the supervisor starts this binary with it.
const supHelperEnv = "REALM_SUPERVISOR_HELPER"

// supFlakyEnv names the file whose existence makes the "flaky" helper
// fail at start.
const supFlakyEnv = "REALM_SUPERVISOR_FLAKY"

// supBigVocab is the vocabulary of the "bigvocab" helper (a 7B llama's).
const supBigVocab = 32000

// Poison tokens of the helper's fake backend.
const (
	supTokExit  = 13 // log an error line, then exit(2) inside Decode
	supTokPanic = 14 // panic inside Decode
	supTokBlock = 15 // block until the call's ctx ends
)

func TestSupervisorHelperProcess(t *testing.T) {
	mode := os.Getenv(supHelperEnv)
	if mode == "" {
		t.Skip("helper process for the supervisor tests")
	}
	supHelperMain(mode)
	os.Exit(0)
}

func supHelperMain(mode string) {
	newFake := func(int) (backends.Backend, error) {
		log := hclog.New(&hclog.LoggerOptions{Output: os.Stderr, JSONFormat: true})
		return &supPoisoned{Fake: backendtest.New(32), log: log}, nil
	}
	switch mode {
	case "fake":
		sdk.Serve(sdk.Config{Name: "fake", Version: "1", NewBackend: newFake})
	case "bigvocab":
		sdk.Serve(sdk.Config{Name: "bigvocab", NewBackend: func(int) (backends.Backend, error) {
			return backendtest.New(supBigVocab), nil
		}})
	case "noisy":
		sdk.Serve(sdk.Config{Name: "noisy", NewBackend: func(n int) (backends.Backend, error) {
			fmt.Println("stray line from Go on stdout")
			_, _ = unix.Write(1, []byte("stray line from C printf on fd 1\n"))
			return newFake(n)
		}})
	case "exit":
		sdk.Serve(sdk.Config{Name: "exit", NewBackend: func(int) (backends.Backend, error) {
			return nil, errors.New("no device found (helper exits at start)")
		}})
	case "wronginfo":
		sdk.Serve(sdk.Config{Name: "wronginfo", NewBackend: func(int) (backends.Backend, error) {
			return &supWrongInfo{Fake: backendtest.New(32)}, nil
		}})
	case "hangunload":
		sdk.Serve(sdk.Config{Name: "hangunload", NewBackend: func(int) (backends.Backend, error) {
			return &supHangUnload{Fake: backendtest.New(32)}, nil
		}})
	case "flaky":
		// Fails at start while the file named by supFlakyEnv exists.
		if _, err := os.Stat(os.Getenv(supFlakyEnv)); err == nil {
			fmt.Fprintln(os.Stderr, "flaky: device busy (helper exits at start)")
			os.Exit(3)
		}
		sdk.Serve(sdk.Config{Name: "flaky", Version: "1", NewBackend: newFake})
	case "wrongproto":
		sc := backends.ServeConfig(backendtest.New(32))
		sc.ProtocolVersion = backends.ProtocolVersion + 1
		plugin.Serve(sc)
	case "host":
		// A host that starts a plugin, reports its pid and waits to be killed.
		s, err := loader.NewSupervisor(context.Background(), loader.SupervisorConfig{
			Plugins: []loader.PluginSpec{supSpec("fake", "fake")},
		})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println(s.PID())
		time.Sleep(time.Minute)
	default:
		fmt.Fprintf(os.Stderr, "unknown helper mode %q\n", mode)
		os.Exit(1)
	}
}

// supPoisoned is the helper's fake backend with crash triggers in Decode.
type supPoisoned struct {
	*backendtest.Fake
	log hclog.Logger
}

func (p *supPoisoned) Decode(ctx context.Context, req backends.DecodeRequest) (*backends.DecodeResult, error) {
	for _, tok := range req.Tokens {
		switch tok {
		case supTokExit:
			p.log.Error("kernel fault: simulated crash", "token", tok)
			os.Exit(2)
		case supTokPanic:
			panic("boom in decode")
		case supTokBlock:
			<-ctx.Done()
			return nil, ctx.Err()
		}
	}
	return p.Fake.Decode(ctx, req)
}

// supHangUnload never finishes an UnloadModel.
type supHangUnload struct{ *backendtest.Fake }

func (*supHangUnload) UnloadModel(context.Context, backends.ModelID) error {
	select {}
}

type supWrongInfo struct{ *backendtest.Fake }

func (w *supWrongInfo) Info(ctx context.Context) (*backends.Info, error) {
	info, err := w.Fake.Info(ctx)
	if err != nil {
		return nil, err
	}
	info.ProtocolVersion = backends.ProtocolVersion + 7
	return info, nil
}

func supSpec(name, mode string) loader.PluginSpec {
	return loader.PluginSpec{
		Name:   name,
		Binary: os.Args[0],
		Args:   []string{"-test.run=^TestSupervisorHelperProcess$"},
		Env:    []string{supHelperEnv + "=" + mode},
	}
}

func supConfig(t *testing.T, specs ...loader.PluginSpec) loader.SupervisorConfig {
	return supConfigLogger(hclog.New(&hclog.LoggerOptions{Name: "host", Output: supTestWriter{t}, Level: hclog.Warn}), specs...)
}

func supConfigLogger(logger hclog.Logger, specs ...loader.PluginSpec) loader.SupervisorConfig {
	return loader.SupervisorConfig{
		Plugins:      specs,
		Logger:       logger,
		MaxRestarts:  10,
		Backoff:      time.Millisecond,
		MaxBackoff:   20 * time.Millisecond,
		PingInterval: 100 * time.Millisecond,
		PingTimeout:  2 * time.Second,
		StartTimeout: 20 * time.Second,
	}
}

type supTestWriter struct{ t *testing.T }

func (w supTestWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func supStart(t *testing.T, cfg loader.SupervisorConfig) *loader.Supervisor {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := loader.NewSupervisor(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func supModelFile(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "model.gguf")
	if err := os.WriteFile(p, []byte("fake"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// supAlive reports whether pid is a live (not zombie) process.
func supAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

// supReaped reports whether pid is gone for good (no zombie left).
func supReaped(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return errors.Is(err, os.ErrNotExist)
}

func supWaitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSupervisorRoundTrip(t *testing.T) {
	s := supStart(t, supConfig(t, supSpec("fake", "fake")))
	ctx := context.Background()
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != "fake" || info.ProtocolVersion != backends.ProtocolVersion {
		t.Fatalf("info = %+v", info)
	}
	if s.Active() != "fake" || s.PID() <= 0 || s.PID() == os.Getpid() {
		t.Fatalf("active %q pid %d", s.Active(), s.PID())
	}
	mi, err := s.LoadModel(ctx, backends.LoadRequest{Path: supModelFile(t)})
	if err != nil {
		t.Fatal(err)
	}
	sid, err := s.OpenSession(ctx, mi.ID, 64)
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: []int32{3, 4}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Logits, backendtest.Logits([]int32{3, 4}, 32)) || res.NPast != 2 {
		t.Fatalf("decode = %+v", res)
	}
	if err := s.Truncate(ctx, sid, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: []int32{99}}); !errors.Is(err, backends.ErrInvalidArgument) {
		t.Fatalf("bad token: %v", err)
	}
	if _, err := s.OpenSession(ctx, mi.ID+100, 8); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("unknown model: %v", err)
	}
	if err := s.CloseSession(ctx, sid); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: []int32{1}}); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("closed session: %v", err)
	}
	if err := s.UnloadModel(ctx, mi.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.OpenSession(ctx, mi.ID, 8); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("unloaded model: %v", err)
	}
	if s.Restarts() != 0 {
		t.Fatalf("restarts = %d", s.Restarts())
	}
}

// TestSupervisorLargeMessages checks the raised (and bounded) gRPC
// message limits in both directions.
func TestSupervisorLargeMessages(t *testing.T) {
	s := supStart(t, supConfig(t, supSpec("fake", "fake")))
	ctx := context.Background()
	n := 3 << 20 // 12 MiB per input, 24 MiB request, 12 MiB reply: over gRPC's 4 MiB default
	a := make([]float32, n)
	for i := range a {
		a[i] = float32(i % 1000)
	}
	ab := gguf.F32Bytes(a)
	res, err := s.TensorOp(ctx, backends.TensorOpRequest{Op: backends.OpAdd, Inputs: []backends.TensorRef{
		{Shape: []int{n}, Data: ab}, {Shape: []int{n}, Data: ab},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Data) != n || res.Data[n-1] != 2*a[n-1] {
		t.Fatalf("result of %d elements", len(res.Data))
	}
	big := make([]byte, backends.MaxMessageBytes/2+8)
	_, err = s.TensorOp(ctx, backends.TensorOpRequest{Op: backends.OpAdd, Inputs: []backends.TensorRef{{Data: big}, {Data: big}}})
	if err == nil || errors.Is(err, backends.ErrBackendCrashed) {
		t.Fatalf("oversized request: %v", err)
	}
	if s.Restarts() != 0 {
		t.Fatalf("restarts = %d", s.Restarts())
	}
}

// TestSupervisorCrashRestart kills the plugin from inside a call and
// checks the typed error, the crash report, the restart, the surviving
// model handle and the stale session handle.
func TestSupervisorCrashRestart(t *testing.T) {
	for _, tc := range []struct {
		name, wantLine string
		tok            int32
	}{
		{"exit", "kernel fault: simulated crash", supTokExit},
		{"panic", "panic: boom in decode", supTokPanic},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := supStart(t, supConfig(t, supSpec("fake", "fake")))
			ctx := context.Background()
			mi, err := s.LoadModel(ctx, backends.LoadRequest{Path: supModelFile(t)})
			if err != nil {
				t.Fatal(err)
			}
			sid, err := s.OpenSession(ctx, mi.ID, 64)
			if err != nil {
				t.Fatal(err)
			}
			pid := s.PID()
			_, err = s.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: []int32{1, tc.tok}})
			if !errors.Is(err, backends.ErrBackendCrashed) {
				t.Fatalf("decode: %v, want ErrBackendCrashed", err)
			}
			t.Logf("crash error: %v", err)
			if !strings.Contains(err.Error(), tc.wantLine) {
				t.Errorf("crash error lacks the plugin's last error line %q: %v", tc.wantLine, err)
			}
			if !slices.ContainsFunc(s.LastErrors(), func(l string) bool { return strings.Contains(l, tc.wantLine) }) {
				t.Errorf("LastErrors() = %q", s.LastErrors())
			}
			// The model handle survives; the session does not.
			sid2, err := s.OpenSession(ctx, mi.ID, 64)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: []int32{1}}); !errors.Is(err, backends.ErrStaleHandle) || !errors.Is(err, backends.ErrBackendCrashed) {
				t.Fatalf("old session: %v, want ErrStaleHandle and ErrBackendCrashed", err)
			}
			if err := s.CloseSession(ctx, sid); !errors.Is(err, backends.ErrStaleHandle) {
				t.Fatalf("close old session: %v, want ErrStaleHandle", err)
			}
			res, err := s.Decode(ctx, backends.DecodeRequest{Session: sid2, Tokens: []int32{5, 6, 7}})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(res.Logits, backendtest.Logits([]int32{5, 6, 7}, 32)) {
				t.Fatal("wrong logits after restart")
			}
			if s.Restarts() != 1 || s.PID() == pid {
				t.Fatalf("restarts %d, pid %d → %d", s.Restarts(), pid, s.PID())
			}
			supWaitFor(t, "the dead plugin to be reaped", 5*time.Second, func() bool { return supReaped(pid) })
		})
	}
}

// TestSupervisorKillNoticed kills the plugin from outside while idle:
// the supervisor notices without any call or ping and restarts it.
func TestSupervisorKillNoticed(t *testing.T) {
	cfg := supConfig(t, supSpec("fake", "fake"))
	cfg.PingInterval = time.Hour // only the connection watch can notice
	s := supStart(t, cfg)
	pid := s.PID()
	t0 := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	supWaitFor(t, "the restart", 10*time.Second, func() bool { return s.Restarts() == 1 && s.PID() != 0 })
	t.Logf("SIGKILL to restarted plugin answering Info: %v", time.Since(t0))
	supWaitFor(t, "the dead plugin to be reaped", 5*time.Second, func() bool { return supReaped(pid) })
}

// TestSupervisorHungPlugin stops the plugin (SIGSTOP): only the ping
// can tell, and the supervisor replaces it.
func TestSupervisorHungPlugin(t *testing.T) {
	s := supStart(t, supConfig(t, supSpec("fake", "fake")))
	pid := s.PID()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	supWaitFor(t, "the hung plugin to be replaced", 30*time.Second, func() bool { return s.Restarts() == 1 && s.PID() != 0 })
	supWaitFor(t, "the hung plugin to be reaped", 5*time.Second, func() bool { return supReaped(pid) })
	if _, err := s.Info(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestSupervisorCallContext checks that a caller's deadline ends a call
// in the plugin without taking the plugin for dead.
func TestSupervisorCallContext(t *testing.T) {
	s := supStart(t, supConfig(t, supSpec("fake", "fake")))
	ctx := context.Background()
	mi, err := s.LoadModel(ctx, backends.LoadRequest{Path: supModelFile(t)})
	if err != nil {
		t.Fatal(err)
	}
	sid, err := s.OpenSession(ctx, mi.ID, 64)
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_, err = s.Decode(cctx, backends.DecodeRequest{Session: sid, Tokens: []int32{supTokBlock}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("decode: %v", err)
	}
	if _, err := s.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: []int32{1}}); err != nil {
		t.Fatal(err)
	}
	if s.Restarts() != 0 {
		t.Fatalf("restarts = %d", s.Restarts())
	}
}

func TestSupervisorStartErrors(t *testing.T) {
	for _, tc := range []struct {
		mode, line string
		want       error
	}{
		{"exit", "no device found", backends.ErrPluginStart},
		{"wrongproto", "", backends.ErrProtocolMismatch},
		{"wronginfo", "", backends.ErrProtocolMismatch},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			cfg := supConfig(t, supSpec(tc.mode, tc.mode))
			cfg.MaxRestarts = -1
			s, err := loader.NewSupervisor(context.Background(), cfg)
			if err == nil {
				s.Close()
				t.Fatal("NewSupervisor succeeded")
			}
			t.Logf("start error: %v", err)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.line) {
				t.Fatalf("error lacks %q: %v", tc.line, err)
			}
		})
	}
	t.Run("missing binary", func(t *testing.T) {
		cfg := supConfig(t, loader.PluginSpec{Name: "nope", Binary: filepath.Join(t.TempDir(), "nope")})
		cfg.MaxRestarts = -1
		if _, err := loader.NewSupervisor(context.Background(), cfg); !errors.Is(err, backends.ErrPluginStart) {
			t.Fatalf("got %v", err)
		}
	})
}

func TestSupervisorFallback(t *testing.T) {
	t.Run("at start", func(t *testing.T) {
		cfg := supConfig(t, supSpec("exit", "exit"), supSpec("wrongproto", "wrongproto"), supSpec("fake", "fake"))
		cfg.MaxRestarts = 1
		s := supStart(t, cfg)
		if s.Active() != "fake" {
			t.Fatalf("active = %q", s.Active())
		}
	})
	t.Run("after crashes", func(t *testing.T) {
		cfg := supConfig(t, supSpec("first", "fake"), supSpec("second", "fake"))
		cfg.MaxRestarts = -1 // the first failure falls back
		s := supStart(t, cfg)
		ctx := context.Background()
		mi, err := s.LoadModel(ctx, backends.LoadRequest{Path: supModelFile(t)})
		if err != nil {
			t.Fatal(err)
		}
		sid, err := s.OpenSession(ctx, mi.ID, 8)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: []int32{supTokExit}}); !errors.Is(err, backends.ErrBackendCrashed) {
			t.Fatalf("decode: %v", err)
		}
		sid, err = s.OpenSession(ctx, mi.ID, 8)
		if err != nil {
			t.Fatal(err)
		}
		if s.Active() != "second" {
			t.Fatalf("active = %q", s.Active())
		}
		if _, err := s.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: []int32{1}}); err != nil {
			t.Fatal(err)
		}
		// The last plugin failing too leaves the supervisor unavailable,
		// typed, and failing fast while it retries.
		if _, err := s.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: []int32{supTokExit}}); !errors.Is(err, backends.ErrBackendCrashed) {
			t.Fatalf("decode: %v", err)
		}
		supWaitFor(t, "the supervisor to report itself unavailable", 10*time.Second, func() bool {
			_, err := s.OpenSession(ctx, mi.ID, 8)
			return errors.Is(err, backends.ErrBackendCrashed) && strings.Contains(err.Error(), "retrying")
		})
		if s.Active() != "" {
			t.Errorf("active = %q while none serves", s.Active())
		}
	})
}

// TestSupervisorNeverGivesUp: every plugin failing is an outage only as
// long as they fail. While the only plugin cannot start, calls fail
// fast as unavailable; once it can start again it serves (before: "no
// backend plugin could be started" until the host restarted).
func TestSupervisorNeverGivesUp(t *testing.T) {
	flag := filepath.Join(t.TempDir(), "broken")
	spec := supSpec("flaky", "flaky")
	spec.Env = append(spec.Env, supFlakyEnv+"="+flag)
	cfg := supConfig(t, spec)
	cfg.MaxRestarts = 1
	cfg.Cooldown, cfg.MaxCooldown = 200*time.Millisecond, 400*time.Millisecond
	s := supStart(t, cfg)
	ctx := context.Background()
	mi, err := s.LoadModel(ctx, backends.LoadRequest{Path: supModelFile(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(s.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	supWaitFor(t, "the outage to be reported", 20*time.Second, func() bool {
		_, err := s.Info(ctx)
		return errors.Is(err, backends.ErrBackendCrashed) && strings.Contains(err.Error(), "retrying")
	})
	t0 := time.Now()
	if _, err := s.Info(ctx); err == nil {
		t.Fatal("Info succeeded during the outage")
	}
	t.Logf("a call during the outage failed after %v", time.Since(t0))
	if err := os.Remove(flag); err != nil {
		t.Fatal(err)
	}
	supWaitFor(t, "the plugin to come back", 20*time.Second, func() bool { _, err := s.Info(ctx); return err == nil })
	if s.Active() != "flaky" {
		t.Errorf("active = %q", s.Active())
	}
	sid, err := s.OpenSession(ctx, mi.ID, 8) // the model was reloaded
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: []int32{1}}); err != nil {
		t.Fatal(err)
	}
}

// TestSupervisorFailBack: fallback is two-way. The preferred plugin
// fails at start, the next one serves; once the preferred can start
// again it takes over (when the fallback is idle), and Active names it.
func TestSupervisorFailBack(t *testing.T) {
	flag := filepath.Join(t.TempDir(), "broken")
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	spec := supSpec("preferred", "flaky")
	spec.Env = append(spec.Env, supFlakyEnv+"="+flag)
	cfg := supConfig(t, spec, supSpec("fallback", "fake"))
	cfg.MaxRestarts = -1
	cfg.Cooldown, cfg.MaxCooldown = 200*time.Millisecond, 400*time.Millisecond
	s := supStart(t, cfg)
	if s.Active() != "fallback" {
		t.Fatalf("active = %q", s.Active())
	}
	ctx := context.Background()
	mi, err := s.LoadModel(ctx, backends.LoadRequest{Path: supModelFile(t)})
	if err != nil {
		t.Fatal(err)
	}
	sid, err := s.OpenSession(ctx, mi.ID, 8)
	if err != nil {
		t.Fatal(err)
	}
	old := s.PID()
	if err := os.Remove(flag); err != nil {
		t.Fatal(err)
	}
	// An open session keeps the fallback in place.
	time.Sleep(time.Second)
	if s.Active() != "fallback" {
		t.Fatalf("active = %q with a session open on the fallback", s.Active())
	}
	if err := s.CloseSession(ctx, sid); err != nil {
		t.Fatal(err)
	}
	supWaitFor(t, "the preferred plugin to take over", 20*time.Second, func() bool { return s.Active() == "preferred" })
	supWaitFor(t, "the fallback to be stopped", 10*time.Second, func() bool { return supReaped(old) })
	sid, err = s.OpenSession(ctx, mi.ID, 8)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: []int32{1}}); err != nil {
		t.Fatal(err)
	}
	if s.Restarts() != 0 {
		t.Errorf("restarts = %d (a fail-back is not a crash)", s.Restarts())
	}
}

// TestSupervisorSlowPingNotKilled: a plugin that misses a few pings in a
// row (stopped for a moment, as a host under memory pressure delays
// them) is not taken for dead; the supervisor kills only after
// PingFailures misses in a row (before: one missed ping meant SIGKILL).
func TestSupervisorSlowPingNotKilled(t *testing.T) {
	cfg := supConfig(t, supSpec("fake", "fake"))
	cfg.PingInterval, cfg.PingTimeout, cfg.PingFailures = 50*time.Millisecond, 200*time.Millisecond, 8
	s := supStart(t, cfg)
	pid := s.PID()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond) // ≥ 2 pings time out
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if s.Restarts() != 0 || s.PID() != pid {
		t.Fatalf("plugin killed after a short stall: restarts %d, pid %d → %d", s.Restarts(), pid, s.PID())
	}
	if _, err := s.Info(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestSupervisorNoisyStdout: a plugin writing to stdout from Go and
// through file descriptor 1 before the handshake still starts.
func TestSupervisorNoisyStdout(t *testing.T) {
	s := supStart(t, supConfig(t, supSpec("noisy", "noisy")))
	if _, err := s.Info(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestSupervisorHostDeath kills a host process (SIGKILL, no cleanup) and
// checks that its plugin does not outlive it.
func TestSupervisorHostDeath(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestSupervisorHelperProcess$")
	// TMPDIR: the killed host cannot remove its socket directory.
	cmd.Env = append(os.Environ(), supHelperEnv+"=host", "TMPDIR="+t.TempDir())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the plugin pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || !supAlive(pid) {
		t.Fatalf("host said %q", line)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	supWaitFor(t, "the orphaned plugin to die", 5*time.Second, func() bool { return !supAlive(pid) })
}

// TestSupervisorCloseLeaks starts, crashes and closes supervisors and
// checks that goroutines, file descriptors and processes are released.
func TestSupervisorCloseLeaks(t *testing.T) {
	run := func() []int {
		s := supStart(t, supConfig(t, supSpec("fake", "fake")))
		ctx := context.Background()
		mi, err := s.LoadModel(ctx, backends.LoadRequest{Path: supModelFile(t)})
		if err != nil {
			t.Fatal(err)
		}
		sid, _ := s.OpenSession(ctx, mi.ID, 8)
		pids := []int{s.PID()}
		_, _ = s.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: []int32{supTokExit}})
		if _, err := s.Info(ctx); err != nil {
			t.Fatal(err)
		}
		pids = append(pids, s.PID())
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Info(ctx); !errors.Is(err, loader.ErrClosed) {
			t.Fatalf("after close: %v", err)
		}
		return pids
	}
	run() // warm up (lazily created runtime and gRPC state)
	g0, fd0 := runtime.NumGoroutine(), supCountFDs(t)
	var pids []int
	for range 3 {
		pids = append(pids, run()...)
	}
	for _, pid := range pids {
		supWaitFor(t, fmt.Sprintf("plugin %d to be reaped", pid), 5*time.Second, func() bool { return supReaped(pid) })
	}
	supWaitFor(t, "goroutines to end", 5*time.Second, func() bool { return runtime.NumGoroutine() <= g0+2 })
	if fd := supCountFDs(t); fd > fd0+2 {
		t.Fatalf("file descriptors: %d before, %d after", fd0, fd)
	}
}

func supCountFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// BenchmarkDecodeFake measures the plugin boundary alone: one Decode of
// the deterministic fake backend called directly and through the
// supervisor and a plugin process, with a small and a 32000-entry
// vocabulary of logits coming back.
func BenchmarkDecodeFake(b *testing.B) {
	for _, nv := range []int{32, supBigVocab} {
		mode := "fake"
		if nv == supBigVocab {
			mode = "bigvocab"
		}
		b.Run(fmt.Sprintf("InProcess/vocab=%d", nv), func(b *testing.B) { supBenchDecode(b, backendtest.New(nv)) })
		b.Run(fmt.Sprintf("Plugin/vocab=%d", nv), func(b *testing.B) {
			cfg := supConfigLogger(hclog.NewNullLogger(), supSpec(mode, mode))
			s, err := loader.NewSupervisor(context.Background(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			supBenchDecode(b, s)
		})
	}
}

func supBenchDecode(b *testing.B, be backends.Backend) {
	ctx := context.Background()
	p := filepath.Join(b.TempDir(), "m")
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		b.Fatal(err)
	}
	mi, err := be.LoadModel(ctx, backends.LoadRequest{Path: p})
	if err != nil {
		b.Fatal(err)
	}
	sid, err := be.OpenSession(ctx, mi.ID, 1<<30)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := be.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: []int32{1}, Want: backends.WantLogits}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSupervisorCloseInFlight: Close fails a call in flight with
// ErrClosed, not as a crash.
func TestSupervisorCloseInFlight(t *testing.T) {
	s := supStart(t, supConfig(t, supSpec("fake", "fake")))
	ctx := context.Background()
	mi, err := s.LoadModel(ctx, backends.LoadRequest{Path: supModelFile(t)})
	if err != nil {
		t.Fatal(err)
	}
	sid, err := s.OpenSession(ctx, mi.ID, 8)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := s.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: []int32{supTokBlock}})
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, loader.ErrClosed) || errors.Is(err, backends.ErrBackendCrashed) {
		t.Fatalf("in-flight call after Close: %v", err)
	}
}

// TestSupervisorConcurrentCrash: several goroutines decode while the
// plugin is killed; each sees a crash (or, after the restart, a stale
// session), reopens and carries on with correct results.
func TestSupervisorConcurrentCrash(t *testing.T) {
	s := supStart(t, supConfig(t, supSpec("fake", "fake")))
	ctx := context.Background()
	mi, err := s.LoadModel(ctx, backends.LoadRequest{Path: supModelFile(t)})
	if err != nil {
		t.Fatal(err)
	}
	const workers, steps = 4, 60
	errc := make(chan error, workers)
	killAt := make(chan struct{})
	for w := range workers {
		go func() {
			var toks []int32
			sid, err := s.OpenSession(ctx, mi.ID, 1024)
			crashes := 0
			for i := 0; i < steps && err == nil; i++ {
				if i == steps/3 && w == 0 {
					close(killAt)
				}
				tok := int32(1 + (w+i)%10)
				var res *backends.DecodeResult
				res, err = s.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: []int32{tok}})
				switch {
				case err == nil:
					toks = append(toks, tok)
					if !slices.Equal(res.Logits, backendtest.Logits(toks, 32)) {
						err = fmt.Errorf("worker %d step %d: wrong logits", w, i)
					}
				case errors.Is(err, backends.ErrBackendCrashed) || errors.Is(err, backends.ErrStaleHandle):
					crashes++
					toks = nil
					sid, err = s.OpenSession(ctx, mi.ID, 1024)
				}
			}
			if err == nil && crashes > 1 {
				err = fmt.Errorf("worker %d saw %d crashes for one kill", w, crashes)
			}
			errc <- err
		}()
	}
	<-killAt
	if err := syscall.Kill(s.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for range workers {
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}
	if s.Restarts() != 1 {
		t.Errorf("restarts = %d", s.Restarts())
	}
}

// TestSupervisorUnloadBounded: a plugin hung in UnloadModel does not hang
// the caller (the model cache evicting, shutdown): the call gives up
// after UnloadTimeout and the supervisor still closes.
func TestSupervisorUnloadBounded(t *testing.T) {
	cfg := supConfig(t, supSpec("hangunload", "hangunload"))
	cfg.UnloadTimeout = 300 * time.Millisecond
	s := supStart(t, cfg)
	ctx := context.Background()
	mi, err := s.LoadModel(ctx, backends.LoadRequest{Path: supModelFile(t)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.UnloadModel(ctx, mi.ID) }()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("unload: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("UnloadModel still blocked after 20s")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

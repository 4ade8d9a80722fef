package tests

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/internal/refdata"
	"github.com/realmrt/realm/loader"
)

// batchPlugin builds cmd/realm-backend-NAME and starts it under a
// supervisor with two threads.
func batchPlugin(t *testing.T, name string) *loader.Supervisor {
	t.Helper()
	root, err := refdata.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "realm-backend-"+name)
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/realm-backend-"+name)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", name, err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := loader.NewSupervisor(ctx, loader.SupervisorConfig{
		Plugins:      []loader.PluginSpec{{Name: name, Binary: bin, Threads: 2}},
		Logger:       hclog.New(&hclog.LoggerOptions{Name: "host", Output: os.Stderr, Level: hclog.Off}),
		MaxRestarts:  100,
		Backoff:      time.Millisecond,
		MaxBackoff:   10 * time.Millisecond,
		PingInterval: 200 * time.Millisecond,
		StartTimeout: 20 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// batchRun is one session's work and outcome: its prompt, the greedy
// ids that follow, and the logits of every step.
type batchRun struct {
	prompt []int32
	ids    []int32
	logits [][]float32
}

// batchDecode runs a session on b: the prompt, then steps greedy
// tokens, or with force the ids of force (teacher forcing, so that a
// run can be compared step by step with another). inflight counts the
// Decode calls in progress and peak their most at once.
func batchDecode(ctx context.Context, b backends.Backend, model backends.ModelID, prompt []int32, steps int, force []int32, inflight, peak *atomic.Int32) (batchRun, error) {
	r := batchRun{prompt: prompt}
	sid, err := b.OpenSession(ctx, model, 128)
	if err != nil {
		return r, err
	}
	defer b.CloseSession(context.WithoutCancel(ctx), sid)
	in := prompt
	for step := range steps {
		if inflight != nil {
			n := inflight.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
		}
		res, err := b.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: in, Want: backends.WantLogits})
		if inflight != nil {
			inflight.Add(-1)
		}
		if err != nil {
			return r, fmt.Errorf("step %d: %w", step, err)
		}
		best := int32(0)
		for i, v := range res.Logits {
			if v > res.Logits[best] {
				best = int32(i)
			}
		}
		r.ids = append(r.ids, best)
		r.logits = append(r.logits, res.Logits)
		next := best
		if force != nil {
			next = force[step]
		}
		in = []int32{next}
	}
	return r, nil
}

// batchPrompts returns n random prompts of 1 to 48 tokens (BOS first).
func batchPrompts(n, vocab int) [][]int32 {
	rng := rand.New(rand.NewPCG(16, 16))
	out := make([][]int32, n)
	for i := range out {
		out[i] = []int32{1}
		for range rng.IntN(48) {
			out[i] = append(out[i], int32(3+rng.IntN(vocab-3)))
		}
	}
	return out
}

// TestPluginBatchSixteenSessions runs 16 sessions with different
// prompts at once through the real plugin (go-plugin, the supervisor),
// whose scheduler merges their decodes, and checks each against the
// same session run alone: the same greedy ids at every step and logits
// within the conformance bound of the file. It runs the reference
// plugin on the F32 model and, on amd64, the AVX2 plugin on the Q4_0
// one (its batch kernels round differently from its matvec).
func TestPluginBatchSixteenSessions(t *testing.T) {
	cases := []struct{ plugin, model string }{{"reference", "stories260K.gguf"}}
	if runtime.GOARCH == "amd64" {
		cases = append(cases, struct{ plugin, model string }{"cpu-avx2", "stories260K-Q4_0.gguf"})
	}
	for _, c := range cases {
		t.Run(c.plugin, func(t *testing.T) {
			path, err := refdata.Path("models", c.model)
			if err != nil {
				t.Fatal(err)
			}
			s := batchPlugin(t, c.plugin)
			ctx := context.Background()
			if info, err := s.Info(ctx); err != nil {
				t.Skipf("plugin %s: %v", c.plugin, err)
			} else if info.Name != c.plugin {
				t.Skipf("plugin %s runs as %s", c.plugin, info.Name)
			}
			mi, err := s.LoadModel(ctx, backends.LoadRequest{Path: path})
			if err != nil {
				t.Fatal(err)
			}
			const sessions, steps = 16, 24
			ps := batchPrompts(sessions, mi.NVocab)
			alone := make([]batchRun, sessions)
			for i, p := range ps {
				if alone[i], err = batchDecode(ctx, s, mi.ID, p, steps, nil, nil, nil); err != nil {
					t.Fatal(err)
				}
			}
			limit := 1e-5
			if c.model != "stories260K.gguf" {
				limit = 1e-3
			}
			var inflight, peak atomic.Int32
			got := make([]batchRun, sessions)
			errs := make([]error, sessions)
			var wg sync.WaitGroup
			for i, p := range ps {
				wg.Add(1)
				go func() {
					defer wg.Done()
					got[i], errs[i] = batchDecode(ctx, s, mi.ID, p, steps, alone[i].ids, &inflight, &peak)
				}()
			}
			wg.Wait()
			worst := 0.0
			for i := range ps {
				if errs[i] != nil {
					t.Errorf("session %d: %v", i, errs[i])
					continue
				}
				for step := range steps {
					if got[i].ids[step] != alone[i].ids[step] {
						t.Errorf("session %d step %d: greedy id %d, alone %d", i, step, got[i].ids[step], alone[i].ids[step])
						break
					}
					e := refdata.NMSE(got[i].logits[step], alone[i].logits[step])
					worst = max(worst, e)
					if e > limit {
						t.Errorf("session %d step %d: logits NMSE %.3g vs alone exceeds %.3g", i, step, e, limit)
						break
					}
				}
			}
			t.Logf("%d sessions × %d steps; at most %d decodes in flight at once; worst NMSE vs alone %.3g", sessions, steps, peak.Load(), worst)
			if peak.Load() < 2 {
				t.Error("the decodes never reached the plugin concurrently")
			}
		})
	}
}

// TestPluginBatchKilled SIGKILLs the plugin while several sessions
// decode in merged steps: every one of them fails with
// ErrBackendCrashed, and sessions opened after the restart give the
// results of running alone.
func TestPluginBatchKilled(t *testing.T) {
	path, err := refdata.Path("models", "stories260K.gguf")
	if err != nil {
		t.Fatal(err)
	}
	s := batchPlugin(t, "reference")
	ctx := context.Background()
	mi, err := s.LoadModel(ctx, backends.LoadRequest{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	const sessions = 6
	ps := batchPrompts(sessions, mi.NVocab)
	alone := make([]batchRun, sessions)
	for i, p := range ps {
		if alone[i], err = batchDecode(ctx, s, mi.ID, p, 8, nil, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	// Sessions that decode until the plugin dies (at most 100 steps
	// each: the context of 128 holds them).
	var started sync.WaitGroup
	errs := make([]error, sessions)
	var wg sync.WaitGroup
	var inflight, peak atomic.Int32
	for i, p := range ps {
		wg.Add(1)
		started.Add(1)
		go func() {
			defer wg.Done()
			sid, err := s.OpenSession(ctx, mi.ID, 256)
			if err != nil {
				errs[i] = err
				started.Done()
				return
			}
			in := p
			for step := 0; step < 200; step++ {
				inflight.Add(1)
				n := inflight.Load()
				for q := peak.Load(); n > q && !peak.CompareAndSwap(q, n); q = peak.Load() {
				}
				res, err := s.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: in, Want: backends.WantSample})
				inflight.Add(-1)
				if step == 4 {
					started.Done()
				}
				if err != nil {
					errs[i] = err
					if step < 4 {
						started.Done()
					}
					return
				}
				in = []int32{res.Token}
			}
			errs[i] = errors.New("the plugin was not killed within 200 steps")
		}()
	}
	started.Wait()
	pid := s.PID()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, backends.ErrBackendCrashed) {
			t.Errorf("session %d: %v, want ErrBackendCrashed", i, err)
		}
	}
	t.Logf("killed plugin %d with %d decodes in flight at most", pid, peak.Load())
	// The restarted plugin serves new sessions exactly as before.
	var wg2 sync.WaitGroup
	for i, p := range ps {
		wg2.Add(1)
		go func() {
			defer wg2.Done()
			var r batchRun
			var err error
			deadline := time.Now().Add(20 * time.Second)
			for {
				r, err = batchDecode(ctx, s, mi.ID, p, 8, nil, nil, nil)
				if err == nil || time.Now().After(deadline) || !errors.Is(err, backends.ErrBackendCrashed) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if err != nil {
				t.Errorf("session %d after the restart: %v", i, err)
				return
			}
			for step := range r.ids {
				if r.ids[step] != alone[i].ids[step] || refdata.NMSE(r.logits[step], alone[i].logits[step]) > 1e-5 {
					t.Errorf("session %d after the restart differs from alone at step %d", i, step)
					return
				}
			}
		}()
	}
	wg2.Wait()
}

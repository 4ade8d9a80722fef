package conformance

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/internal/refdata"
	"github.com/realmrt/realm/loader"
)

// Target is one backend plugin to run the suite against.
type Target struct {
	Name string
	Spec loader.PluginSpec
	// GPU marks a backend that needs a device; it is skipped, with the
	// probe's reason, when it reports none usable.
	GPU bool
	// Skip, when set, is why this backend cannot run on this machine.
	Skip string
	// NotBuilt reports that the only reason to skip is a plugin binary
	// that has not been built (a caller that builds it may run it).
	NotBuilt bool
}

// Targets lists the backends of cfg the suite should run: all of them
// for which == "all" (or ""), else the one named. A backend this machine
// cannot run (another architecture, a missing CPU feature, a binary not
// built) comes back with Skip set to the reason, never silently dropped.
func Targets(cfg *loader.Config, m loader.Machine, which string) ([]Target, error) {
	var out []Target
	for _, b := range cfg.Backends {
		if which != "" && which != "all" && which != b.Name {
			continue
		}
		t := Target{Name: b.Name, GPU: b.GPU, Spec: loader.PluginSpec{Name: b.Name, Binary: b.Binary, Args: b.Args, Env: b.Env, Threads: b.Threads}}
		have := map[string]bool{}
		for _, f := range m.Features {
			have[f] = true
		}
		var missing []string
		for _, f := range b.Requires {
			if !have[f] {
				missing = append(missing, f)
			}
		}
		switch {
		case b.Arch != loader.ArchAny && b.Arch != m.Arch:
			t.Skip = fmt.Sprintf("needs %s, this machine is %s", b.Arch, m.Arch)
			if b.Arch == "arm64" {
				t.Skip += " (make test runs it under qemu: scripts/neon-test.sh)"
			}
		case len(missing) > 0:
			t.Skip = "CPU lacks " + strings.Join(missing, ", ")
		default:
			if _, err := os.Stat(b.Binary); err != nil {
				t.Skip, t.NotBuilt = "binary not built ("+b.Binary+"): run make", true
			}
		}
		out = append(out, t)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("conformance: no backend %q in the configuration", which)
	}
	return out, nil
}

// RunTarget starts the target's plugin under a Supervisor and runs the
// op, model and fault cases through it. ref is the yardstick.
func RunTarget(ctx context.Context, t Target, ref backends.Backend, opts Options, log hclog.Logger) *Report {
	if t.Skip != "" {
		return &Report{Backend: t.Name, Reason: "skipped: " + t.Skip}
	}
	start := time.Now()
	sup, err := loader.NewSupervisor(ctx, loader.SupervisorConfig{
		Plugins: []loader.PluginSpec{t.Spec}, Logger: log,
		MaxRestarts: 50, Backoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		StartTimeout: 60 * time.Second,
	})
	if err != nil {
		rep := &Report{Backend: t.Name}
		rep.Add(Result{Kind: "fault", Case: "plugin/start", NMSE: -1, Status: Fail, Detail: err.Error()})
		return rep
	}
	defer sup.Close()
	if t.GPU {
		if pr := loader.JudgeBackend(ctx, sup, true); pr.Veto != "" {
			return &Report{Backend: t.Name, Reason: "skipped: " + pr.Veto, Duration: time.Since(start).Seconds()}
		}
	}
	rep := Run(ctx, t.Name, sup, ref, opts)
	if opts.Filter == nil || opts.Filter.MatchString("abi/") {
		if opts.ABIGuest == nil {
			rep.Add(Result{Kind: "abi", Case: "abi/*", NMSE: -1, Status: Skip, Detail: "ABI guest not built (make builds bin/conformance/abiguest.wasm)"})
		} else {
			for _, r := range RunABI(ctx, sup, t.Name, opts.ABIGuest, opts.ReferenceDir, log) {
				rep.Add(r)
			}
		}
	}
	if opts.Filter == nil || opts.Filter.MatchString("fault/kill-mid-decode") {
		rep.Add(faultKillMidDecode(ctx, sup, opts.ReferenceDir))
	}
	rep.Duration = time.Since(start).Seconds()
	return rep
}

// faultKillMidDecode kills the plugin with SIGKILL in the middle of a
// greedy generation and checks the supervision promises: the call fails
// with a typed error, the old session is rejected, and the next
// generation on the same model handle gives llama.cpp's ids.
func faultKillMidDecode(ctx context.Context, sup *loader.Supervisor, refDir string) Result {
	res := Result{Kind: "fault", Case: "fault/kill-mid-decode", Types: "stories260K.gguf", NMSE: -1, Limit: LimitExact}
	fail := func(format string, args ...any) Result {
		res.Status, res.Detail = Fail, fmt.Sprintf(format, args...)
		return res
	}
	if refDir == "" {
		res.Status, res.Detail = Skip, "no reference directory"
		return res
	}
	start := time.Now()
	out, err := refdata.LoadOutputFrom(refDir, "stories260K.once-upon")
	if err != nil {
		return fail("%v", err)
	}
	mi, err := sup.LoadModel(ctx, backends.LoadRequest{Path: filepath.Join(refDir, "models", "stories260K.gguf")})
	if err != nil {
		return fail("load: %v", err)
	}
	defer sup.UnloadModel(context.WithoutCancel(ctx), mi.ID)

	greedy := func(sid backends.SessionID, n int, killAt int) ([]int32, error) {
		var ids []int32
		feed := out.PromptIDs
		for i := 0; i < n; i++ {
			if i == killAt {
				if err := syscall.Kill(sup.PID(), syscall.SIGKILL); err != nil {
					return ids, fmt.Errorf("kill: %w", err)
				}
			}
			dr, err := sup.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: feed, Want: backends.WantSample, Sample: backends.SampleParams{}})
			if err != nil {
				return ids, err
			}
			ids = append(ids, dr.Token)
			feed = []int32{dr.Token}
		}
		return ids, nil
	}
	sid, err := sup.OpenSession(ctx, mi.ID, 256)
	if err != nil {
		return fail("open session: %v", err)
	}
	restarts := sup.Restarts()
	_, err = greedy(sid, len(out.GenIDs), 20)
	if !errors.Is(err, backends.ErrBackendCrashed) && !errors.Is(err, backends.ErrStaleHandle) {
		return fail("decode after SIGKILL: got %v, want ErrBackendCrashed or ErrStaleHandle", err)
	}
	if _, err := sup.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: []int32{1}, Want: backends.WantSample}); !errors.Is(err, backends.ErrStaleHandle) && !errors.Is(err, backends.ErrBackendCrashed) {
		return fail("old session after restart: got %v, want ErrStaleHandle", err)
	}
	sid2, err := sup.OpenSession(ctx, mi.ID, 256)
	if err != nil {
		return fail("open session after restart: %v", err)
	}
	defer sup.CloseSession(context.WithoutCancel(ctx), sid2)
	ids, err := greedy(sid2, len(out.GenIDs), -1)
	if err != nil {
		return fail("generation after restart: %v", err)
	}
	for i := range out.GenIDs {
		if ids[i] != out.GenIDs[i] {
			return fail("after restart, id %d is %d, want %d", i, ids[i], out.GenIDs[i])
		}
	}
	if sup.Restarts() <= restarts {
		return fail("supervisor reports %d restarts, want more than %d", sup.Restarts(), restarts)
	}
	res.Millis = float64(time.Since(start).Microseconds()) / 1000
	res.Status = Pass
	res.Detail = fmt.Sprintf("typed error, stale session rejected, %d reference ids after restart", len(ids))
	return res
}

// RunPluginBoundary runs the fault cases that concern the plugin
// boundary itself rather than one backend: a plugin that exits at start
// and one that answers the handshake with a wrong protocol version. Both
// must give their typed error promptly.
func RunPluginBoundary(ctx context.Context, log hclog.Logger) *Report {
	start := time.Now()
	rep := &Report{Backend: "plugin-boundary"}
	cases := []struct {
		name   string
		script string
		want   error
	}{
		{"fault/exit-at-start", "echo 'fatal: cannot start' >&2; exit 3", backends.ErrPluginStart},
		{"fault/wrong-protocol", "echo '1|99|unix|/nonexistent/realm.sock|grpc'; exec sleep 30", backends.ErrProtocolMismatch},
	}
	for _, c := range cases {
		res := Result{Kind: "fault", Case: c.name, NMSE: -1, Limit: LimitExact}
		t0 := time.Now()
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		sup, err := loader.NewSupervisor(cctx, loader.SupervisorConfig{
			Plugins:     []loader.PluginSpec{{Name: c.name, Binary: "/bin/sh", Args: []string{"-c", c.script}}},
			Logger:      log,
			MaxRestarts: 1, Backoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond,
			StartTimeout: 10 * time.Second,
		})
		cancel()
		res.Millis = float64(time.Since(t0).Microseconds()) / 1000
		switch {
		case err == nil:
			sup.Close()
			res.Status, res.Detail = Fail, "the supervisor accepted the plugin"
		case !errors.Is(err, c.want):
			res.Status, res.Detail = Fail, fmt.Sprintf("got %v, want %v", err, c.want)
		default:
			res.Status, res.Detail = Pass, firstLine(err.Error())
		}
		rep.Add(res)
	}
	rep.Duration = time.Since(start).Seconds()
	return rep
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 160 {
		s = s[:157] + "..."
	}
	return s
}

// Names returns the backend names of targets, sorted.
func Names(ts []Target) []string {
	var n []string
	for _, t := range ts {
		n = append(n, t.Name)
	}
	sort.Strings(n)
	return n
}

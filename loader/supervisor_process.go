// The plugin process: start, reload after a restart, stop, fallback to the next spec.

package loader

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/realmrt/realm/backends"
)

// bringUp starts a plugin, falling back along cfg.Plugins, and (when
// reload is set) loads the models the supervisor holds into it. It
// returns the first instance that works, or the terminal error.
func (s *Supervisor) bringUp(reload bool) (*instance, error) {
	var lastErr error
	for {
		s.mu.Lock()
		idx := s.specIdx
		now := time.Now()
		recent := s.failures[:0]
		for _, t := range s.failures {
			if now.Sub(t) < s.cfg.RestartWindow {
				recent = append(recent, t)
			}
		}
		s.failures = recent
		if len(recent) > s.cfg.MaxRestarts || errors.Is(lastErr, backends.ErrProtocolMismatch) {
			if idx+1 >= len(s.cfg.Plugins) {
				s.mu.Unlock()
				if lastErr == nil {
					lastErr = fmt.Errorf("%w: plugin %q failed %d times within %v", backends.ErrPluginStart,
						s.cfg.Plugins[idx].Name, len(recent), s.cfg.RestartWindow)
				}
				return nil, fmt.Errorf("loader: no backend plugin could be started (tried %s): %w", s.specNames(), lastErr)
			}
			s.log.Warn("falling back to the next backend plugin", "from", s.cfg.Plugins[idx].Name,
				"to", s.cfg.Plugins[idx+1].Name, "failures", len(recent), "error", lastErr)
			idx++
			s.specIdx, s.failures = idx, nil
		}
		nFail := len(s.failures)
		s.mu.Unlock()
		if nFail > 1 { // the first restart after a failure is immediate
			d := s.cfg.MaxBackoff
			if nFail-2 < 30 {
				d = min(s.cfg.Backoff<<(nFail-2), s.cfg.MaxBackoff)
			}
			t := time.NewTimer(d)
			select {
			case <-s.ctx.Done():
				t.Stop()
				return nil, ErrClosed
			case <-t.C:
			}
		}
		if err := s.ctx.Err(); err != nil {
			return nil, ErrClosed
		}
		inst, err := s.start(idx)
		if err == nil && reload {
			if err = s.reload(inst); err != nil {
				inst.cancel(err)
				inst.stop(false)
				s.setLastErrors(inst)
			}
		}
		if err == nil {
			return inst, nil
		}
		lastErr = err
		s.log.Error("backend plugin failed to start", "plugin", s.cfg.Plugins[idx].Name, "error", err)
		s.mu.Lock()
		s.failures = append(s.failures, time.Now())
		s.mu.Unlock()
	}
}

func (s *Supervisor) specNames() string {
	names := make([]string, len(s.cfg.Plugins))
	for i, p := range s.cfg.Plugins {
		names[i] = p.Name
	}
	return strings.Join(names, ", ")
}

// reload loads every model the supervisor holds into inst. A model that
// fails to load for a reason other than a crash is marked broken (its
// calls return that error); a crash fails the whole reload.
func (s *Supervisor) reload(inst *instance) error {
	s.mu.Lock()
	type job struct {
		id   backends.ModelID
		path string
	}
	jobs := make([]job, 0, len(s.models))
	for id, m := range s.models {
		jobs = append(jobs, job{id, m.path})
	}
	s.mu.Unlock()
	type done struct {
		inner backends.ModelID
		err   error
	}
	results := make(map[backends.ModelID]done, len(jobs))
	for _, j := range jobs {
		ctx, cancel := context.WithTimeout(inst.ctx, s.cfg.StartTimeout+time.Minute)
		mi, err := inst.backend.LoadModel(ctx, backends.LoadRequest{Path: j.path})
		cancel()
		if err != nil && (errors.Is(err, backends.ErrBackendCrashed) || inst.ctx.Err() != nil) {
			return fmt.Errorf("%w: plugin %q died reloading %s: %w", backends.ErrPluginStart, inst.spec.Name, j.path, err)
		}
		if err != nil {
			s.log.Error("reloading model after restart failed", "path", j.path, "error", err)
			results[j.id] = done{err: fmt.Errorf("loader: model %d (%s) could not be reloaded after a plugin restart: %w", j.id, j.path, err)}
			continue
		}
		results[j.id] = done{inner: mi.ID}
	}
	s.mu.Lock()
	var orphans []backends.ModelID
	for id, r := range results {
		m, ok := s.models[id]
		if !ok { // unloaded meanwhile
			if r.err == nil {
				orphans = append(orphans, r.inner)
			}
			continue
		}
		m.inner, m.epoch, m.err = r.inner, inst.epoch, r.err
	}
	s.mu.Unlock()
	for _, id := range orphans {
		_ = inst.backend.UnloadModel(inst.ctx, id)
	}
	return nil
}

// start spawns Plugins[idx] and checks that it speaks our protocol.
func (s *Supervisor) start(idx int) (*instance, error) {
	spec := s.cfg.Plugins[idx]
	s.mu.Lock()
	s.epoch++
	epoch := s.epoch
	s.mu.Unlock()

	inst := &instance{spec: spec, epoch: epoch, stderr: newStderrTail(maxErrorLines), release: make(chan struct{}), done: make(chan struct{})}
	inst.ctx, inst.cancel = context.WithCancelCause(s.ctx)
	began := time.Now()

	cmd := exec.Command(spec.Binary, spec.Args...)
	// The host's environment, then the spec's, then ours: exec keeps the
	// last value of a repeated key. (go-plugin's own variables follow.)
	cmd.Env = append(append(os.Environ(), spec.Env...),
		backends.EnvThreads+"="+strconv.Itoa(spec.Threads),
		backends.EnvHostPID+"="+strconv.Itoa(os.Getpid()),
		plugin.EnvUnixSocketDir+"="+s.sockDir)
	cmd.SysProcAttr = sysProcAttr()
	clientCfg := &plugin.ClientConfig{
		HandshakeConfig:  backends.Handshake(),
		Plugins:          backends.PluginMap(nil),
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		// Not Managed: go-plugin keeps managed clients in a global list
		// that only grows (one entry per restart, never removed). The
		// supervisor stops its plugins itself, and the parent-death
		// signal covers a host that dies without Close.
		Managed:         false,
		SkipHostEnv:     true, // cmd.Env has it already
		StartTimeout:    s.cfg.StartTimeout,
		Stderr:          inst.stderr,
		SyncStdout:      nil,
		SyncStderr:      nil,
		Logger:          s.log.Named(spec.Name),
		GRPCDialOptions: backends.DialOptions(),
	}
	// fail reaps the process first, so that the error carries its last
	// stderr lines complete.
	fail := func(err error) error {
		inst.cancel(err)
		inst.stop(false)
		s.setLastErrors(inst)
		if errors.Is(err, backends.ErrProtocolMismatch) {
			return err
		}
		return s.startError(inst, err)
	}
	if err := inst.spawn(clientCfg); err != nil {
		return nil, fail(err)
	}
	rpc, err := inst.client.Client()
	if err != nil {
		return nil, fail(err)
	}
	raw, err := rpc.Dispense(backends.PluginName)
	if err != nil {
		return nil, fail(err)
	}
	b, isBackend := raw.(*backends.GRPCClient)
	gc, isGRPC := rpc.(*plugin.GRPCClient)
	if !isBackend || !isGRPC {
		return nil, fail(fmt.Errorf("unexpected plugin client %T / %T", raw, rpc))
	}
	inst.backend, inst.conn = b, gc.Conn

	ctx, cancel := context.WithTimeout(inst.ctx, s.cfg.StartTimeout)
	info, pid, err := b.InfoPID(ctx)
	cancel()
	if err != nil {
		return nil, fail(fmt.Errorf("info: %w", err))
	}
	if info.ProtocolVersion != backends.ProtocolVersion {
		return nil, fail(fmt.Errorf("loader: plugin %q (%s) speaks backend protocol %d, the host %d: %w",
			spec.Name, spec.Binary, info.ProtocolVersion, backends.ProtocolVersion, backends.ErrProtocolMismatch))
	}
	if pid != inst.pid {
		s.log.Warn("plugin reports another pid than the one started", "plugin", spec.Name, "started", inst.pid, "reported", pid)
	}
	inst.info = info
	inst.startup = time.Since(began)
	s.log.Debug("backend plugin started", "plugin", spec.Name, "pid", inst.pid, "epoch", epoch,
		"version", info.Version, "startup", inst.startup)
	return inst, nil
}

// startError types an error of a plugin start: ErrProtocolMismatch for
// a go-plugin handshake version mismatch, ErrPluginStart otherwise, with
// the plugin's last error lines.
func (s *Supervisor) startError(inst *instance, err error) error {
	kind := backends.ErrPluginStart
	// go-plugin reports a handshake version mismatch only as text.
	if strings.Contains(strings.ToLower(err.Error()), "incompatible api version") {
		kind = backends.ErrProtocolMismatch
	}
	// go-plugin's messages run over several lines of generic advice;
	// keep the first, and say plainly what an empty handshake means.
	msg, _, _ := strings.Cut(err.Error(), "\n")
	msg = strings.TrimSpace(msg)
	if msg == "Unrecognized remote plugin message:" {
		msg = "no handshake on stdout (the plugin exited or crashed at start)"
	}
	return fmt.Errorf("loader: plugin %q (%s): %w: %s%s", inst.spec.Name, inst.spec.Binary, kind, msg, formatLines(inst.stderr.lines()))
}

func formatLines(lines []string) string {
	if len(lines) == 0 {
		return ""
	}
	return "; plugin stderr: " + strings.Join(lines, " | ")
}

func (s *Supervisor) setLastErrors(inst *instance) {
	lines := inst.stderr.lines()
	s.mu.Lock()
	s.lastErrors = lines
	s.mu.Unlock()
}

// instance is one plugin process.
type instance struct {
	spec    PluginSpec
	epoch   uint32
	client  *plugin.Client
	backend *backends.GRPCClient
	conn    *grpc.ClientConn
	pid     int
	proc    *os.Process // a pidfd-backed handle where the OS has them: safe to signal after exit
	addr    string      // the plugin's Unix socket, removed after a crash
	info    *backends.Info
	startup time.Duration
	stderr  *stderrTail

	ctx    context.Context // cancelled when the instance is taken out of service
	cancel context.CancelCauseFunc

	release  chan struct{} // lets the spawning thread go
	stopOnce sync.Once
	done     chan struct{} // closed when the process is reaped
}

// spawn starts the process from a goroutine locked to its OS thread
// that stays locked until the process is gone: the parent-death signal
// (Linux) fires when the *thread* that forked the child exits, and Go
// may end a thread whose locked goroutine returns.
func (inst *instance) spawn(cfg *plugin.ClientConfig) error {
	type result struct {
		client *plugin.Client
		addr   string
		err    error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		c := plugin.NewClient(cfg)
		addr, err := c.Start()
		r := result{client: c, err: err}
		if addr != nil && addr.Network() == "unix" {
			r.addr = addr.String()
		}
		ch <- r
		if err != nil {
			return
		}
		<-inst.release
	}()
	r := <-ch
	inst.client = r.client
	inst.addr = r.addr
	if r.err != nil {
		return r.err
	}
	pid, err := strconv.Atoi(r.client.ID())
	if err != nil {
		return fmt.Errorf("plugin id %q is not a pid: %w", r.client.ID(), err)
	}
	inst.pid = pid
	if p, err := os.FindProcess(pid); err == nil {
		inst.proc = p
	}
	return nil
}

// stop ends the process: with graceful, go-plugin's shutdown first;
// otherwise SIGKILL at once. It reaps the process, waits for its output
// to drain and removes its socket; safe to call more than once.
func (inst *instance) stop(graceful bool) {
	inst.stopOnce.Do(func() {
		if inst.client != nil {
			if !graceful && inst.proc != nil {
				_ = inst.proc.Kill()
			}
			inst.client.Kill() // waits for the process and its pipes
		}
		if inst.proc != nil {
			_ = inst.proc.Release()
		}
		if inst.addr != "" {
			_ = os.Remove(inst.addr)
		}
		close(inst.release)
		close(inst.done)
	})
}

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
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/realmrt/realm/backends"
)

// breaker is the circuit breaker of one PluginSpec: its recent
// failures, and while open, when it may be tried again.
type breaker struct {
	failures  []time.Time // within RestartWindow
	openUntil time.Time   // zero: closed
	trips     int         // in a row, for the cooldown's doubling
	lastErr   error       // of the latest failure
	lastAt    time.Time
}

// recordFailure counts a failure of Plugins[idx] (a crash or a failed
// start) and opens its breaker when there were more than MaxRestarts
// within RestartWindow, or at once for a protocol mismatch. s.mu must
// be held. It returns whether the breaker opened.
func (s *Supervisor) recordFailure(idx int, err error) bool {
	b := &s.breakers[idx]
	now := time.Now()
	recent := b.failures[:0]
	for _, t := range b.failures {
		if now.Sub(t) < s.cfg.RestartWindow {
			recent = append(recent, t)
		}
	}
	b.failures = append(recent, now)
	b.lastErr, b.lastAt = err, now
	if len(b.failures) <= s.cfg.MaxRestarts && !errors.Is(err, backends.ErrProtocolMismatch) {
		return false
	}
	s.trip(idx, err)
	return true
}

// trip opens the breaker of Plugins[idx]. s.mu must be held.
func (s *Supervisor) trip(idx int, err error) {
	b := &s.breakers[idx]
	now := time.Now()
	d := s.cfg.MaxCooldown
	if b.trips < 30 {
		d = min(s.cfg.Cooldown<<b.trips, s.cfg.MaxCooldown)
	}
	b.trips++
	b.failures = nil
	b.openUntil = now.Add(d)
	s.log.Warn("backend plugin circuit open", "plugin", s.cfg.Plugins[idx].Name, "retry_in", d, "error", err)
}

// pick returns the most preferred plugin whose breaker is closed (or
// whose cooldown has passed), or -1 and how long until one is. s.mu
// must be held.
func (s *Supervisor) pick(below int) (int, time.Duration) {
	now := time.Now()
	wait := time.Duration(-1)
	for i := 0; i < below; i++ {
		until := s.breakers[i].openUntil
		if !now.Before(until) {
			return i, 0
		}
		if d := until.Sub(now); wait < 0 || d < wait {
			wait = d
		}
	}
	return -1, wait
}

// bringUp starts a plugin, the most preferred whose breaker allows it,
// and (when reload is set) loads the models the supervisor holds into
// it. With initial set (NewSupervisor) it gives up, with the last
// error, once every breaker has opened. Otherwise it never gives up:
// while every breaker is open it reports the supervisor unavailable
// (calls fail fast) and waits for the first cooldown to pass. It
// returns ErrClosed when the supervisor closes.
func (s *Supervisor) bringUp(reload, initial bool) (*instance, error) {
	var lastErr error
	for {
		if err := s.ctx.Err(); err != nil {
			return nil, ErrClosed
		}
		s.mu.Lock()
		idx, wait := s.pick(len(s.cfg.Plugins))
		if idx < 0 {
			if lastErr == nil {
				lastErr = s.latestFailure()
			}
			if initial {
				s.mu.Unlock()
				return nil, fmt.Errorf("loader: no backend plugin could be started (tried %s): %w", s.specNames(), lastErr)
			}
			s.unavail = fmt.Errorf("%w: no backend plugin is running: every plugin (%s) failed repeatedly; retrying in %v: %w",
				backends.ErrBackendCrashed, s.specNames(), wait.Round(time.Millisecond), lastErr)
			closeReady(s.ready) // waiters see unavail and fail fast
			s.mu.Unlock()
			if !s.sleep(wait) {
				return nil, ErrClosed
			}
			continue
		}
		nFail := len(s.breakers[idx].failures)
		s.mu.Unlock()
		if nFail > 1 { // the first restart after a failure is immediate
			d := s.cfg.MaxBackoff
			if nFail-2 < 30 {
				d = min(s.cfg.Backoff<<(nFail-2), s.cfg.MaxBackoff)
			}
			if !s.sleep(d) {
				return nil, ErrClosed
			}
		}
		inst, err := s.start(idx)
		if err == nil && reload {
			var res map[backends.ModelID]reloaded
			if res, err = s.loadAll(inst); err == nil {
				s.commitReload(inst, res)
			} else {
				inst.cancel(err)
				inst.stop(false)
				s.setLastErrors(inst)
			}
		}
		if err == nil {
			s.mu.Lock()
			if s.unavail != nil {
				// ready was closed to fail callers fast; callers arriving
				// before the new plugin is installed wait again.
				s.unavail = nil
				s.ready = make(chan struct{})
			}
			s.breakers[idx].openUntil = time.Time{}
			s.mu.Unlock()
			return inst, nil
		}
		if s.ctx.Err() != nil {
			return nil, ErrClosed
		}
		lastErr = err
		s.log.Error("backend plugin failed to start", "plugin", s.cfg.Plugins[idx].Name, "error", err)
		s.mu.Lock()
		if s.recordFailure(idx, err) && idx+1 < len(s.cfg.Plugins) {
			s.log.Warn("falling back to the next backend plugin", "from", s.cfg.Plugins[idx].Name, "error", err)
		}
		s.mu.Unlock()
	}
}

// latestFailure returns the cause of the latest failure of any plugin.
// s.mu must be held.
func (s *Supervisor) latestFailure() error {
	var last breaker
	for _, b := range s.breakers {
		if b.lastErr != nil && b.lastAt.After(last.lastAt) {
			last = b
		}
	}
	if last.lastErr == nil {
		return errors.New("no failure recorded")
	}
	return last.lastErr
}

// sleep waits d or until the supervisor closes (false).
func (s *Supervisor) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-s.ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (s *Supervisor) specNames() string {
	names := make([]string, len(s.cfg.Plugins))
	for i, p := range s.cfg.Plugins {
		names[i] = p.Name
	}
	return strings.Join(names, ", ")
}

// reloaded is the outcome of loading one held model into a new process.
type reloaded struct {
	inner backends.ModelID
	err   error
}

// loadAll loads every model the supervisor holds into inst. A model
// that fails to load for a reason other than a crash is marked broken
// (its calls return that error); a crash fails the whole reload. The
// results take effect with commitReload.
func (s *Supervisor) loadAll(inst *instance) (map[backends.ModelID]reloaded, error) {
	s.mu.Lock()
	type job struct {
		id     backends.ModelID
		path   string
		kv     uint64
		verify func(context.Context) error
	}
	jobs := make([]job, 0, len(s.models))
	for id, m := range s.models {
		jobs = append(jobs, job{id, m.path, m.kvBudget, m.verify})
	}
	s.mu.Unlock()
	results := make(map[backends.ModelID]reloaded, len(jobs))
	for _, j := range jobs {
		ctx, cancel := context.WithTimeout(inst.ctx, s.cfg.StartTimeout+time.Minute)
		inner, err := s.reloadOne(ctx, inst, backends.LoadRequest{Path: j.path, KVBudget: j.kv}, j.verify)
		cancel()
		if err != nil && (errors.Is(err, backends.ErrBackendCrashed) || inst.ctx.Err() != nil) {
			return nil, fmt.Errorf("%w: plugin %q died reloading %s: %w", backends.ErrPluginStart, inst.spec.Name, j.path, err)
		}
		if err != nil {
			s.log.Error("reloading model after restart failed", "path", j.path, "error", err)
			results[j.id] = reloaded{err: fmt.Errorf("loader: model %d (%s) could not be reloaded after a plugin restart: %w", j.id, j.path, err)}
			continue
		}
		results[j.id] = reloaded{inner: inner}
	}
	return results, nil
}

// errVerify marks a reload refused by the model's verify function.
type errVerify struct{ err error }

func (e errVerify) Error() string { return "verifying the file before reloading: " + e.err.Error() }
func (e errVerify) Unwrap() error { return e.err }

// reloadOne verifies (when the model has a verify function) and loads
// the model of req into inst, returning its id there.
func (s *Supervisor) reloadOne(ctx context.Context, inst *instance, req backends.LoadRequest, verify func(context.Context) error) (backends.ModelID, error) {
	if verify != nil {
		if err := verify(ctx); err != nil {
			return 0, errVerify{err}
		}
	}
	mi, err := inst.backend.LoadModel(ctx, req)
	if err != nil {
		return 0, err
	}
	return mi.ID, nil
}

// retryDelay is how long a model that failed to reload waits before the
// next attempt: 1s, doubling with each failure, at most a minute.
func retryDelay(retries int) time.Duration {
	if retries >= 6 {
		return time.Minute
	}
	return time.Second << retries
}

// commitReload points the held models at their ids in inst and unloads
// from inst those unloaded meanwhile.
func (s *Supervisor) commitReload(inst *instance, results map[backends.ModelID]reloaded) {
	s.mu.Lock()
	orphans := s.commitLocked(inst, results)
	s.mu.Unlock()
	s.unloadOrphans(inst, orphans)
}

// commitLocked is commitReload under s.mu; it returns the orphans.
func (s *Supervisor) commitLocked(inst *instance, results map[backends.ModelID]reloaded) []backends.ModelID {
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
		if r.err != nil {
			m.failedAt = time.Now()
		}
	}
	return orphans
}

func (s *Supervisor) unloadOrphans(inst *instance, orphans []backends.ModelID) {
	for _, id := range orphans {
		ctx, cancel := context.WithTimeout(inst.ctx, s.cfg.UnloadTimeout)
		_ = inst.backend.UnloadModel(ctx, id)
		cancel()
	}
}

// start spawns Plugins[idx] and checks that it speaks our protocol.
func (s *Supervisor) start(idx int) (*instance, error) {
	spec := s.cfg.Plugins[idx]
	s.mu.Lock()
	s.epoch++
	epoch := s.epoch
	s.mu.Unlock()

	inst := &instance{spec: spec, idx: idx, epoch: epoch, stderr: newStderrTail(maxErrorLines), release: make(chan struct{}), done: make(chan struct{})}
	inst.ctx, inst.cancel = context.WithCancelCause(s.ctx)
	began := time.Now()
	inst.began = began

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
		VersionedPlugins: anyVersion(),
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
	if v := inst.client.NegotiatedVersion(); v != backends.ProtocolVersion {
		return nil, fail(fmt.Errorf("loader: plugin %q (%s) speaks backend protocol %d in its handshake, the host %d: %w",
			spec.Name, spec.Binary, v, backends.ProtocolVersion, backends.ErrProtocolMismatch))
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

// maxHandshakeVersion bounds the handshake versions the host accepts so
// that it can tell a mismatch itself (see anyVersion).
const maxHandshakeVersion = 256

// anyVersion offers the plugin every handshake version up to
// maxHandshakeVersion: go-plugin reports a version it does not accept
// only as text, so the host accepts them all and compares the
// negotiated version with its own (a typed ErrProtocolMismatch).
func anyVersion() map[int]plugin.PluginSet {
	m := make(map[int]plugin.PluginSet, maxHandshakeVersion)
	for v := 1; v <= maxHandshakeVersion; v++ {
		m[v] = backends.PluginMap(nil)
	}
	return m
}

// startError types an error of a plugin start as ErrPluginStart, with
// the plugin's last error lines.
func (s *Supervisor) startError(inst *instance, err error) error {
	kind := backends.ErrPluginStart
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
	spec  PluginSpec
	idx   int // in cfg.Plugins
	epoch uint32
	began time.Time
	// inflight counts calls in progress (taken under Supervisor.mu in
	// acquire), so that a fallback is only replaced while idle.
	inflight atomic.Int64
	client   *plugin.Client
	backend  *backends.GRPCClient
	conn     *grpc.ClientConn
	pid      int
	proc     *os.Process // a pidfd-backed handle where the OS has them: safe to signal after exit
	addr     string      // the plugin's Unix socket, removed after a crash
	info     *backends.Info
	startup  time.Duration
	stderr   *stderrTail

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

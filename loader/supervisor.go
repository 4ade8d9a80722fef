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

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"

	"github.com/realmrt/realm/backends"
)

// ErrClosed is returned by the methods of a closed Supervisor.
var ErrClosed = errors.New("loader: supervisor closed")

// PluginSpec says how to start one backend plugin.
type PluginSpec struct {
	// Name is the backend's name (for logs, Active and errors).
	Name string
	// Binary is the plugin executable; Args its arguments.
	Binary string
	Args   []string
	// Env is added to the host's environment for the plugin.
	Env []string
	// Threads is the number of compute threads the plugin should use
	// (0: one per CPU). It reaches the plugin as REALM_THREADS.
	Threads int
}

// SupervisorConfig configures a Supervisor. Zero durations and counts
// take the defaults documented on each field.
type SupervisorConfig struct {
	// Plugins lists the backends in fallback order, first preferred.
	Plugins []PluginSpec
	// Logger receives the supervisor's log and, under
	// Logger.Named(spec.Name), the plugin's own log lines at their level.
	// nil: no logging.
	Logger hclog.Logger
	// MaxRestarts is how many failures (crashes or failed starts) of one
	// plugin within RestartWindow are tolerated; one more and the
	// supervisor falls back to the next PluginSpec. 0: 3; negative: none.
	MaxRestarts int
	// RestartWindow is the window over which failures count (0: 1 minute).
	RestartWindow time.Duration
	// Backoff is the delay before the second attempt after a failure
	// (the first is immediate); it doubles with each further failure in
	// the window up to MaxBackoff. 0: 100ms and 10s.
	Backoff, MaxBackoff time.Duration
	// PingInterval is the period of the health ping that finds hung
	// plugins (0: 1s); PingTimeout bounds one ping (0: 5s). A plugin's
	// exit is noticed at once, without waiting for a ping.
	PingInterval, PingTimeout time.Duration
	// StartTimeout bounds a plugin's start, handshake and Info (0: 10s).
	StartTimeout time.Duration
}

// maxErrorLines is how many error lines of a plugin's stderr are kept.
const maxErrorLines = 20

func (c *SupervisorConfig) withDefaults() SupervisorConfig {
	out := *c
	if out.Logger == nil {
		out.Logger = hclog.NewNullLogger()
	}
	switch {
	case out.MaxRestarts == 0:
		out.MaxRestarts = 3
	case out.MaxRestarts < 0:
		out.MaxRestarts = 0
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&out.RestartWindow, time.Minute)
	def(&out.Backoff, 100*time.Millisecond)
	def(&out.MaxBackoff, 10*time.Second)
	def(&out.PingInterval, time.Second)
	def(&out.PingTimeout, 5*time.Second)
	def(&out.StartTimeout, 10*time.Second)
	if out.MaxBackoff < out.Backoff {
		out.MaxBackoff = out.Backoff
	}
	return out
}

// Supervisor runs one backend plugin process at a time and is itself a
// backends.Backend: the host calls it, it forwards to the plugin.
//
// It notices a dead plugin at once (the gRPC connection leaves the Ready
// state when the process exits; Unavailable errors; a failing periodic
// Ping for hung plugins), fails the calls in flight with an error
// wrapping backends.ErrBackendCrashed and the plugin's last error lines,
// restarts the plugin with exponential backoff and reloads the models
// it held. Model ids are the supervisor's own and survive restarts;
// session ids carry the epoch (the number of the plugin process) they
// were opened in, and one from a dead process is rejected with an error
// wrapping both backends.ErrStaleHandle and backends.ErrBackendCrashed
// (the session was lost to the crash, however soon the caller comes
// back). After more than MaxRestarts failures within
// RestartWindow it falls back to the next PluginSpec.
type Supervisor struct {
	cfg SupervisorConfig
	log hclog.Logger

	ctx     context.Context // the supervisor's lifetime; Close cancels it
	cancel  context.CancelFunc
	wg      sync.WaitGroup // background goroutines
	sockDir string         // private (0700) directory of the plugins' Unix sockets

	mu          sync.Mutex
	cur         *instance     // the live plugin; nil while (re)starting
	ready       chan struct{} // closed when cur is set, failed or closed
	failed      error         // terminal: no plugin could be started
	closed      bool
	epoch       uint32 // of the newest process started
	specIdx     int
	failures    []time.Time // recent failures of Plugins[specIdx]
	restarts    int
	lastErrors  []string
	models      map[backends.ModelID]*modelEntry
	nextModel   uint64
	sessions    map[backends.SessionID]sessionEntry
	nextSession uint64
}

// modelEntry is a model the supervisor holds, by its stable id.
type modelEntry struct {
	path  string
	info  backends.ModelInfo // ID is the supervisor's id
	inner backends.ModelID   // the id in the process of epoch
	epoch uint32
	err   error // set when reloading it into the current process failed
}

// sessionEntry is a session of the current plugin process.
type sessionEntry struct {
	inner backends.SessionID
	model backends.ModelID
}

var _ backends.Backend = (*Supervisor)(nil)

// NewSupervisor starts the first plugin of cfg.Plugins that starts
// (falling back in order as described on Supervisor) and returns when it
// answers Info. The error wraps backends.ErrPluginStart or
// backends.ErrProtocolMismatch when no plugin could be started. ctx
// bounds the start only; Close ends the supervisor.
func NewSupervisor(ctx context.Context, cfg SupervisorConfig) (*Supervisor, error) {
	if len(cfg.Plugins) == 0 {
		return nil, fmt.Errorf("loader: supervisor: no plugins: %w", backends.ErrInvalidArgument)
	}
	for i, p := range cfg.Plugins {
		if p.Name == "" || p.Binary == "" {
			return nil, fmt.Errorf("loader: supervisor: plugin %d needs a name and a binary: %w", i, backends.ErrInvalidArgument)
		}
		if p.Threads < 0 {
			return nil, fmt.Errorf("loader: supervisor: plugin %q: negative thread count: %w", p.Name, backends.ErrInvalidArgument)
		}
	}
	c := cfg.withDefaults()
	s := &Supervisor{
		cfg:      c,
		log:      c.Logger,
		ready:    make(chan struct{}),
		models:   make(map[backends.ModelID]*modelEntry),
		sessions: make(map[backends.SessionID]sessionEntry),
	}
	dir, err := os.MkdirTemp("", "realm-plugins-")
	if err != nil {
		return nil, fmt.Errorf("loader: supervisor: socket directory: %w", err)
	}
	s.sockDir = dir
	s.ctx, s.cancel = context.WithCancel(context.Background())
	stop := context.AfterFunc(ctx, s.cancel) // ctx ends the start, not the supervisor
	inst, err := s.bringUp(false)
	stop()
	if err != nil {
		s.cancel()
		s.wg.Wait()
		_ = os.RemoveAll(s.sockDir)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("loader: starting backend plugin: %w", ctx.Err())
		}
		return nil, err
	}
	s.mu.Lock()
	s.install(inst)
	s.mu.Unlock()
	return s, nil
}

// Active returns the name of the plugin in use (the last one started
// while restarting).
func (s *Supervisor) Active() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg.Plugins[s.specIdx].Name
}

// Restarts returns how many times a plugin process was started again
// after a failure.
func (s *Supervisor) Restarts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.restarts
}

// PID returns the process id of the live plugin, 0 while none is.
func (s *Supervisor) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		return 0
	}
	return s.cur.pid
}

// LastErrors returns the last error lines the most recently dead plugin
// wrote to stderr (hclog error lines, panics, other raw output).
func (s *Supervisor) LastErrors() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.lastErrors...)
}

// Close stops the plugin (gracefully, then by force) and every
// goroutine of the supervisor. Calls in flight fail.
func (s *Supervisor) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	inst := s.cur
	s.cur = nil
	closeReady(s.ready)
	s.mu.Unlock()
	if inst != nil {
		inst.cancel(ErrClosed)
	}
	s.cancel()
	if inst != nil {
		inst.stop(true)
	}
	s.wg.Wait()
	return os.RemoveAll(s.sockDir)
}

func (s *Supervisor) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func closeReady(ch chan struct{}) {
	select {
	case <-ch:
	default:
		close(ch)
	}
}

// install makes inst the live plugin. s.mu must be held.
func (s *Supervisor) install(inst *instance) {
	s.cur = inst
	closeReady(s.ready)
	s.wg.Add(2)
	go s.watchConn(inst)
	go s.watchPing(inst)
}

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

// markDead takes inst out of service (once) and starts its recovery.
func (s *Supervisor) markDead(inst *instance, cause error) {
	s.mu.Lock()
	if s.cur != inst || s.closed {
		s.mu.Unlock()
		return
	}
	s.cur = nil
	s.ready = make(chan struct{})
	clear(s.sessions)
	s.failures = append(s.failures, time.Now())
	s.mu.Unlock()
	s.log.Error("backend plugin died", "plugin", inst.spec.Name, "pid", inst.pid, "epoch", inst.epoch, "cause", cause)
	inst.cancel(cause)
	s.wg.Add(1)
	go s.recover(inst)
}

// recover reaps a dead plugin and brings up its replacement.
func (s *Supervisor) recover(dead *instance) {
	defer s.wg.Done()
	dead.stop(false)
	s.setLastErrors(dead)
	inst, err := s.bringUp(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if !s.closed {
			s.failed = fmt.Errorf("%w: %w", backends.ErrBackendCrashed, err)
			s.log.Error("backend plugin could not be restarted", "error", err)
		}
		closeReady(s.ready)
		return
	}
	if s.closed {
		inst.cancel(ErrClosed)
		s.mu.Unlock()
		inst.stop(true)
		s.mu.Lock()
		return
	}
	s.restarts++
	s.log.Info("backend plugin restarted", "plugin", inst.spec.Name, "pid", inst.pid, "epoch", inst.epoch, "restarts", s.restarts)
	s.install(inst)
}

// watchConn declares inst dead as soon as its gRPC connection leaves
// the Ready state: a local plugin's connection only breaks when the
// process goes away.
func (s *Supervisor) watchConn(inst *instance) {
	defer s.wg.Done()
	for {
		st := inst.conn.GetState()
		if st != connectivity.Ready {
			s.markDead(inst, fmt.Errorf("connection to plugin lost (%s)", st))
			return
		}
		if !inst.conn.WaitForStateChange(inst.ctx, st) {
			return
		}
	}
}

// watchPing pings inst periodically and declares it dead when it exits
// or stops answering.
func (s *Supervisor) watchPing(inst *instance) {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-inst.ctx.Done():
			return
		case <-t.C:
		}
		if inst.client.Exited() {
			s.markDead(inst, errors.New("plugin process exited"))
			return
		}
		ctx, cancel := context.WithTimeout(inst.ctx, s.cfg.PingTimeout)
		err := inst.backend.Ping(ctx)
		cancel()
		if err != nil && inst.ctx.Err() == nil {
			s.markDead(inst, fmt.Errorf("ping: %w", err))
			return
		}
	}
}

// acquire returns the live plugin, waiting (within ctx) while one is
// being restarted.
func (s *Supervisor) acquire(ctx context.Context) (*instance, error) {
	for {
		s.mu.Lock()
		switch {
		case s.closed:
			s.mu.Unlock()
			return nil, ErrClosed
		case s.failed != nil:
			err := s.failed
			s.mu.Unlock()
			return nil, err
		case s.cur != nil:
			inst := s.cur
			s.mu.Unlock()
			return inst, nil
		}
		ready := s.ready
		s.mu.Unlock()
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the backend plugin to restart: %w", ctx.Err())
		}
	}
}

// do runs fn against the live plugin. If the plugin dies during the
// call (or the call finds it dead), the error wraps ErrBackendCrashed,
// says which plugin died doing what, and carries its last error lines.
func (s *Supervisor) do(ctx context.Context, op string, fn func(ctx context.Context, inst *instance) error) error {
	inst, err := s.acquire(ctx)
	if err != nil {
		return fmt.Errorf("loader: %s: %w", op, err)
	}
	cctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(inst.ctx, cancel)
	err = fn(cctx, inst)
	stop()
	cancel()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil && inst.ctx.Err() == nil {
		return fmt.Errorf("loader: %s: %w", op, ctx.Err())
	}
	if s.isClosed() {
		return fmt.Errorf("loader: %s: %w", op, ErrClosed)
	}
	if inst.ctx.Err() == nil && errors.Is(err, backends.ErrStaleHandle) {
		// A handle of an earlier process: the live one is fine.
		return fmt.Errorf("backend %s: %s: %w", inst.spec.Name, op, err)
	}
	if inst.ctx.Err() != nil || errors.Is(err, backends.ErrBackendCrashed) {
		s.markDead(inst, fmt.Errorf("%s: %w", op, err))
		return s.crashError(inst, op, err)
	}
	return fmt.Errorf("backend %s: %s: %w", inst.spec.Name, op, err)
}

// crashError describes a call that failed because the plugin died. It
// waits briefly for the dead process to be reaped so that its last
// stderr lines are complete.
func (s *Supervisor) crashError(inst *instance, op string, err error) error {
	select {
	case <-inst.done:
	case <-time.After(250 * time.Millisecond):
	}
	msg := err.Error()
	if cause := context.Cause(inst.ctx); cause != nil && !errors.Is(err, backends.ErrBackendCrashed) {
		msg = cause.Error() // the call was cut short because the plugin was found dead
	}
	return fmt.Errorf("%w: plugin %q (pid %d) died during %s: %s%s",
		backends.ErrBackendCrashed, inst.spec.Name, inst.pid, op, msg, formatLines(inst.stderr.lines()))
}

// model returns the current process's id of a supervisor model id.
func (s *Supervisor) model(inst *instance, id backends.ModelID) (backends.ModelID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.models[id]
	switch {
	case !ok:
		return 0, fmt.Errorf("model %d: %w", id, backends.ErrNotFound)
	case m.epoch != inst.epoch && inst.ctx.Err() != nil:
		return 0, fmt.Errorf("plugin process %d is gone: %w", inst.epoch, backends.ErrBackendCrashed)
	case m.err != nil:
		return 0, m.err
	case m.epoch != inst.epoch:
		return 0, fmt.Errorf("model %d is not loaded in plugin process %d: %w", id, inst.epoch, backends.ErrStaleHandle)
	}
	return m.inner, nil
}

// Session ids are epoch<<sessionEpochShift | sequence number.
const sessionEpochShift = 40

// session returns the current process's id of a supervisor session id.
func (s *Supervisor) session(inst *instance, id backends.SessionID) (sessionEntry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	epoch := uint32(uint64(id) >> sessionEpochShift)
	if epoch != inst.epoch {
		if inst.ctx.Err() != nil {
			return sessionEntry{}, fmt.Errorf("plugin process %d is gone: %w", inst.epoch, backends.ErrBackendCrashed)
		}
		if epoch != 0 && epoch < inst.epoch {
			// A process is only replaced after it died, so the session
			// was lost to a crash: the error says both, whether the
			// caller comes back before or after the restart finished.
			return sessionEntry{}, fmt.Errorf("session %#x belongs to plugin process %d, which died and has been restarted (now %d): %w: %w",
				uint64(id), epoch, inst.epoch, backends.ErrStaleHandle, backends.ErrBackendCrashed)
		}
		return sessionEntry{}, fmt.Errorf("session %#x: %w", uint64(id), backends.ErrNotFound)
	}
	e, ok := s.sessions[id]
	if !ok {
		return sessionEntry{}, fmt.Errorf("session %#x: %w", uint64(id), backends.ErrNotFound)
	}
	return e, nil
}

// Info implements backends.Backend: the live plugin's Info.
func (s *Supervisor) Info(ctx context.Context) (*backends.Info, error) {
	var info *backends.Info
	err := s.do(ctx, "info", func(ctx context.Context, inst *instance) error {
		var err error
		info, err = inst.backend.Info(ctx)
		return err
	})
	return info, err
}

// LoadModel implements backends.Backend. The returned ModelInfo.ID is
// the supervisor's and stays valid across plugin restarts.
func (s *Supervisor) LoadModel(ctx context.Context, req backends.LoadRequest) (*backends.ModelInfo, error) {
	var out *backends.ModelInfo
	err := s.do(ctx, "load model", func(ctx context.Context, inst *instance) error {
		mi, err := inst.backend.LoadModel(ctx, req)
		if err != nil {
			return err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.cur != inst {
			return fmt.Errorf("plugin process %d went away after loading %s: %w", inst.epoch, req.Path, backends.ErrBackendCrashed)
		}
		s.nextModel++
		id := backends.ModelID(s.nextModel)
		e := &modelEntry{path: req.Path, info: *mi, inner: mi.ID, epoch: inst.epoch}
		e.info.ID = id
		s.models[id] = e
		info := e.info
		out = &info
		return nil
	})
	return out, err
}

// UnloadModel implements backends.Backend.
func (s *Supervisor) UnloadModel(ctx context.Context, id backends.ModelID) error {
	forget := func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.models, id)
		for sid, e := range s.sessions {
			if e.model == id {
				delete(s.sessions, sid)
			}
		}
	}
	err := s.do(ctx, "unload model", func(ctx context.Context, inst *instance) error {
		s.mu.Lock()
		m, ok := s.models[id]
		broken := ok && m.err != nil
		s.mu.Unlock()
		if broken {
			forget()
			return nil
		}
		inner, err := s.model(inst, id)
		if err != nil {
			return err
		}
		if err := inst.backend.UnloadModel(ctx, inner); err != nil {
			return err
		}
		forget()
		return nil
	})
	if errors.Is(err, backends.ErrBackendCrashed) {
		// The process that held it is gone; do not load it again.
		forget()
		return nil
	}
	return err
}

// OpenSession implements backends.Backend. The session id is valid in
// the current plugin process only.
func (s *Supervisor) OpenSession(ctx context.Context, id backends.ModelID, nCtx int) (backends.SessionID, error) {
	var sid backends.SessionID
	err := s.do(ctx, "open session", func(ctx context.Context, inst *instance) error {
		inner, err := s.model(inst, id)
		if err != nil {
			return err
		}
		isid, err := inst.backend.OpenSession(ctx, inner, nCtx)
		if err != nil {
			return err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.cur != inst {
			return fmt.Errorf("plugin process %d went away after opening a session: %w", inst.epoch, backends.ErrBackendCrashed)
		}
		s.nextSession++
		sid = backends.SessionID(uint64(inst.epoch)<<sessionEpochShift | s.nextSession&(1<<sessionEpochShift-1))
		s.sessions[sid] = sessionEntry{inner: isid, model: id}
		return nil
	})
	return sid, err
}

// Decode implements backends.Backend.
func (s *Supervisor) Decode(ctx context.Context, req backends.DecodeRequest) (*backends.DecodeResult, error) {
	var res *backends.DecodeResult
	err := s.do(ctx, "decode", func(ctx context.Context, inst *instance) error {
		e, err := s.session(inst, req.Session)
		if err != nil {
			return err
		}
		r := req
		r.Session = e.inner
		res, err = inst.backend.Decode(ctx, r)
		return err
	})
	return res, err
}

// Truncate implements backends.Backend.
func (s *Supervisor) Truncate(ctx context.Context, id backends.SessionID, n int) error {
	return s.do(ctx, "truncate", func(ctx context.Context, inst *instance) error {
		e, err := s.session(inst, id)
		if err != nil {
			return err
		}
		return inst.backend.Truncate(ctx, e.inner, n)
	})
}

// CloseSession implements backends.Backend.
func (s *Supervisor) CloseSession(ctx context.Context, id backends.SessionID) error {
	return s.do(ctx, "close session", func(ctx context.Context, inst *instance) error {
		e, err := s.session(inst, id)
		if err != nil {
			return err
		}
		err = inst.backend.CloseSession(ctx, e.inner)
		if err == nil || errors.Is(err, backends.ErrNotFound) {
			s.mu.Lock()
			delete(s.sessions, id)
			s.mu.Unlock()
		}
		return err
	})
}

// TensorOp implements backends.Backend. Weight references name
// supervisor model ids.
func (s *Supervisor) TensorOp(ctx context.Context, req backends.TensorOpRequest) (*backends.TensorOpResult, error) {
	var res *backends.TensorOpResult
	err := s.do(ctx, "tensor op", func(ctx context.Context, inst *instance) error {
		r := req
		r.Inputs = append([]backends.TensorRef(nil), req.Inputs...)
		for i := range r.Inputs {
			if r.Inputs[i].Model == 0 {
				continue
			}
			inner, err := s.model(inst, r.Inputs[i].Model)
			if err != nil {
				return err
			}
			r.Inputs[i].Model = inner
		}
		var err error
		res, err = inst.backend.TensorOp(ctx, r)
		return err
	})
	return res, err
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

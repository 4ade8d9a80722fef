package loader

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

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
	// plugin within RestartWindow are tolerated; one more opens that
	// plugin's circuit breaker and the supervisor falls back to the next
	// PluginSpec. 0: 3; negative: none.
	MaxRestarts int
	// Cooldown is how long a plugin's open breaker stays open before the
	// plugin is tried again (0: 30s); it doubles with each trip in a row
	// up to MaxCooldown (0: 5 minutes). A preferred plugin whose breaker
	// closes is started again and takes over once the running fallback
	// is idle; when every breaker is open the supervisor reports itself
	// unavailable and keeps retrying, never giving up.
	Cooldown, MaxCooldown time.Duration
	// RestartWindow is the window over which failures count (0: 1 minute).
	RestartWindow time.Duration
	// Backoff is the delay before the second attempt after a failure
	// (the first is immediate); it doubles with each further failure in
	// the window up to MaxBackoff. 0: 100ms and 10s.
	Backoff, MaxBackoff time.Duration
	// PingInterval is the period of the health ping that finds hung
	// plugins (0: 1s); PingTimeout bounds one ping (0: 10s); a plugin is
	// declared hung after PingFailures failed pings in a row (0: 3) while
	// its process lives and its connection is up. One slow ping is not a
	// death: a host under pressure (swapping, a GC storm, a CPU-bound
	// burst) delays pings without the plugin being at fault. A plugin's
	// exit or broken connection is noticed at once, without pings.
	PingInterval, PingTimeout time.Duration
	PingFailures              int
	// StartTimeout bounds a plugin's start, handshake and Info (0: 10s).
	StartTimeout time.Duration
	// UnloadTimeout bounds one UnloadModel (0: 10s).
	UnloadTimeout time.Duration
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
	def(&out.PingTimeout, 10*time.Second)
	def(&out.Cooldown, 30*time.Second)
	def(&out.MaxCooldown, 5*time.Minute)
	if out.PingFailures <= 0 {
		out.PingFailures = 3
	}
	if out.MaxCooldown < out.Cooldown {
		out.MaxCooldown = out.Cooldown
	}
	def(&out.StartTimeout, 10*time.Second)
	def(&out.UnloadTimeout, 10*time.Second)
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
// back). After more than MaxRestarts failures within RestartWindow a
// plugin's circuit breaker opens and the supervisor falls back to the
// next PluginSpec; recovery is two-way (see SupervisorConfig.Cooldown).
type Supervisor struct {
	cfg SupervisorConfig
	log hclog.Logger

	ctx     context.Context // the supervisor's lifetime; Close cancels it
	cancel  context.CancelFunc
	wg      sync.WaitGroup // background goroutines
	sockDir string         // private (0700) directory of the plugins' Unix sockets

	mu          sync.Mutex
	cur         *instance     // the live plugin; nil while (re)starting
	ready       chan struct{} // closed when cur is set, unavailable or closed
	unavail     error         // set while every breaker is open (retrying)
	closed      bool
	epoch       uint32    // of the newest process started
	breakers    []breaker // one per PluginSpec
	restarts    int
	lastErrors  []string
	models      map[backends.ModelID]*modelEntry
	nextModel   uint64
	sessions    map[backends.SessionID]sessionEntry
	nextSession uint64
}

// modelEntry is a model the supervisor holds, by its stable id.
type modelEntry struct {
	path     string
	kvBudget uint64                      // LoadRequest.KVBudget, sent again on reload
	verify   func(context.Context) error // run before each reload; nil: none
	info     backends.ModelInfo          // ID is the supervisor's id
	inner    backends.ModelID            // the id in the process of epoch
	epoch    uint32
	err      error // set when reloading it into the current process failed
	// failedAt and retries pace the reload retries of a broken model.
	failedAt time.Time
	retries  int
	retrying bool
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
		breakers: make([]breaker, len(c.Plugins)),
		models:   make(map[backends.ModelID]*modelEntry),
		sessions: make(map[backends.SessionID]sessionEntry),
	}
	dir, err := socketDir(s.log)
	if err != nil {
		return nil, fmt.Errorf("loader: supervisor: socket directory: %w", err)
	}
	s.sockDir = dir
	s.ctx, s.cancel = context.WithCancel(context.Background())
	stop := context.AfterFunc(ctx, s.cancel) // ctx ends the start, not the supervisor
	inst, err := s.bringUp(false, true)
	if !stop() && err == nil {
		// ctx ended the start just as it succeeded: the supervisor's own
		// context is cancelled, so it would be dead on arrival.
		inst.cancel(ctx.Err())
		inst.stop(true)
		err = ctx.Err()
	}
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
	if len(c.Plugins) > 1 {
		s.wg.Add(1)
		go s.watchPreferred()
	}
	return s, nil
}

// Active returns the name of the plugin serving now, "" while none is
// (between a crash and the restart, or while every breaker is open).
func (s *Supervisor) Active() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		return ""
	}
	return s.cur.spec.Name
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

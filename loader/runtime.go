package loader

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Options configures Open.
type Options struct {
	// ConfigPath is the plugins.hcl to read ("" : DefaultConfigFile in
	// the working directory). The CLI resolves --config / REALM_CONFIG.
	ConfigPath string
	// Pin names the backend to use instead of the best ranked one
	// (--backend / REALM_BACKEND); "" selects.
	Pin string
	// Logger receives the loader's, supervisor's and plugins' logs (nil:
	// discard).
	Logger hclog.Logger
	// Machine replaces hardware detection (tests); nil: Detect().
	Machine *Machine
	// Probe replaces the plugin probe used for backends with probe =
	// true; nil: PluginProber.
	Probe Prober
	// Supervisor tunes plugin supervision (restarts, backoff, pings,
	// start timeout); its Plugins and Logger are filled in by Open.
	Supervisor SupervisorConfig
	// Threads, when > 0, overrides every backend's configured thread
	// count (realm bench -t).
	Threads int
}

// Runtime is a configured host: the chosen backend running under a
// supervisor and a model cache over it.
type Runtime struct {
	// Config is the parsed configuration.
	Config *Config
	// Machine is what detection found.
	Machine Machine
	// Decision is the backend selection and its reasons.
	Decision Decision
	// Supervisor is the supervised plugin: a backends.Backend with its
	// supervision methods (Active, Restarts, ...).
	Supervisor *Supervisor
	// Registry resolves model names.
	Registry *Registry
	// Models loads models by name through Backend.
	Models *ModelCache
	// fallbacks are the other eligible backends, started when a model
	// the chosen one cannot run needs one.
	fallbacks []*lazyBackend
}

// Open parses the configuration, detects the machine, probes and selects
// a backend, starts it (with the other eligible backends as fallbacks, or
// the pinned one alone) and builds the model registry and cache. Close
// releases everything.
func Open(ctx context.Context, opts Options) (*Runtime, error) {
	log := opts.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	path := opts.ConfigPath
	if path == "" {
		path = DefaultConfigFile
	}
	cfg, err := LoadConfig(path)
	if err != nil {
		return nil, err
	}
	m := Detect()
	if opts.Machine != nil {
		m = *opts.Machine
	}
	probe := opts.Probe
	if probe == nil {
		probe = PluginProber(log)
	}
	d, err := Select(m, cfg, Preflight(ctx, m, cfg, probe), opts.Pin)
	if err != nil {
		return nil, fmt.Errorf("loader: %w", err)
	}
	log.Info("backend selected", "backend", d.Chosen, "why", d.Why, "order", d.Order)

	sc := opts.Supervisor
	sc.Logger = log
	sc.Plugins = nil
	for _, name := range d.Order {
		b, _ := cfg.Backend(name)
		spec := pluginSpec(b)
		if opts.Threads > 0 {
			spec.Threads = opts.Threads
		}
		sc.Plugins = append(sc.Plugins, spec)
	}
	sup, err := NewSupervisor(ctx, sc)
	if err != nil {
		return nil, fmt.Errorf("loader: starting backend %s: %w", d.Chosen, err)
	}
	// A model the serving backend cannot run (ErrUnsupported: an op,
	// type or shape it lacks) is loaded on the next eligible backend
	// that can, started on first need. A pin leaves no fallbacks.
	var lazies []*lazyBackend
	var fallbacks []Fallback
	for _, name := range d.Order[1:] {
		b, _ := cfg.Backend(name)
		spec := pluginSpec(b)
		if opts.Threads > 0 {
			spec.Threads = opts.Threads
		}
		l := &lazyBackend{spec: spec, sc: sc}
		lazies = append(lazies, l)
		fallbacks = append(fallbacks, Fallback{Name: name, Backend: l.get})
	}
	reg := NewRegistry(cfg)
	rt := &Runtime{
		fallbacks:  lazies,
		Config:     cfg,
		Machine:    m,
		Decision:   d,
		Supervisor: sup,
		Registry:   reg,
		Models: NewModelCache(CacheConfig{
			Registry:    reg,
			Backend:     sup,
			BackendName: sup.Active(),
			BudgetBytes: cfg.MemoryBudget,
			Logger:      log,
			Fallbacks:   fallbacks,
		}),
	}
	return rt, nil
}

// Close unloads every model and stops the backend plugin.
func (rt *Runtime) Close() error {
	return errors.Join(rt.Models.Close(), rt.Supervisor.Close(), closeAll(rt.fallbacks))
}

// pluginSpec turns a backend block into the supervisor's start spec.
func pluginSpec(b *BackendConfig) PluginSpec {
	return PluginSpec{Name: b.Name, Binary: b.Binary, Args: b.Args, Env: b.Env, Threads: b.Threads}
}

// probeTimeout bounds one plugin probe: start, Info and the self-test.
const probeTimeout = 30 * time.Second

// PluginProber returns the Prober that starts the backend's plugin once
// under a Supervisor that does not restart it, judges it with
// JudgeBackend and stops it.
func PluginProber(log hclog.Logger) Prober {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return func(ctx context.Context, b BackendConfig) ProbeResult {
		ctx, cancel := context.WithTimeout(ctx, probeTimeout)
		defer cancel()
		sup, err := NewSupervisor(ctx, SupervisorConfig{
			Plugins:     []PluginSpec{pluginSpec(&b)},
			Logger:      log.Named("probe"),
			MaxRestarts: -1,
		})
		if err != nil {
			return ProbeResult{Probed: true, Veto: fmt.Sprintf("plugin did not start: %v", err)}
		}
		defer sup.Close()
		return JudgeBackend(ctx, sup, b.GPU)
	}
}

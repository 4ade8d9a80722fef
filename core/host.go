// Package core is the Realm WebAssembly host: it runs guest apps (WASI
// command modules) in wazero and serves them the realm_host_* functions
// of package abi, routing models and compute to backends.
//
// One Host serves many runs, concurrently. Each run gets a fresh module
// instance with its own handle tables, limits and output; whatever a run
// leaves open (model references, sessions, tensors) is released when it
// ends, however it ends.
package core

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"

	"github.com/realmrt/realm/abi"
	"github.com/realmrt/realm/internal/grammar"
)

// Defaults applied to zero Policy fields.
const (
	DefaultMemoryBytes = 512 << 20
	DefaultTimeout     = 5 * time.Minute
	DefaultMaxOutput   = 64 << 20
	DefaultTensorBytes = 256 << 20
	DefaultKVBytes     = 2 << 30
	// maxCompiled is how many compiled guests each runtime keeps.
	maxCompiled  = 32
	wasmPageSize = 65536
)

// Errors a run can end with (wrapped; test with errors.Is).
var (
	// ErrDeadline: the run passed its wall-clock limit.
	ErrDeadline = errors.New("run deadline exceeded")
	// ErrOutputLimit: the guest wrote more than the policy's MaxOutput.
	ErrOutputLimit = errors.New("output limit exceeded")
	// ErrTrap: the guest trapped (unreachable, out-of-bounds access,
	// memory growth past the cap, ...).
	ErrTrap = errors.New("guest trapped")
	// ErrCanceled: the caller cancelled the run.
	ErrCanceled = errors.New("run cancelled")
	// ErrInvalidModule: the bytes are not a runnable WASI command module.
	ErrInvalidModule = errors.New("invalid guest module")
)

// Config configures a Host.
type Config struct {
	// Models serves models by name. Required.
	Models Models
	// Logger receives guest stderr, realm_host_log and host events.
	// Nil discards.
	Logger hclog.Logger
	// CacheDir, when set, keeps compiled guests on disk across
	// processes; otherwise compilation is cached in memory.
	CacheDir string
}

// Policy holds the per-app limits of a run. Zero fields take defaults.
type Policy struct {
	// ModelPatterns restricts the model names the guest may load
	// (path.Match patterns, e.g. "stories*"). Nil allows every name; a
	// non-nil empty list allows none.
	ModelPatterns []string
	// MaxTokens caps the tokens a run generates: those of
	// realm_host_generate plus every single-token decode (a step of a
	// guest-driven loop); prompt batches are bounded by the context
	// size instead. 0 is unlimited.
	MaxTokens int
	// MaxContext caps a session's context size; 0 leaves the model's.
	MaxContext int
	// DefaultContext is the size of a session opened with n_ctx 0 (0:
	// as large as MaxContext, the model and MaxKVBytes allow). A server
	// sets it from the request (prompt + max_tokens). realm_host_generate
	// with n_ctx 0 sizes its session from the prompt and max_tokens.
	DefaultContext int
	// MaxKVBytes caps the KV cache bytes of the run's open sessions
	// together (DefaultKVBytes when 0), estimated at f32 from the model's
	// shape; a session opened with n_ctx 0 is shrunk to fit it.
	MaxKVBytes int64
	// Timeout is the run's wall-clock limit (DefaultTimeout when 0).
	Timeout time.Duration
	// MemoryBytes caps the guest's linear memory (DefaultMemoryBytes
	// when 0), rounded down to 64 KiB pages. It covers the guest only:
	// what the host holds for the run is capped by MaxTensorBytes, the
	// plugin's KV caches by MaxKVBytes.
	MemoryBytes uint64
	// MaxOutput caps the bytes written to stdout (DefaultMaxOutput when
	// 0); going past it ends the run with ErrOutputLimit.
	MaxOutput int64
	// MaxTensorBytes caps the host memory held for the run outside the
	// guest (DefaultTensorBytes when 0): tensor data, each session's
	// logits and token history, and the transient copies of a tensor op
	// (its encoded inputs and its result), checked before the op runs.
	// Per-call copies bounded by the ABI's own limits (strings, JSON,
	// token lists) and the compiled guest (shared between runs) are not
	// counted.
	MaxTensorBytes int64
}

// RunRequest is one run of a guest.
type RunRequest struct {
	// Wasm is the guest module (a WASI command). Compiled modules are
	// cached by the SHA-256 of these bytes. Module, when set, is used
	// instead and skips hashing (a few ms for a Go guest).
	Wasm   []byte
	Module *Module
	// Args are the guest's arguments after argv[0] (Name, or "app").
	Args []string
	Name string
	// Stdin feeds fd 0 (empty when nil).
	Stdin io.Reader
	// Stdout receives fd 1 and realm_host_generate's text, each write
	// as it happens. Nil discards.
	Stdout io.Writer
	// Stderr receives fd 2; nil sends it to the host log.
	Stderr io.Writer
	// Env sets guest environment variables ("KEY=VALUE").
	Env []string
	// Policy limits the run.
	Policy Policy
	// Trace, when set, receives one line per host function call and
	// one per result (==> env.name(param=value,...) / <== result).
	Trace io.Writer
	// OnLogprob, when set, receives each entry of RunResult.Logprobs as
	// realm_host_generate produces the token, before the token's text
	// reaches Stdout (a server streams them together). It is called on
	// the goroutine that writes Stdout.
	OnLogprob func(TokenLogprob)
}

// RunResult describes a finished run.
type RunResult struct {
	// ExitCode is the guest's exit status (0 for success).
	ExitCode int `json:"exit_code"`
	// TokensGenerated counts tokens produced by realm_host_generate
	// and single-token decodes (see Policy.MaxTokens).
	TokensGenerated int `json:"tokens_generated"`
	// TokensDecoded counts tokens fed to the backend (prompts included).
	TokensDecoded int `json:"tokens_decoded"`
	// PromptTokens counts the prompt tokens of the run's
	// realm_host_generate calls, as the host tokenized them.
	PromptTokens int `json:"prompt_tokens"`
	// StopReason is why the run's last realm_host_generate ended:
	// "length" (max_tokens), "eos", "stop" (a stop string) or "context"
	// (the session is full); "" when the run did not generate.
	StopReason string `json:"stop_reason,omitempty"`
	// Logprobs holds, for the realm_host_generate calls that asked for
	// them (GenerateParams.Logprobs / TopLogprobs), one entry per
	// generated token, in order.
	Logprobs []TokenLogprob `json:"logprobs,omitempty"`
	// OutputBytes is how much the guest wrote to stdout.
	OutputBytes int64 `json:"output_bytes"`
	// Duration is the run's wall time; Instantiate the part before
	// _start: compiling (on a cache miss), linking, instantiating.
	Duration    time.Duration `json:"duration"`
	Instantiate time.Duration `json:"instantiate"`
	// HostCalls counts host function calls.
	HostCalls int64 `json:"host_calls"`
}

// Host runs guests. It is safe for concurrent use.
type Host struct {
	cfg   Config
	log   hclog.Logger
	cache wazero.CompilationCache
	funcs []hostFunc
	// grammars caches compiled grammars and their token masks per
	// vocabulary (the grammar and json_schema sampler options).
	grammars *grammar.Cache

	mu       sync.Mutex
	runtimes map[uint32]*wrt // by memory limit in pages
	closed   bool
}

// wrt is one wazero runtime (memory limits are per runtime) with its
// host modules and compiled guests.
type wrt struct {
	rt       wazero.Runtime
	mu       sync.Mutex
	compiled map[[32]byte]*cachedModule
	order    [][32]byte
}

// cachedModule is a compiled guest in a runtime's cache. A module evicted
// while runs still hold it is closed by the last of them, so a run never
// instantiates a closed module.
type cachedModule struct {
	m       wazero.CompiledModule
	refs    int
	evicted bool
}

// NewHost returns a Host serving cfg.Models.
func NewHost(ctx context.Context, cfg Config) (*Host, error) {
	if cfg.Models == nil {
		return nil, errors.New("core: Config.Models is required")
	}
	h := &Host{cfg: cfg, log: cfg.Logger, runtimes: map[uint32]*wrt{}, grammars: grammar.NewCache(0)}
	if h.log == nil {
		h.log = hclog.NewNullLogger()
	}
	if cfg.CacheDir != "" {
		c, err := wazero.NewCompilationCacheWithDir(cfg.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("core: compilation cache: %w", err)
		}
		h.cache = c
	} else {
		h.cache = wazero.NewCompilationCache()
	}
	h.funcs = hostFuncs()
	return h, nil
}

// Close releases the runtimes and the compilation cache.
func (h *Host) Close(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil
	}
	h.closed = true
	var errs []error
	for _, r := range h.runtimes {
		errs = append(errs, r.rt.Close(ctx))
	}
	errs = append(errs, h.cache.Close(ctx))
	return errors.Join(errs...)
}

// runtime returns the runtime for a memory limit, creating it.
func (h *Host) runtime(ctx context.Context, pages uint32) (*wrt, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, errors.New("core: host closed")
	}
	if r := h.runtimes[pages]; r != nil {
		return r, nil
	}
	rc := wazero.NewRuntimeConfig().
		WithCompilationCache(h.cache).
		WithCloseOnContextDone(true).
		WithMemoryLimitPages(pages)
	rt := wazero.NewRuntimeWithConfig(ctx, rc)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		rt.Close(ctx)
		return nil, fmt.Errorf("core: wasi: %w", err)
	}
	if err := h.exportHostFuncs(ctx, rt); err != nil {
		rt.Close(ctx)
		return nil, err
	}
	r := &wrt{rt: rt, compiled: map[[32]byte]*cachedModule{}}
	h.runtimes[pages] = r
	return r, nil
}

// Module is a guest prepared for repeated runs: its bytes and their
// SHA-256, the key of the compiled-module caches.
type Module struct {
	wasm []byte
	key  [32]byte
}

// Compile validates and compiles a guest once (for the default memory
// limit; other limits compile from the shared compilation cache) and
// returns it for RunRequest.Module. wasm must not be modified afterwards.
func (h *Host) Compile(ctx context.Context, wasm []byte) (*Module, error) {
	m := &Module{wasm: wasm, key: sha256.Sum256(wasm)}
	r, err := h.runtime(ctx, DefaultMemoryBytes/wasmPageSize)
	if err != nil {
		return nil, err
	}
	c, release, err := r.compile(ctx, m)
	if err != nil {
		return nil, err
	}
	defer release()
	if err := checkImports(c); err != nil {
		return nil, err
	}
	return m, nil
}

// compile returns the compiled guest, from the cache when warm, and a
// release function the caller must call once it no longer needs the
// compiled module (instances made from it stay valid after that). The
// lock is not held while compiling (seconds for a large guest), so
// cached guests keep starting meanwhile.
func (r *wrt) compile(ctx context.Context, mod *Module) (wazero.CompiledModule, func(), error) {
	r.mu.Lock()
	if c, ok := r.compiled[mod.key]; ok {
		c.refs++
		r.mu.Unlock()
		return c.m, r.releaser(ctx, c), nil
	}
	r.mu.Unlock()
	m, err := r.rt.CompileModule(ctx, mod.wasm)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrInvalidModule, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.compiled[mod.key]; ok { // compiled concurrently
		m.Close(ctx)
		c.refs++
		return c.m, r.releaser(ctx, c), nil
	}
	if len(r.order) >= maxCompiled {
		old := r.compiled[r.order[0]]
		delete(r.compiled, r.order[0])
		r.order = r.order[1:]
		old.evicted = true
		if old.refs == 0 {
			old.m.Close(ctx)
		}
	}
	c := &cachedModule{m: m, refs: 1}
	r.compiled[mod.key] = c
	r.order = append(r.order, mod.key)
	return m, r.releaser(ctx, c), nil
}

// releaser returns the function that drops one reference to c.
func (r *wrt) releaser(ctx context.Context, c *cachedModule) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			c.refs--
			if c.refs == 0 && c.evicted {
				c.m.Close(context.WithoutCancel(ctx))
			}
		})
	}
}

// Run runs a guest to completion. A guest that exits with a non-zero
// status is a finished run (RunResult.ExitCode) with a nil error; a
// trap, deadline, output overflow or cancellation returns an error
// wrapping ErrTrap, ErrDeadline, ErrOutputLimit or ErrCanceled together
// with the partial result. The host stays serviceable either way.
func (h *Host) Run(ctx context.Context, req RunRequest) (res *RunResult, err error) {
	start := time.Now()
	p := req.Policy.withDefaults()
	pages := uint32(min(p.MemoryBytes/wasmPageSize, 65536))
	if pages == 0 {
		pages = 1
	}
	r, err := h.runtime(ctx, pages)
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	runCtx, cancelT := context.WithTimeoutCause(runCtx, p.Timeout, ErrDeadline)
	defer cancelT()

	inst := newInstance(h, p, req.Trace)
	inst.onLogprob = req.OnLogprob
	res = &RunResult{}
	defer func() {
		inst.release(context.WithoutCancel(ctx))
		res.Duration = time.Since(start)
		res.TokensGenerated = inst.generated
		res.TokensDecoded = inst.decoded
		res.PromptTokens = inst.promptTokens
		res.StopReason = inst.stopReason
		res.Logprobs = inst.logprobs
		res.OutputBytes = inst.stdout.n
		res.HostCalls = inst.calls
	}()
	var out io.Writer = io.Discard
	if req.Stdout != nil {
		out = req.Stdout
	}
	inst.stdout = &limitWriter{w: out, max: p.MaxOutput, onLimit: func() { cancel(ErrOutputLimit) }}
	stderr := req.Stderr
	if stderr == nil {
		lw := &logWriter{log: h.log.Named("guest")}
		defer lw.flush()
		stderr = lw
	}
	var stdin io.Reader = eofReader{}
	if req.Stdin != nil {
		stdin = ctxReader{ctx: runCtx, r: req.Stdin, onCut: inst.markCut}
	}
	name := req.Name
	if name == "" {
		name = "app"
	}
	mc := wazero.NewModuleConfig().
		WithName("").
		WithArgs(append([]string{name}, req.Args...)...).
		WithStdin(stdin).
		WithStdout(inst.stdout).
		WithStderr(stderr).
		WithSysWalltime().WithSysNanotime().
		WithNanosleep(ctxSleep(runCtx, inst.markCut)).
		WithRandSource(cryptoRand{})
	for _, kv := range req.Env {
		k, v, _ := strings.Cut(kv, "=")
		mc = mc.WithEnv(k, v)
	}

	mod := req.Module
	if mod == nil {
		mod = &Module{wasm: req.Wasm, key: sha256.Sum256(req.Wasm)}
	}
	compiled, release, err := r.compile(ctx, mod)
	if err != nil {
		return res, err
	}
	if err := checkImports(compiled); err != nil {
		release()
		return res, err
	}
	callCtx := context.WithValue(runCtx, instanceKey{}, inst)
	inst.ctx = callCtx
	guestMod, err := r.rt.InstantiateModule(callCtx, compiled, mc.WithStartFunctions())
	release()
	res.Instantiate = time.Since(start)
	if err != nil {
		if runCtx.Err() == nil {
			// Linking failed (an import with the wrong signature, a
			// data segment out of range, ...) or a start section trapped.
			res.ExitCode = -1
			return res, fmt.Errorf("%w: instantiate: %w", ErrInvalidModule, err)
		}
		return res, h.runError(ctx, runCtx, res, err, inst.cut.Load())
	}
	defer guestMod.Close(context.WithoutCancel(ctx))
	_, err = guestMod.ExportedFunction("_start").Call(callCtx)
	return res, h.runError(ctx, runCtx, res, err, inst.cut.Load())
}

// runError turns the outcome of _start into the run's exit code and error.
// cut reports that the run's end (deadline, cancellation, output limit)
// interrupted the guest in a host call, a sleep or a read: a guest that
// then returns normally did not finish its work, and the run is
// reported with the cause, not as a success.
func (h *Host) runError(parent, runCtx context.Context, res *RunResult, err error, cut bool) error {
	cause := context.Cause(runCtx)
	if err == nil {
		if cut && runCtx.Err() != nil {
			res.ExitCode = -1
			return h.ctxError(parent, cause, errors.New("the guest returned after the run was interrupted"))
		}
		return nil
	}
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		switch exit.ExitCode() {
		case sys.ExitCodeDeadlineExceeded, sys.ExitCodeContextCanceled:
			res.ExitCode = -1
			return h.ctxError(parent, cause, err)
		}
		res.ExitCode = int(exit.ExitCode())
		if cause != nil && runCtx.Err() != nil {
			return h.ctxError(parent, cause, err)
		}
		return nil
	}
	res.ExitCode = -1
	if runCtx.Err() != nil {
		return h.ctxError(parent, cause, err)
	}
	return fmt.Errorf("%w: %w", ErrTrap, err)
}

func (h *Host) ctxError(parent context.Context, cause, err error) error {
	switch {
	case errors.Is(cause, ErrOutputLimit):
		return fmt.Errorf("%w: %w", ErrOutputLimit, err)
	case errors.Is(cause, ErrDeadline):
		return fmt.Errorf("%w: %w", ErrDeadline, err)
	case parent.Err() != nil && errors.Is(parent.Err(), context.DeadlineExceeded):
		return fmt.Errorf("%w: %w", ErrDeadline, err)
	default:
		return fmt.Errorf("%w: %w", ErrCanceled, err)
	}
}

// checkImports rejects a guest that imports env functions the host
// does not export, naming them (wazero's own message is less direct).
func checkImports(m wazero.CompiledModule) error {
	known := map[string]bool{}
	for _, n := range abi.Funcs() {
		known[n] = true
	}
	for _, f := range m.ImportedFunctions() {
		mod, name, _ := f.Import()
		if mod == abi.ModuleName && !known[name] {
			return fmt.Errorf("%w: imports unknown host function %s.%s", ErrInvalidModule, mod, name)
		}
	}
	if _, ok := m.ExportedFunctions()["_start"]; !ok {
		return fmt.Errorf("%w: no _start export (not a WASI command)", ErrInvalidModule)
	}
	return nil
}

func (p Policy) withDefaults() Policy {
	if p.Timeout <= 0 {
		p.Timeout = DefaultTimeout
	}
	if p.MemoryBytes == 0 {
		p.MemoryBytes = DefaultMemoryBytes
	}
	if p.MaxOutput <= 0 {
		p.MaxOutput = DefaultMaxOutput
	}
	if p.MaxTensorBytes <= 0 {
		p.MaxTensorBytes = DefaultTensorBytes
	}
	if p.MaxKVBytes <= 0 {
		p.MaxKVBytes = DefaultKVBytes
	}
	return p
}

package engine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"runtime/debug"
	"slices"
	"sync/atomic"
	"time"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/gguf"
	"github.com/realmrt/realm/internal/sample"
)

// TypeLister is implemented by kernels that support only some weight
// types in MatMul and GetRows. Kernels without it are assumed to accept
// every known type except Q8_K.
type TypeLister interface {
	Types() []gguf.Type
}

// Defaults for Options.
const (
	DefaultContext = 2048    // session size when OpenSession gets nCtx ≤ 0 (capped at n_ctx_train)
	DefaultMaxKV   = 8 << 30 // largest KV cache of one session in bytes
)

// Options configure NewBackend.
type Options struct {
	Name            string   // backend name reported by Info ("reference")
	Version         string   // backend version reported by Info
	ProtocolVersion int      // reported by Info
	Features        []string // CPU features the kernels use
	Threads         int      // threads the kernels use (Info only)
	// DefaultContext is the session size used when OpenSession gets
	// nCtx ≤ 0, capped at the model's training context (0: 2048).
	DefaultContext int
	// MaxKVBytes caps the KV cache of one session (0: 8 GiB); larger
	// requests fail with ErrOutOfMemory.
	MaxKVBytes uint64
	// StepTokens is the token budget of one merged forward pass of a
	// model's sessions (0: DefaultStepTokens); longer prompts run in
	// chunks between the steps of running streams.
	StepTokens int
	// GatherWait is how long a step waits for the sessions of the
	// previous one to send their next token (0: DefaultGatherWait,
	// < 0: not at all).
	GatherWait time.Duration
}

// backend is the in-process backends.Backend over a Kernels set.
type backend struct {
	k     Kernels
	opts  Options
	types []gguf.Type
	ok    map[gguf.Type]bool
	reg   *Registry[*loadedModel, *openSession]
}

// loadedModel is a model with its mapping. The registry keeps it
// read-locked during every call that uses the weights, so the mapping
// is never unmapped under a running decode.
type loadedModel struct {
	m       *Model
	file    *gguf.Mapped
	info    *backends.ModelInfo
	release func() // frees the kernels' prepared weights (nil: none)
	// preparing is set while a WeightPreparer places the weights.
	preparing atomic.Bool
	sched     *scheduler
}

// openSession is an open session; the registry serializes calls on it.
type openSession struct {
	s       *Session // nil once closed
	sampler *sample.Sampler
	sched   *scheduler // its model's
}

// NewBackend returns an in-process backends.Backend that runs the llama
// forward pass of this package on kernels k. It is safe for concurrent
// use: calls on one session are serialized, and the Decode calls of the
// sessions of one model that wait at the same time are merged into one
// forward pass (see scheduler).
func NewBackend(k Kernels, opts Options) backends.Backend {
	if opts.DefaultContext <= 0 {
		opts.DefaultContext = DefaultContext
	}
	if opts.MaxKVBytes == 0 {
		opts.MaxKVBytes = DefaultMaxKV
	}
	if opts.StepTokens <= 0 {
		opts.StepTokens = DefaultStepTokens
	}
	if opts.GatherWait == 0 {
		opts.GatherWait = DefaultGatherWait
	}
	b := &backend{
		k:    k,
		opts: opts,
		ok:   make(map[gguf.Type]bool),
		reg:  NewRegistry[*loadedModel, *openSession]("engine"),
	}
	if tl, ok := k.(TypeLister); ok {
		b.types = tl.Types()
	} else {
		b.types = gguf.WeightTypes()
	}
	for _, t := range b.types {
		b.ok[t] = true
	}
	return b
}

// InfoOps is the Ops list of backends.Info: the TensorOp ops, then
// each graph op the forward pass can use as "graph.NAME" and each
// architecture the backend runs as "arch.NAME", so that a host can tell
// which models a backend can run without loading them.
func InfoOps(tensorOps, graphOps, archs []string) []string {
	out := slices.Clone(tensorOps)
	for _, op := range graphOps {
		out = append(out, "graph."+op)
	}
	for _, a := range archs {
		out = append(out, "arch."+a)
	}
	return out
}

// Info describes the backend.
func (b *backend) Info(ctx context.Context) (*backends.Info, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return &backends.Info{
		Name:            b.opts.Name,
		Version:         b.opts.Version,
		ProtocolVersion: b.opts.ProtocolVersion,
		Features:        append([]string(nil), b.opts.Features...),
		Types:           append([]gguf.Type(nil), b.types...),
		Ops:             InfoOps(backends.Ops(), SupportedOps(b.k), Architectures()),
		Threads:         b.opts.Threads,
		KVPools:         b.kvPools(),
		Preparing:       b.preparing(),
	}, nil
}

// LoadModel maps and validates the GGUF file at req.Path.
func (b *backend) LoadModel(ctx context.Context, req backends.LoadRequest) (*backends.ModelInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if req.Path == "" {
		return nil, fmt.Errorf("%w: empty model path", backends.ErrInvalidArgument)
	}
	f, err := gguf.Open(req.Path)
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("engine: load %s: %w: %w", req.Path, backends.ErrNotFound, err)
		case errors.Is(err, fs.ErrPermission):
			return nil, fmt.Errorf("engine: load %s: %w", req.Path, err)
		}
		return nil, fmt.Errorf("engine: load %s: %w: %w", req.Path, backends.ErrInvalidModel, err)
	}
	m, err := NewModel(f.File, f.TensorData, b.k, func(t gguf.Type) bool { return b.ok[t] })
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("engine: load %s on backend %s: %w", req.Path, b.opts.Name, err)
	}
	m.KVPool().SetBudget(req.KVBudget)
	lm := &loadedModel{m: m, file: f, info: m.Info(), sched: newScheduler(m, b.opts.StepTokens, b.opts.GatherWait)}
	lm.info.KVBudgetBytes = m.KVPool().Stats().BudgetBytes
	if wp, ok := b.k.(WeightPreparer); ok {
		lm.preparing.Store(true)
		swap := func(apply func()) {
			if apply != nil {
				m.passes.Lock()
				apply()
				m.passes.Unlock()
			}
			lm.preparing.Store(false)
		}
		release, extra, err := wp.PrepareWeights(m.matrices, Placement{Swap: swap, FirstPass: m.firstPass})
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("engine: load %s: prepare weights: %w", req.Path, err)
		}
		lm.release = release
		lm.info.ExtraBytes += extra
	}
	info := *lm.info
	info.ID = b.reg.AddModel(lm)
	return &info, nil
}

// UnloadModel closes the model's sessions and unmaps it, after waiting
// for calls in flight on it.
func (b *backend) UnloadModel(ctx context.Context, id backends.ModelID) error {
	return b.reg.RemoveModel(id, func(lm *loadedModel, sess []*openSession) error {
		for _, e := range sess {
			if e.s != nil {
				e.s.Close()
			}
			e.s, e.sampler = nil, nil
		}
		lm.sched.close()
		if lm.release != nil {
			lm.release()
			lm.release = nil
		}
		if err := lm.file.Close(); err != nil {
			return fmt.Errorf("engine: unload model %d: %w", id, err)
		}
		return nil
	})
}

// OpenSession opens a session of nCtx positions (nCtx ≤ 0: the default
// size capped at the training context).
func (b *backend) OpenSession(ctx context.Context, id backends.ModelID, nCtx int) (backends.SessionID, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	lm, release, err := b.reg.Model(id)
	if err != nil {
		return 0, err
	}
	defer release()
	if p := lm.m.Pooling(); p != "" {
		return 0, fmt.Errorf("engine: %w: %s is an embedding model (pooling %s): use Embed, not sessions", backends.ErrUnsupported, lm.m.HP.Arch, p)
	}
	if nCtx, err = b.reg.SessionSize(b.opts.DefaultContext, nCtx, lm.m.HP.NCtxTrain); err != nil {
		return 0, err
	}
	if kv := lm.m.KVBytes(nCtx); kv > b.opts.MaxKVBytes {
		return 0, fmt.Errorf("engine: %w: a KV cache of %d positions needs %d bytes (limit %d)", backends.ErrOutOfMemory, nCtx, kv, b.opts.MaxKVBytes)
	}
	s, err := lm.m.NewSession(nCtx)
	if err != nil {
		return 0, fmt.Errorf("engine: %w", err)
	}
	return b.reg.AddSession(id, &openSession{s: s, sched: lm.sched})
}

// Decode appends req.Tokens to the session, in forward passes shared
// with the other sessions of its model that decode at the same time.
func (b *backend) Decode(ctx context.Context, req backends.DecodeRequest) (res *backends.DecodeResult, err error) {
	if req.Want != backends.WantLogits && req.Want != backends.WantSample && req.Want != backends.WantNone {
		return nil, fmt.Errorf("engine: %w: unknown Want %d", backends.ErrInvalidArgument, req.Want)
	}
	e, release, err := b.reg.Session(req.Session)
	if err != nil {
		return nil, err
	}
	defer release()
	defer recoverKernel(&err)
	logits, err := e.sched.decode(ctx, e.s, req.Tokens)
	if err != nil {
		return nil, fmt.Errorf("engine: decode: %w", err)
	}
	res = &backends.DecodeResult{NPast: e.s.Len()}
	switch req.Want {
	case backends.WantLogits:
		res.Logits = logits
	case backends.WantSample:
		if e.sampler == nil {
			e.sampler = sample.New(req.Sample)
		} else {
			e.sampler.SetParams(req.Sample)
		}
		tok, err := e.sampler.Sample(logits, e.s.Tokens())
		if err != nil {
			return nil, fmt.Errorf("engine: %w", err)
		}
		res.Token = tok
	}
	return res, nil
}

// recoverKernel turns a panic in a kernel into an error, so that a
// kernel bug fails one call instead of the process.
func recoverKernel(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("engine: kernel panic: %v\n%s", r, debug.Stack())
	}
}

// Truncate rewinds a session to its first n positions.
func (b *backend) Truncate(ctx context.Context, id backends.SessionID, n int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	e, release, err := b.reg.Session(id)
	if err != nil {
		return err
	}
	defer release()
	if err := e.s.Truncate(n); err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	return nil
}

// CloseSession releases a session (after a call in flight on it ends).
func (b *backend) CloseSession(_ context.Context, id backends.SessionID) error {
	return b.reg.RemoveSession(id, func(e *openSession) {
		if e.s != nil {
			e.s.Close()
		}
		e.s, e.sampler = nil, nil
	})
}

// preparing lists the loaded models whose weights a WeightPreparer is
// still placing, in id order.
func (b *backend) preparing() []backends.ModelID {
	var out []backends.ModelID
	b.reg.Range(func(id backends.ModelID, lm *loadedModel) {
		if lm.preparing.Load() {
			out = append(out, id)
		}
	}, nil)
	slices.Sort(out)
	return out
}

//go:build cgo

package vulkan

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"runtime/debug"
	"sync"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/backends/engine"
	"github.com/realmrt/realm/backends/reference"
	"github.com/realmrt/realm/backends/sample"
	"github.com/realmrt/realm/gguf"
)

// Backend is the Vulkan backends.Backend. Sessions of one device share
// its queue: their command buffers run one at a time.
type Backend struct {
	opts  Options
	dev   *Device      // nil when no device is usable
	devs  []DeviceInfo // every device found, Err set on rejected ones
	noDev error        // why dev is nil
	ops   backends.Backend

	mu       sync.Mutex // guards the fields below
	nextID   uint64
	models   map[backends.ModelID]*model
	sessions map[backends.SessionID]*session
}

var _ backends.Backend = (*Backend)(nil)

// model is a loaded model: the mapping, the validated engine.Model (for
// shapes and TensorOp) and the device weights. rw is held for reading
// by calls that use it and for writing by UnloadModel.
type model struct {
	id       backends.ModelID
	m        *engine.Model
	file     *gguf.Mapped
	info     *backends.ModelInfo
	w        *gpuWeights
	rw       sync.RWMutex
	closed   bool                            // guarded by rw
	sessions map[backends.SessionID]*session // guarded by Backend.mu
}

// session is an open session; mu serializes calls on it.
type session struct {
	id      backends.SessionID
	model   *model
	mu      sync.Mutex
	s       *gpuSession // nil once closed
	sampler *sample.Sampler
	bytes   uint64 // device memory of the session (immutable)
}

// New opens the best usable Vulkan device (or opts.Device). Without a
// usable device it still returns a Backend: Info lists the devices with
// the reasons they were rejected, and every other call fails with that
// reason, so the host's probe can veto the backend with a clear message.
func New(opts Options) *Backend {
	if opts.DefaultContext <= 0 {
		opts.DefaultContext = engine.DefaultContext
	}
	b := &Backend{
		opts:     opts,
		models:   make(map[backends.ModelID]*model),
		sessions: make(map[backends.SessionID]*session),
	}
	b.dev, b.devs, b.noDev = OpenDevice(opts.Device)
	if b.dev != nil {
		b.ops = newOps(b.dev)
	}
	return b
}

// newOps is the engine's validating TensorOp over the device kernels.
func newOps(d *Device) backends.Backend {
	return engine.NewBackend(NewKernels(d), engine.Options{Name: Name, Version: Version, ProtocolVersion: backends.ProtocolVersion})
}

// Close releases every model and the device.
func (b *Backend) Close() error {
	b.mu.Lock()
	ids := make([]backends.ModelID, 0, len(b.models))
	for id := range b.models {
		ids = append(ids, id)
	}
	b.mu.Unlock()
	for _, id := range ids {
		_ = b.UnloadModel(context.Background(), id)
	}
	if b.dev != nil {
		b.dev.Close()
		b.dev = nil
	}
	return nil
}

// Err returns why no device is usable (nil when one is).
func (b *Backend) Err() error {
	if b.dev != nil {
		return nil
	}
	return b.noDev
}

// Device returns the device in use (nil when none is usable).
func (b *Backend) Device() *Device { return b.dev }

// usable returns an error when no device is usable.
func (b *Backend) usable() error {
	if b.dev == nil {
		return b.noDev
	}
	return nil
}

// Info describes the backend and its device: the device in use, or
// every device found with the reason it was rejected.
func (b *Backend) Info(ctx context.Context) (*backends.Info, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	info := &backends.Info{
		Name:            Name,
		Version:         Version,
		ProtocolVersion: backends.ProtocolVersion,
		Types:           weightTypes(),
		Ops:             engine.Ops(),
	}
	if b.dev != nil {
		info.Devices = []backends.Device{b.dev.Info.Describe()}
	} else {
		for i := range b.devs {
			info.Devices = append(info.Devices, b.devs[i].Describe())
		}
	}
	return info, nil
}

// Devices returns every device found, with Err set on rejected ones.
func (b *Backend) Devices() []DeviceInfo { return append([]DeviceInfo(nil), b.devs...) }

// LoadModel maps and validates the GGUF file and uploads its weights.
func (b *Backend) LoadModel(ctx context.Context, req backends.LoadRequest) (*backends.ModelInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := b.usable(); err != nil {
		return nil, err
	}
	if req.Path == "" {
		return nil, fmt.Errorf("vulkan: %w: empty model path", backends.ErrInvalidArgument)
	}
	f, err := gguf.Open(req.Path)
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("vulkan: load %s: %w: %w", req.Path, backends.ErrNotFound, err)
		case errors.Is(err, fs.ErrPermission):
			return nil, fmt.Errorf("vulkan: load %s: %w", req.Path, err)
		}
		return nil, fmt.Errorf("vulkan: load %s: %w: %w", req.Path, backends.ErrInvalidModel, err)
	}
	m, err := engine.NewModel(f.File, f.TensorData, reference.New(), supportedType)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("vulkan: load %s: %w", req.Path, err)
	}
	d := b.dev
	budget := b.budget()
	d.mu.Lock()
	w, err := uploadModel(d, m, budget)
	d.mu.Unlock()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("vulkan: load %s: %w", req.Path, err)
	}
	lm := &model{m: m, file: f, info: m.Info(), w: w, sessions: make(map[backends.SessionID]*session)}
	lm.info.ExtraBytes = w.bytes
	b.mu.Lock()
	b.nextID++
	lm.id = backends.ModelID(b.nextID)
	b.models[lm.id] = lm
	b.mu.Unlock()
	info := *lm.info
	info.ID = lm.id
	return &info, nil
}

// budget is the device memory still free for weights, by this
// backend's own accounting.
func (b *Backend) budget() uint64 {
	total := b.dev.Info.DeviceLocal
	if b.opts.MemoryLimit > 0 && (total == 0 || b.opts.MemoryLimit < total) {
		total = b.opts.MemoryLimit
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var used uint64
	for _, m := range b.models {
		used += m.w.bytes
	}
	for _, s := range b.sessions {
		used += s.bytes
	}
	if used >= total {
		return 0
	}
	return total - used
}

// UnloadModel closes the model's sessions and frees its device memory.
func (b *Backend) UnloadModel(ctx context.Context, id backends.ModelID) error {
	b.mu.Lock()
	lm, ok := b.models[id]
	if !ok {
		b.mu.Unlock()
		return fmt.Errorf("vulkan: model %d: %w", id, backends.ErrNotFound)
	}
	delete(b.models, id)
	sess := lm.sessions
	lm.sessions = nil
	for sid := range sess {
		delete(b.sessions, sid)
	}
	b.mu.Unlock()

	lm.rw.Lock()
	defer lm.rw.Unlock()
	lm.closed = true
	b.dev.mu.Lock()
	for _, e := range sess {
		e.mu.Lock()
		if e.s != nil {
			e.s.free(b.dev)
			e.s = nil
		}
		e.mu.Unlock()
	}
	lm.w.free(b.dev)
	b.dev.mu.Unlock()
	if err := lm.file.Close(); err != nil {
		return fmt.Errorf("vulkan: unload model %d: %w", id, err)
	}
	return nil
}

// lookup returns a loaded model, read-locked; call rw.RUnlock when done.
func (b *Backend) lookup(id backends.ModelID) (*model, error) {
	b.mu.Lock()
	lm, ok := b.models[id]
	b.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("vulkan: model %d: %w", id, backends.ErrNotFound)
	}
	lm.rw.RLock()
	if lm.closed {
		lm.rw.RUnlock()
		return nil, fmt.Errorf("vulkan: model %d: %w", id, backends.ErrNotFound)
	}
	return lm, nil
}

// OpenSession allocates a session's KV cache and activations on the
// device (nCtx ≤ 0: the default size capped at the training context).
func (b *Backend) OpenSession(ctx context.Context, id backends.ModelID, nCtx int) (backends.SessionID, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	lm, err := b.lookup(id)
	if err != nil {
		return 0, err
	}
	defer lm.rw.RUnlock()
	hp := &lm.m.HP
	if nCtx <= 0 {
		nCtx = min(b.opts.DefaultContext, hp.NCtxTrain)
	}
	if nCtx > hp.NCtxTrain {
		return 0, fmt.Errorf("vulkan: %w: context size %d exceeds the model's training context %d", backends.ErrInvalidArgument, nCtx, hp.NCtxTrain)
	}
	kv := 2 * 2 * uint64(hp.NLayer) * uint64(nCtx) * uint64(hp.KVDim())
	if free := b.budget(); kv > free {
		return 0, fmt.Errorf("vulkan: %w: a KV cache of %d positions needs %d bytes, %d free on %s", backends.ErrOutOfMemory, nCtx, kv, free, b.dev.Info.Name)
	}
	b.dev.mu.Lock()
	s, err := newSession(b.dev, lm.m, lm.w, nCtx)
	b.dev.mu.Unlock()
	if err != nil {
		return 0, fmt.Errorf("vulkan: %w", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.nextID++
	e := &session{id: backends.SessionID(b.nextID), model: lm, s: s, bytes: s.bytes}
	b.sessions[e.id] = e
	lm.sessions[e.id] = e
	return e.id, nil
}

// session returns an open session, locked, with its model read-locked.
func (b *Backend) session(id backends.SessionID) (*session, func(), error) {
	b.mu.Lock()
	e, ok := b.sessions[id]
	b.mu.Unlock()
	if !ok {
		return nil, nil, fmt.Errorf("vulkan: session %d: %w", id, backends.ErrNotFound)
	}
	e.model.rw.RLock()
	e.mu.Lock()
	if e.model.closed || e.s == nil {
		e.mu.Unlock()
		e.model.rw.RUnlock()
		return nil, nil, fmt.Errorf("vulkan: session %d: %w", id, backends.ErrNotFound)
	}
	return e, func() { e.mu.Unlock(); e.model.rw.RUnlock() }, nil
}

// Decode appends req.Tokens to the session and returns the logits of the
// last position or a token sampled from them on this side.
func (b *Backend) Decode(ctx context.Context, req backends.DecodeRequest) (res *backends.DecodeResult, err error) {
	if req.Want != backends.WantLogits && req.Want != backends.WantSample && req.Want != backends.WantNone {
		return nil, fmt.Errorf("vulkan: %w: unknown Want %d", backends.ErrInvalidArgument, req.Want)
	}
	e, release, err := b.session(req.Session)
	if err != nil {
		return nil, err
	}
	defer release()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("vulkan: decode panic: %v\n%s", r, debug.Stack())
		}
	}()
	logits, err := e.s.decode(ctx, b.dev, req.Tokens, req.Want != backends.WantNone)
	if err != nil {
		return nil, fmt.Errorf("vulkan: decode: %w", err)
	}
	res = &backends.DecodeResult{NPast: len(e.s.tokens)}
	switch req.Want {
	case backends.WantLogits:
		res.Logits = logits
	case backends.WantSample:
		if e.sampler == nil {
			e.sampler = sample.New(req.Sample)
		} else {
			e.sampler.SetParams(req.Sample)
		}
		tok, err := e.sampler.Sample(logits, e.s.tokens)
		if err != nil {
			return nil, fmt.Errorf("vulkan: %w", err)
		}
		res.Token = tok
	}
	return res, nil
}

// Truncate rewinds a session to its first n positions.
func (b *Backend) Truncate(ctx context.Context, id backends.SessionID, n int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	e, release, err := b.session(id)
	if err != nil {
		return err
	}
	defer release()
	if n < 0 || n > len(e.s.tokens) {
		return fmt.Errorf("vulkan: %w: cannot truncate a session of %d tokens to %d", backends.ErrInvalidArgument, len(e.s.tokens), n)
	}
	e.s.tokens = e.s.tokens[:n]
	return nil
}

// CloseSession frees a session's device memory.
func (b *Backend) CloseSession(_ context.Context, id backends.SessionID) error {
	b.mu.Lock()
	e, ok := b.sessions[id]
	if ok {
		delete(b.sessions, id)
		if e.model.sessions != nil {
			delete(e.model.sessions, id)
		}
	}
	b.mu.Unlock()
	if !ok {
		return fmt.Errorf("vulkan: session %d: %w", id, backends.ErrNotFound)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.s != nil {
		b.dev.mu.Lock()
		e.s.free(b.dev)
		b.dev.mu.Unlock()
		e.s = nil
	}
	e.sampler = nil
	return nil
}

// TensorOp runs one operation on the device. Weights of loaded models
// are resolved here and passed on as inline data to the engine's
// validating TensorOp over the device Kernels.
func (b *Backend) TensorOp(ctx context.Context, req backends.TensorOpRequest) (*backends.TensorOpResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := b.usable(); err != nil {
		return nil, err
	}
	in := make([]backends.TensorRef, len(req.Inputs))
	locked := make(map[backends.ModelID]*model)
	defer func() {
		for _, lm := range locked {
			lm.rw.RUnlock()
		}
	}()
	for i, r := range req.Inputs {
		in[i] = r
		if r.Name == "" {
			continue
		}
		if r.Data != nil {
			return nil, fmt.Errorf("vulkan: %s: %w: input %d names weight %q and also carries data", req.Op, backends.ErrInvalidArgument, i, r.Name)
		}
		lm, ok := locked[r.Model]
		if !ok {
			var err error
			if lm, err = b.lookup(r.Model); err != nil {
				return nil, fmt.Errorf("vulkan: %s: input %d: %w", req.Op, i, err)
			}
			locked[r.Model] = lm
		}
		w, ok := lm.m.Weight(r.Name)
		if !ok {
			return nil, fmt.Errorf("vulkan: %s: input %d: weight %q: %w", req.Op, i, r.Name, backends.ErrNotFound)
		}
		in[i] = backends.TensorRef{Type: w.Type, Shape: lm.info.TensorShapes[r.Name], Data: w.Data}
	}
	req.Inputs = in
	return b.ops.TensorOp(ctx, req)
}

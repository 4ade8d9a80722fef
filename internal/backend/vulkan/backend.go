//go:build cgo && vulkan_headers

package vulkan

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/gguf"
	"github.com/realmrt/realm/internal/backend/reference"
	"github.com/realmrt/realm/internal/engine"
	"github.com/realmrt/realm/internal/sample"
)

// Backend is the Vulkan backends.Backend. Sessions of one device share
// its queue: their command buffers run one at a time.
type Backend struct {
	opts  Options
	dev   *Device      // nil when no device is usable
	devs  []DeviceInfo // every device found, Err set on rejected ones
	noDev error        // why dev is nil
	ops   backends.Backend
	reg   *engine.Registry[*model, *session]
}

var _ backends.Backend = (*Backend)(nil)

// model is a loaded model: the mapping, the validated engine.Model (for
// shapes and TensorOp) and the device weights. The registry keeps it
// read-locked during calls that use it; UnloadModel waits for them.
type model struct {
	m    *engine.Model
	file *gguf.Mapped
	info *backends.ModelInfo
	w    *gpuWeights
	x    *gpuExec // records the model's graphs; used under dev.mu
	q    merger   // merges concurrent Decode calls into one pass
}

// session is an open session; the registry serializes calls on it.
type session struct {
	s       *gpuSession // freed once closed
	sampler *sample.Sampler
	bytes   uint64 // device memory of the session (immutable)
	lm      *model // its model (read-locked while the session is)
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
		opts: opts,
		reg:  engine.NewRegistry[*model, *session]("vulkan"),
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
	var ids []backends.ModelID
	b.reg.Range(func(id backends.ModelID, _ *model) { ids = append(ids, id) }, nil)
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
		Ops:             engine.InfoOps(backends.Ops(), graphOps(), engine.Architectures()),
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
	if err == nil {
		err = checkGraph(m)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("vulkan: load %s: %w", req.Path, err)
	}
	d := b.dev
	budget := b.budget()
	d.mu.Lock()
	w, err := uploadModel(d, m, budget)
	var x *gpuExec
	if err == nil {
		if x, err = newExec(d, m, w); err != nil {
			w.free(d)
		}
	}
	d.mu.Unlock()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("vulkan: load %s: %w", req.Path, err)
	}
	lm := &model{m: m, file: f, info: m.Info(), w: w, x: x}
	lm.info.ExtraBytes = w.bytes
	info := *lm.info
	info.ID = b.reg.AddModel(lm)
	return &info, nil
}

// budget is the device memory still free for weights, by this
// backend's own accounting.
func (b *Backend) budget() uint64 {
	total := b.dev.Info.DeviceLocal
	if b.opts.MemoryLimit > 0 && (total == 0 || b.opts.MemoryLimit < total) {
		total = b.opts.MemoryLimit
	}
	var used uint64
	b.reg.Range(func(_ backends.ModelID, m *model) { used += m.w.bytes + m.x.bytes.Load() },
		func(_ backends.SessionID, s *session) { used += s.bytes })
	if used >= total {
		return 0
	}
	return total - used
}

// UnloadModel closes the model's sessions and frees its device memory.
func (b *Backend) UnloadModel(ctx context.Context, id backends.ModelID) error {
	return b.reg.RemoveModel(id, func(lm *model, sess []*session) error {
		b.dev.mu.Lock()
		for _, e := range sess {
			e.s.free(b.dev)
			e.sampler = nil
		}
		lm.x.release(b.dev)
		lm.w.free(b.dev)
		b.dev.mu.Unlock()
		if err := lm.file.Close(); err != nil {
			return fmt.Errorf("vulkan: unload model %d: %w", id, err)
		}
		return nil
	})
}

// OpenSession allocates a session's KV cache and activations on the
// device (nCtx ≤ 0: the default size capped at the training context).
func (b *Backend) OpenSession(ctx context.Context, id backends.ModelID, nCtx int) (backends.SessionID, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	lm, release, err := b.reg.Model(id)
	if err != nil {
		return 0, err
	}
	defer release()
	hp := &lm.m.HP
	if nCtx, err = b.reg.SessionSize(b.opts.DefaultContext, nCtx, hp.NCtxTrain); err != nil {
		return 0, err
	}
	kv := 2 * 2 * uint64(hp.NLayer) * uint64(nCtx) * uint64(hp.KVDim())
	if free := b.budget(); kv > free {
		return 0, fmt.Errorf("vulkan: %w: a KV cache of %d positions needs %d bytes, %d free on %s", backends.ErrOutOfMemory, nCtx, kv, free, b.dev.Info.Name)
	}
	b.dev.mu.Lock()
	s, err := newSession(b.dev, hp, nCtx)
	b.dev.mu.Unlock()
	if err != nil {
		return 0, fmt.Errorf("vulkan: %w", err)
	}
	sid, err := b.reg.AddSession(id, &session{s: s, bytes: s.bytes, lm: lm})
	if err != nil { // the model is being unloaded
		b.dev.mu.Lock()
		s.free(b.dev)
		b.dev.mu.Unlock()
		return 0, err
	}
	return sid, nil
}

// setMicroBatch sets the tokens per command buffer of a session (tests).
func (b *Backend) setMicroBatch(id backends.SessionID, ub int) error {
	e, release, err := b.reg.Session(id)
	if err != nil {
		return err
	}
	defer release()
	e.s.ub = ub
	return nil
}

// Decode appends req.Tokens to the session and returns the logits of the
// last position or a token sampled from them on this side.
func (b *Backend) Decode(ctx context.Context, req backends.DecodeRequest) (res *backends.DecodeResult, err error) {
	if req.Want != backends.WantLogits && req.Want != backends.WantSample && req.Want != backends.WantNone {
		return nil, fmt.Errorf("vulkan: %w: unknown Want %d", backends.ErrInvalidArgument, req.Want)
	}
	e, release, err := b.reg.Session(req.Session)
	if err != nil {
		return nil, err
	}
	defer release()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("vulkan: decode panic: %v\n%s", r, debug.Stack())
		}
	}()
	lm, s := e.lm, e.s
	if err := engine.CheckBatch(req.Tokens, lm.m.HP.NVocab, len(s.tokens), s.nCtx); err != nil {
		return nil, fmt.Errorf("vulkan: decode: %w", err)
	}
	logits, err := b.mergedDecode(ctx, lm, s, req.Tokens, req.Want != backends.WantNone)
	if err != nil {
		return nil, fmt.Errorf("vulkan: decode: %w", err)
	}
	s.tokens = append(s.tokens, req.Tokens...)
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

// decode runs batch on model lm's graph over the sessions seqs (indexed
// by the batch's sequence ids) under the device lock.
func (b *Backend) decode(ctx context.Context, lm *model, batch *engine.Batch, seqs []*gpuSession, logits bool, ub int) ([]float32, error) {
	b.dev.mu.Lock()
	defer b.dev.mu.Unlock()
	return lm.x.decode(ctx, b.dev, batch, seqs, logits, ub)
}

// BatchItem is one session's part of a merged batch: the tokens to
// append to it.
type BatchItem struct {
	Session backends.SessionID
	Tokens  []int32
}

// DecodeBatch runs the tokens of several sessions of one model as one
// forward pass (one graph, one command buffer per micro-batch: every
// weight is read once for all of them), appends them to their sessions
// and returns each item's logits of its last token. Every session sees
// the logits it would see decoding alone. Sessions must be distinct and
// of one model; on error no session changes.
func (b *Backend) DecodeBatch(ctx context.Context, items []BatchItem) ([][]float32, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, nil
	}
	for i := range items {
		for j := range i {
			if items[j].Session == items[i].Session {
				return nil, fmt.Errorf("vulkan: %w: session %d appears twice in one batch", backends.ErrInvalidArgument, items[i].Session)
			}
		}
	}
	var lm *model
	seqs := make([]*gpuSession, len(items))
	batch := &engine.Batch{}
	// Sessions are locked in handle order, so that two batches over the
	// same sessions cannot wait on each other.
	locked := make([]*session, len(items))
	order := make([]int, len(items))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, c int) int { return cmp.Compare(items[a].Session, items[c].Session) })
	for _, i := range order {
		e, release, err := b.reg.Session(items[i].Session)
		if err != nil {
			return nil, fmt.Errorf("vulkan: batch item %d: %w", i, err)
		}
		defer release()
		locked[i] = e
	}
	for i, it := range items {
		e := locked[i]
		if lm == nil {
			lm = e.lm
		} else if e.lm != lm {
			return nil, fmt.Errorf("vulkan: %w: batch item %d's session belongs to another model", backends.ErrInvalidArgument, i)
		}
		s := e.s
		if len(it.Tokens) == 0 {
			return nil, fmt.Errorf("vulkan: %w: batch item %d has no tokens", backends.ErrInvalidArgument, i)
		}
		if err := engine.CheckBatch(it.Tokens, lm.m.HP.NVocab, len(s.tokens), s.nCtx); err != nil {
			return nil, fmt.Errorf("vulkan: batch item %d: %w", i, err)
		}
		seqs[i] = s
		batch.NCtx = max(batch.NCtx, s.nCtx)
		for j, t := range it.Tokens {
			batch.Tokens = append(batch.Tokens, t)
			batch.Pos = append(batch.Pos, int32(len(s.tokens)+j))
			batch.Seq = append(batch.Seq, int32(i))
		}
	}
	logits, err := b.decode(ctx, lm, batch, seqs, true, 0)
	if err != nil {
		return nil, fmt.Errorf("vulkan: decode batch: %w", err)
	}
	nv := lm.m.HP.NVocab
	out := make([][]float32, len(items))
	for i, it := range items {
		out[i] = logits[i*nv : (i+1)*nv : (i+1)*nv]
		seqs[i].tokens = append(seqs[i].tokens, it.Tokens...)
	}
	return out, nil
}

// Truncate rewinds a session to its first n positions.
func (b *Backend) Truncate(ctx context.Context, id backends.SessionID, n int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	e, release, err := b.reg.Session(id)
	if err != nil {
		return err
	}
	defer release()
	t, err := engine.TruncateTokens(e.s.tokens, n)
	if err != nil {
		return fmt.Errorf("vulkan: %w", err)
	}
	e.s.tokens = t
	return nil
}

// CloseSession frees a session's device memory.
func (b *Backend) CloseSession(_ context.Context, id backends.SessionID) error {
	return b.reg.RemoveSession(id, func(e *session) {
		b.dev.mu.Lock()
		e.s.free(b.dev)
		b.dev.mu.Unlock()
		e.sampler = nil
	})
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
	var releases []func()
	defer func() {
		for _, release := range releases {
			release()
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
			var release func()
			var err error
			if lm, release, err = b.reg.Model(r.Model); err != nil {
				return nil, fmt.Errorf("vulkan: %s: input %d: %w", req.Op, i, err)
			}
			locked[r.Model] = lm
			releases = append(releases, release)
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

// graphOps are the graph ops this backend records into command
// buffers (session.go), attention's window and soft-capping included.
func graphOps() []string {
	ops := []string{engine.GOpAdd, engine.GOpAddRow, engine.GOpAttention, engine.GOpAttnSoftCap, engine.GOpAttnWindow,
		engine.GOpGELUMul, engine.GOpGetRows, engine.GOpMatMul, engine.GOpMoE, engine.GOpRMSNorm, engine.GOpRoPE,
		engine.GOpRoPEExt, engine.GOpScale, engine.GOpSelectRows, engine.GOpSiLUMul, engine.GOpSoftCap,
		engine.GOpSoftmax, engine.GOpSplitColumns}
	slices.Sort(ops)
	return ops
}

// checkGraph refuses a model whose forward pass needs graph ops this
// backend does not record, naming them.
func checkGraph(m *engine.Model) error {
	return checkOps(m, func(op string) bool { return slices.Contains(graphOps(), op) })
}

// checkOps refuses a model whose graph uses an op that has is false for.
func checkOps(m *engine.Model, has func(op string) bool) error {
	var missing []string
	for _, op := range m.Ops() {
		if !has(op) {
			missing = append(missing, op)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: architecture %s needs graph ops %s, which the vulkan backend lacks", backends.ErrUnsupported, m.HP.Arch, strings.Join(missing, ", "))
	}
	return nil
}

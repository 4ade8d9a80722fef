// Package backendtest provides a small deterministic in-memory
// backends.Backend for testing the plugin transport and supervision
// without a model: it checks its inputs like a real backend and computes
// its logits from the tokens it was given, so a test can tell a correct
// answer from a wrong one.
package backendtest

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/realmrt/realm/backends"
)

// Fake is a deterministic Backend. The zero value is not usable; use New.
type Fake struct {
	// Hook, if set, runs at the start of every method with the method's
	// name ("Info", "LoadModel", ...); a non-nil error is returned as the
	// method's error. Tests use it to inject errors, block, or exit.
	Hook func(ctx context.Context, method string) error

	nVocab int

	mu       sync.Mutex
	nextID   uint64
	models   map[backends.ModelID]string
	sessions map[backends.SessionID]*session
}

type session struct {
	model  backends.ModelID
	nCtx   int
	tokens []int32
}

// New returns a Fake whose models have nVocab logits.
func New(nVocab int) *Fake {
	return &Fake{
		nVocab:   nVocab,
		models:   make(map[backends.ModelID]string),
		sessions: make(map[backends.SessionID]*session),
	}
}

func (f *Fake) hook(ctx context.Context, m string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if f.Hook != nil {
		return f.Hook(ctx, m)
	}
	return nil
}

// Logits returns the logits the Fake computes after the given tokens:
// logit j = ((Σ tokens)·31 + j·7 + len(tokens)) mod 97.
func Logits(tokens []int32, nVocab int) []float32 {
	var sum int64
	for _, t := range tokens {
		sum += int64(t)
	}
	out := make([]float32, nVocab)
	for j := range out {
		out[j] = float32(((sum*31+int64(j)*7+int64(len(tokens)))%97 + 97) % 97)
	}
	return out
}

// Info implements backends.Backend.
func (f *Fake) Info(ctx context.Context) (*backends.Info, error) {
	if err := f.hook(ctx, "Info"); err != nil {
		return nil, err
	}
	return &backends.Info{Name: "fake", Version: "0", ProtocolVersion: backends.ProtocolVersion, Ops: []string{backends.OpAdd}, Threads: 1}, nil
}

// LoadModel implements backends.Backend: the path must name an existing file.
func (f *Fake) LoadModel(ctx context.Context, req backends.LoadRequest) (*backends.ModelInfo, error) {
	if err := f.hook(ctx, "LoadModel"); err != nil {
		return nil, err
	}
	if _, err := os.Stat(req.Path); err != nil {
		return nil, fmt.Errorf("fake: load %q: %w", req.Path, backends.ErrNotFound)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID++
	id := backends.ModelID(f.nextID)
	f.models[id] = req.Path
	info := &backends.ModelInfo{ID: id, Arch: "fake", NVocab: f.nVocab, NCtxTrain: 1 << 16,
		TensorTypes: map[string]int{"F32": 1}, TensorShapes: map[string][]int{"w": {2, 3}}}
	if IsEmbedPath(req.Path) {
		info.Arch, info.Pooling, info.NEmbd, info.NCtxTrain = "fake-embed", "mean", EmbedDim, 64
	}
	return info, nil
}

// UnloadModel implements backends.Backend.
func (f *Fake) UnloadModel(ctx context.Context, id backends.ModelID) error {
	if err := f.hook(ctx, "UnloadModel"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.models[id]; !ok {
		return fmt.Errorf("fake: model %d: %w", id, backends.ErrNotFound)
	}
	delete(f.models, id)
	for sid, s := range f.sessions {
		if s.model == id {
			delete(f.sessions, sid)
		}
	}
	return nil
}

// OpenSession implements backends.Backend.
func (f *Fake) OpenSession(ctx context.Context, id backends.ModelID, nCtx int) (backends.SessionID, error) {
	if err := f.hook(ctx, "OpenSession"); err != nil {
		return 0, err
	}
	if nCtx <= 0 {
		return 0, fmt.Errorf("fake: n_ctx %d: %w", nCtx, backends.ErrInvalidArgument)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.models[id]; !ok {
		return 0, fmt.Errorf("fake: model %d: %w", id, backends.ErrNotFound)
	}
	f.nextID++
	sid := backends.SessionID(f.nextID)
	f.sessions[sid] = &session{model: id, nCtx: nCtx}
	return sid, nil
}

// Decode implements backends.Backend.
func (f *Fake) Decode(ctx context.Context, req backends.DecodeRequest) (*backends.DecodeResult, error) {
	if err := f.hook(ctx, "Decode"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.sessions[req.Session]
	if !ok {
		return nil, fmt.Errorf("fake: session %d: %w", req.Session, backends.ErrNotFound)
	}
	if len(req.Tokens) == 0 {
		return nil, fmt.Errorf("fake: empty batch: %w", backends.ErrInvalidArgument)
	}
	if len(s.tokens)+len(req.Tokens) > s.nCtx {
		return nil, fmt.Errorf("fake: %d+%d tokens > n_ctx %d: %w", len(s.tokens), len(req.Tokens), s.nCtx, backends.ErrContextFull)
	}
	for _, t := range req.Tokens {
		if t < 0 || int(t) >= f.nVocab {
			return nil, fmt.Errorf("fake: token %d: %w", t, backends.ErrInvalidArgument)
		}
	}
	s.tokens = append(s.tokens, req.Tokens...)
	res := &backends.DecodeResult{NPast: len(s.tokens)}
	logits := Logits(s.tokens, f.nVocab)
	switch req.Want {
	case backends.WantLogits:
		res.Logits = logits
	case backends.WantSample:
		best := 0
		for j, v := range logits {
			if v > logits[best] {
				best = j
			}
		}
		res.Token = int32(best)
	}
	return res, nil
}

// Truncate implements backends.Backend.
func (f *Fake) Truncate(ctx context.Context, id backends.SessionID, n int) error {
	if err := f.hook(ctx, "Truncate"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.sessions[id]
	if !ok {
		return fmt.Errorf("fake: session %d: %w", id, backends.ErrNotFound)
	}
	if n < 0 || n > len(s.tokens) {
		return fmt.Errorf("fake: truncate to %d of %d: %w", n, len(s.tokens), backends.ErrInvalidArgument)
	}
	s.tokens = s.tokens[:n]
	return nil
}

// CloseSession implements backends.Backend.
func (f *Fake) CloseSession(ctx context.Context, id backends.SessionID) error {
	if err := f.hook(ctx, "CloseSession"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.sessions[id]; !ok {
		return fmt.Errorf("fake: session %d: %w", id, backends.ErrNotFound)
	}
	delete(f.sessions, id)
	return nil
}

// TensorOp implements backends.Backend: only OpAdd of two inline F32
// tensors of one shape.
func (f *Fake) TensorOp(ctx context.Context, req backends.TensorOpRequest) (*backends.TensorOpResult, error) {
	if err := f.hook(ctx, "TensorOp"); err != nil {
		return nil, err
	}
	if req.Op != backends.OpAdd {
		return nil, fmt.Errorf("fake: op %q: %w", req.Op, backends.ErrUnsupported)
	}
	if len(req.Inputs) != 2 || len(req.Inputs[0].Data) != len(req.Inputs[1].Data) || len(req.Inputs[0].Data)%4 != 0 {
		return nil, fmt.Errorf("fake: add needs two f32 inputs of one size: %w", backends.ErrInvalidArgument)
	}
	a, b := f32s(req.Inputs[0].Data), f32s(req.Inputs[1].Data)
	out := make([]float32, len(a))
	for i := range out {
		out[i] = a[i] + b[i]
	}
	return &backends.TensorOpResult{Shape: req.Inputs[0].Shape, Data: out}, nil
}

// EmbedDim is the length of the Fake's embeddings.
const EmbedDim = 8

// IsEmbedPath reports whether the Fake loads the file at path as an
// embedding model: its name contains "embed".
func IsEmbedPath(path string) bool {
	return strings.Contains(filepath.Base(path), "embed")
}

// Embedding returns the Fake's pooled embedding of tokens: element j is
// the mean over the tokens t of ((t·31 + j·7) mod 97) + 1, scaled to
// unit length when normalize is set.
func Embedding(tokens []int32, normalize bool) []float32 {
	out := make([]float32, EmbedDim)
	for j := range out {
		var sum float64
		for _, t := range tokens {
			sum += float64(((int64(t)*31+int64(j)*7)%97+97)%97 + 1)
		}
		out[j] = float32(sum / float64(len(tokens)))
	}
	if normalize {
		var ss float64
		for _, v := range out {
			ss += float64(v) * float64(v)
		}
		for j := range out {
			out[j] = float32(float64(out[j]) / math.Sqrt(ss))
		}
	}
	return out
}

// Embed implements backends.Backend for models loaded from a file
// whose name contains "embed" (others: ErrUnsupported). The context is
// 64 tokens.
func (f *Fake) Embed(ctx context.Context, req backends.EmbedRequest) (*backends.EmbedResult, error) {
	if err := f.hook(ctx, "Embed"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	path, ok := f.models[req.Model]
	f.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("fake: model %d: %w", req.Model, backends.ErrNotFound)
	}
	if !IsEmbedPath(path) {
		return nil, fmt.Errorf("fake: model %d is not an embedding model: %w", req.Model, backends.ErrUnsupported)
	}
	if len(req.Inputs) == 0 {
		return nil, fmt.Errorf("fake: no inputs: %w", backends.ErrInvalidArgument)
	}
	res := &backends.EmbedResult{NEmbd: EmbedDim}
	for i, in := range req.Inputs {
		if len(in) == 0 || len(in) > 64 {
			return nil, fmt.Errorf("fake: input %d has %d tokens (want 1..64): %w", i, len(in), backends.ErrInvalidArgument)
		}
		for _, t := range in {
			if t < 0 || int(t) >= f.nVocab {
				return nil, fmt.Errorf("fake: token %d: %w", t, backends.ErrInvalidArgument)
			}
		}
		res.Embeddings = append(res.Embeddings, Embedding(in, req.Normalize))
	}
	return res, nil
}

func f32s(b []byte) []float32 {
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}

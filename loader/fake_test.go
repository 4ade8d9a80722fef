package loader

import (
	"context"
	"encoding/binary"
	"math"
	"sync"

	"github.com/realmrt/realm/backends"
)

// fakeBackend is a counting Backend for cache and probe tests: it loads
// nothing, but records every call and can hold LoadModel on a gate.
type fakeBackend struct {
	mu        sync.Mutex
	loads     map[string]int    // path → LoadModel calls
	kvBudgets map[string]uint64 // path → the last LoadRequest.KVBudget
	unloads   []backends.ModelID
	loaded    map[backends.ModelID]string
	nextID    backends.ModelID
	gate      chan struct{} // when not nil, LoadModel waits for it
	started   chan struct{} // when not nil, receives one value per LoadModel start
	loadErr   error
	extra     uint64
	devices   []backends.Device
	infoErr   error
	opErr     error
	badMatMul bool
}

func newFake() *fakeBackend {
	return &fakeBackend{loads: map[string]int{}, kvBudgets: map[string]uint64{}, loaded: map[backends.ModelID]string{}}
}

func (f *fakeBackend) Info(ctx context.Context) (*backends.Info, error) {
	if f.infoErr != nil {
		return nil, f.infoErr
	}
	return &backends.Info{Name: "fake", Devices: f.devices, Ops: []string{backends.OpMatMul}}, nil
}

func (f *fakeBackend) LoadModel(ctx context.Context, req backends.LoadRequest) (*backends.ModelInfo, error) {
	if f.started != nil {
		f.started <- struct{}{}
	}
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.loads[req.Path]++
	f.kvBudgets[req.Path] = req.KVBudget
	if f.loadErr != nil {
		return nil, f.loadErr
	}
	f.nextID++
	f.loaded[f.nextID] = req.Path
	return &backends.ModelInfo{ID: f.nextID, Arch: "llama", ExtraBytes: f.extra}, nil
}

func (f *fakeBackend) UnloadModel(ctx context.Context, id backends.ModelID) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.loaded[id]; !ok {
		return backends.ErrStaleHandle
	}
	delete(f.loaded, id)
	f.unloads = append(f.unloads, id)
	return nil
}

func (f *fakeBackend) totalLoads() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.loads {
		n += c
	}
	return n
}

func (f *fakeBackend) nLoaded() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.loaded)
}

func (f *fakeBackend) OpenSession(ctx context.Context, id backends.ModelID, nCtx int) (backends.SessionID, error) {
	return 0, backends.ErrUnsupported
}

func (f *fakeBackend) Decode(ctx context.Context, req backends.DecodeRequest) (*backends.DecodeResult, error) {
	return nil, backends.ErrUnsupported
}

func (f *fakeBackend) Truncate(ctx context.Context, id backends.SessionID, n int) error {
	return backends.ErrUnsupported
}

func (f *fakeBackend) CloseSession(ctx context.Context, id backends.SessionID) error {
	return backends.ErrUnsupported
}

// Embed is not supported by the fake.
func (f *fakeBackend) Embed(ctx context.Context, req backends.EmbedRequest) (*backends.EmbedResult, error) {
	return nil, backends.ErrUnsupported
}

// TensorOp computes an f32 matmul (the only op the probe uses).
func (f *fakeBackend) TensorOp(ctx context.Context, req backends.TensorOpRequest) (*backends.TensorOpResult, error) {
	if f.opErr != nil {
		return nil, f.opErr
	}
	if req.Op != backends.OpMatMul || len(req.Inputs) != 2 {
		return nil, backends.ErrUnsupported
	}
	w, x := req.Inputs[0], req.Inputs[1]
	cols, rows, batch := w.Shape[0], w.Shape[1], x.Shape[1]
	get := func(b []byte, i int) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:])) }
	out := make([]float32, rows*batch)
	for j := range batch {
		for r := range rows {
			var s float32
			for k := range cols {
				s += get(w.Data, r*cols+k) * get(x.Data, j*cols+k)
			}
			out[j*rows+r] = s
		}
	}
	if f.badMatMul {
		out[len(out)-1] += 1
	}
	return &backends.TensorOpResult{Shape: []int{rows, batch}, Data: out}, nil
}

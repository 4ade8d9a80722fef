package core

import (
	"context"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/gguf"
	"github.com/realmrt/realm/tokenizer"
)

// Models serves loaded models by name: the host's view of the loader's
// model cache. Acquire returns a reference-counted model (concurrent
// acquisitions of one name share it); every Acquire is paired with one
// Release. List returns every name the registry can serve.
type Models interface {
	Acquire(ctx context.Context, name string) (*Model, error)
	Release(m *Model)
	List(ctx context.Context) ([]string, error)
}

// KVReserver is implemented by a Models that counts KV cache memory
// against a shared budget (the loader's model cache): the host reserves
// a session's KV bytes before opening it and releases them when it
// closes. The error wraps backends.ErrOutOfMemory when they do not fit.
type KVReserver interface {
	ReserveKV(ctx context.Context, bytes int64) (release func(), err error)
}

// kvBytes estimates the KV cache of a session of nCtx positions: K and V,
// f32, n_layer × n_ctx × (n_head_kv × head_dim). Backends storing f16
// use half; the estimate bounds them.
func (m *Model) kvBytes(nCtx int) int64 {
	return int64(nCtx) * m.kvPerPos()
}

func (m *Model) kvPerPos() int64 {
	i := m.Info
	if i.NHead <= 0 || i.NLayer <= 0 {
		return 0
	}
	kvDim := int64(max(i.NHeadKV, 1)) * int64(i.NEmbd/i.NHead)
	return 2 * 4 * int64(i.NLayer) * kvDim
}

// Model is a model loaded in a backend, as the host functions need it.
type Model struct {
	// Name is the registry name.
	Name string
	// Backend holds the model; Info.ID is its handle there.
	Backend     backends.Backend
	BackendName string
	Info        backends.ModelInfo
	// Tokenizer is the host-side tokenizer built from the GGUF vocabulary.
	Tokenizer *tokenizer.Tokenizer
	// Meta is the GGUF header (chat template, ...); may be nil.
	Meta *gguf.File
	// TensorShapes gives the shape (fastest-varying first) of each weight
	// by name; nil falls back to Info.TensorShapes.
	TensorShapes map[string][]int
	// Ref is the loader's own handle, returned through Release.
	Ref any
}

func (m *Model) shape(name string) ([]int, bool) {
	if m.TensorShapes != nil {
		s, ok := m.TensorShapes[name]
		return s, ok
	}
	s, ok := m.Info.TensorShapes[name]
	return s, ok
}

// activer is a backend that can name the plugin serving it now (a
// supervisor that may have fallen back to another plugin, or back).
type activer interface{ Active() string }

// serving names the backend serving the model now: the supervisor's
// live plugin when it can say, else BackendName (fixed at load time).
func (m *Model) serving() string {
	if a, ok := m.Backend.(activer); ok {
		if n := a.Active(); n != "" {
			return n
		}
	}
	return m.BackendName
}

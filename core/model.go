package core

import (
	"context"

	"github.com/realmrt/realm/model"
)

// Models serves loaded models by name: the host's view of the loader's
// model cache. Acquire returns a reference-counted model (concurrent
// acquisitions of one name share it); every Acquire is paired with one
// Release. List returns every name the registry can serve.
type Models interface {
	Acquire(ctx context.Context, name string) (*model.Model, error)
	Release(m *model.Model)
	List(ctx context.Context) ([]string, error)
}

// KVReserver is implemented by a Models that counts KV cache memory
// against a shared budget (the loader's model cache): the host reserves
// a session's KV bytes before opening it and releases them when it
// closes. The error wraps backends.ErrOutOfMemory when they do not fit.
type KVReserver interface {
	ReserveKV(ctx context.Context, bytes int64) (release func(), err error)
}

// kvPerPos estimates the KV cache bytes of one position of a session on
// m: K and V, f32, n_layer × (n_head_kv × head_dim). Backends storing
// f16 use half; the estimate bounds them.
func kvPerPos(m *model.Model) int64 {
	i := m.Info
	if i.NHead <= 0 || i.NLayer <= 0 {
		return 0
	}
	kvDim := int64(max(i.NHeadKV, 1)) * int64(i.NEmbd/i.NHead)
	return 2 * 4 * int64(i.NLayer) * kvDim
}

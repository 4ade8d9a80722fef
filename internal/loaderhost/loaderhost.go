// Package loaderhost connects the host (core) to the loader: it serves
// core.Models from a *loader.ModelCache and turns an app block of
// plugins.hcl into a core.Policy. It lives apart from core so that core
// depends only on its own small Models interface.
package loaderhost

import (
	"context"
	"errors"
	"time"

	"github.com/realmrt/realm/abi"
	"github.com/realmrt/realm/core"
	"github.com/realmrt/realm/loader"
)

// Models adapts a model cache to core.Models (and core.KVReserver).
func Models(c *loader.ModelCache) core.Models { return cacheModels{c} }

var _ core.KVReserver = cacheModels{}

type cacheModels struct{ c *loader.ModelCache }

func (m cacheModels) Acquire(ctx context.Context, name string) (*core.Model, error) {
	lm, err := m.c.Acquire(ctx, name)
	if err != nil {
		return nil, classify(err)
	}
	// The loader built the shapes once at load; nothing is rebuilt here.
	return &core.Model{
		Name: lm.Name, Backend: lm.Backend, BackendName: lm.BackendName, Info: lm.Info,
		Tokenizer: lm.Tokenizer, Meta: lm.Meta, TensorShapes: lm.TensorShapes, Ref: lm,
	}, nil
}

func (m cacheModels) Release(cm *core.Model) {
	if lm, ok := cm.Ref.(*loader.Model); ok {
		m.c.Release(lm)
	}
}

// ReserveKV implements core.KVReserver: session KV caches count against
// the cache's memory budget next to the models.
func (m cacheModels) ReserveKV(ctx context.Context, bytes int64) (func(), error) {
	release, err := m.c.ReserveKV(ctx, bytes)
	if err != nil {
		return nil, classify(err)
	}
	return release, nil
}

func (m cacheModels) List(ctx context.Context) ([]string, error) {
	entries := m.c.List(ctx)
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if e.Error != "" {
			continue // a misconfigured entry that cannot load
		}
		names = append(names, e.Name)
	}
	return names, nil
}

// errnoError gives a loader error its ABI errno.
type errnoError struct {
	err   error
	errno abi.Errno
}

func (e *errnoError) Error() string    { return e.err.Error() }
func (e *errnoError) Unwrap() error    { return e.err }
func (e *errnoError) Errno() abi.Errno { return e.errno }

// classify maps the loader's sentinel errors to errnos; others keep
// core's mapping of the backends sentinels.
func classify(err error) error {
	var errno abi.Errno
	switch {
	case errors.Is(err, loader.ErrInvalidName):
		errno = abi.ErrnoInval
	case errors.Is(err, loader.ErrNotFound):
		errno = abi.ErrnoNoent
	case errors.Is(err, loader.ErrOutsideModelsDir):
		errno = abi.ErrnoAcces
	case errors.Is(err, loader.ErrChecksum):
		errno = abi.ErrnoBadmodel
	case errors.Is(err, loader.ErrOverBudget):
		errno = abi.ErrnoNomem
	case errors.Is(err, loader.ErrWrongBackend), errors.Is(err, loader.ErrClosed), errors.Is(err, loader.ErrCacheClosed):
		errno = abi.ErrnoUnavail
	default:
		return err
	}
	return &errnoError{err: err, errno: errno}
}

// Policy turns an app block into a run policy. A nil app (no app
// configured) allows every model with core's default limits.
func Policy(app *loader.AppConfig) core.Policy {
	if app == nil {
		return core.Policy{}
	}
	p := core.Policy{
		ModelPatterns: append([]string{}, app.Models...),
		MaxTokens:     app.MaxTokens,
		MaxContext:    app.Context,
		Timeout:       app.Timeout,
		MaxOutput:     app.MaxOutput,
	}
	if app.Memory > 0 {
		p.MemoryBytes = uint64(app.Memory)
	}
	if p.Timeout < 0 {
		p.Timeout = time.Duration(0)
	}
	return p
}

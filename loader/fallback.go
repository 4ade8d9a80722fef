package loader

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"

	"github.com/realmrt/realm/backends"
)

// Fallback is a backend a model may be loaded on when the serving
// backend cannot run it: its LoadModel failed with
// backends.ErrUnsupported (an architecture, graph op, weight type or
// shape the backend lacks). Fallbacks are tried in order; the model is
// then served by the first that loads it, while every other model stays
// on the serving backend.
type Fallback struct {
	// Name is the backend's name in plugins.hcl.
	Name string
	// Backend returns the backend, starting it on first use.
	Backend func(ctx context.Context) (backends.Backend, error)
}

// loadOn loads the resolved model on b with req, verified on every
// reload when b reloads by itself and the model has a digest.
func (c *ModelCache) loadOn(ctx context.Context, b backends.Backend, res Resolved, req backends.LoadRequest) (*backends.ModelInfo, error) {
	if vl, ok := b.(VerifyingLoader); ok && res.SHA256 != "" {
		// The supervisor reloads the model after a plugin restart; it
		// verifies the file again then, exactly like this first load.
		return vl.LoadModelVerified(ctx, req, func(ctx context.Context) error { return c.verify(ctx, res) })
	}
	return b.LoadModel(ctx, req)
}

// fallback loads model name on the first fallback backend that can run
// it, after the serving backend active refused it with cause (an
// ErrUnsupported).
func (c *ModelCache) fallback(ctx context.Context, name string, res Resolved, req backends.LoadRequest, active string, cause error) (backends.Backend, string, *backends.ModelInfo, error) {
	return fallbackLoad(ctx, c.log, c.cfg.Fallbacks, fmt.Sprintf("model %q", name), active, cause,
		func(ctx context.Context, b backends.Backend) (*backends.ModelInfo, error) {
			return c.loadOn(ctx, b, res, req)
		})
}

// fallbackLoad loads what (a model, named for messages) with load on
// the first of fallbacks that can run it, after the serving backend
// active refused it with cause. The error, when none can, names every
// backend tried and why it could not.
func fallbackLoad(ctx context.Context, log hclog.Logger, fallbacks []Fallback, what, active string, cause error,
	load func(context.Context, backends.Backend) (*backends.ModelInfo, error)) (backends.Backend, string, *backends.ModelInfo, error) {
	why := []string{fmt.Sprintf("%s: %v", active, cause)}
	for _, f := range fallbacks {
		if f.Name == active {
			continue
		}
		b, err := f.Backend(ctx)
		if err != nil {
			why = append(why, fmt.Sprintf("%s: not started: %v", f.Name, err))
			continue
		}
		info, err := load(ctx, b)
		if err == nil {
			log.Warn("model cannot run on the serving backend; loaded on a fallback backend",
				"model", what, "backend", active, "why", cause.Error(), "fallback", f.Name)
			return b, f.Name, info, nil
		}
		if ctx.Err() != nil {
			return nil, "", nil, err
		}
		why = append(why, fmt.Sprintf("%s: %v", f.Name, err))
	}
	if len(why) == 1 {
		return nil, "", nil, fmt.Errorf("%s cannot run on backend %s and no other backend is eligible: %w", what, active, cause)
	}
	return nil, "", nil, fmt.Errorf("%w: %s cannot run on any eligible backend: %s", backends.ErrUnsupported, what, strings.Join(why, "; "))
}

// LoadModel loads a model file (outside the model cache: `realm
// generate FILE`) on the serving backend or, when that refuses it as
// unsupported, on the first fallback backend that can run it. It
// returns the backend holding the model and that backend's name.
func (rt *Runtime) LoadModel(ctx context.Context, req backends.LoadRequest) (backends.Backend, string, *backends.ModelInfo, error) {
	info, err := rt.Supervisor.LoadModel(ctx, req)
	if err == nil {
		return rt.Supervisor, rt.Supervisor.Active(), info, nil
	}
	if !errors.Is(err, backends.ErrUnsupported) || ctx.Err() != nil {
		return nil, "", nil, err
	}
	return fallbackLoad(ctx, rt.Models.log, rt.Models.cfg.Fallbacks, req.Path, rt.Supervisor.Active(), err,
		func(ctx context.Context, b backends.Backend) (*backends.ModelInfo, error) {
			return b.LoadModel(ctx, req)
		})
}

// lazyBackend is a fallback backend's supervisor, started on first use.
type lazyBackend struct {
	spec PluginSpec
	sc   SupervisorConfig

	mu  sync.Mutex
	sup *Supervisor
	err error // the last start's error
}

// get returns the supervisor, starting it when it is not running. A
// failed start is tried again on the next call.
func (l *lazyBackend) get(ctx context.Context) (backends.Backend, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sup != nil {
		return l.sup, nil
	}
	sc := l.sc
	sc.Plugins = []PluginSpec{l.spec}
	sup, err := NewSupervisor(ctx, sc)
	if err != nil {
		l.err = err
		return nil, err
	}
	l.sup = sup
	return sup, nil
}

// close stops the supervisor if it was started.
func (l *lazyBackend) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sup == nil {
		return nil
	}
	err := l.sup.Close()
	l.sup = nil
	return err
}

// closeAll stops every started fallback.
func closeAll(ls []*lazyBackend) error {
	var errs []error
	for _, l := range ls {
		errs = append(errs, l.close())
	}
	return errors.Join(errs...)
}

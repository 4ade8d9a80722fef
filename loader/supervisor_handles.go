// Handles: calls in flight against the live instance, and the remapping of model and session ids across restarts.

package loader

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/realmrt/realm/backends"
)

// acquire returns the live plugin, waiting (within ctx) while one is
// being restarted, and counts a call in flight on it that the caller
// ends with inst.inflight.Add(-1). While every plugin's breaker is open
// it fails at once with the unavailable error.
func (s *Supervisor) acquire(ctx context.Context) (*instance, error) {
	for {
		s.mu.Lock()
		switch {
		case s.closed:
			s.mu.Unlock()
			return nil, ErrClosed
		case s.cur != nil:
			inst := s.cur
			inst.inflight.Add(1)
			s.mu.Unlock()
			return inst, nil
		case s.unavail != nil:
			err := s.unavail
			s.mu.Unlock()
			return nil, err
		}
		ready := s.ready
		s.mu.Unlock()
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the backend plugin to restart: %w", ctx.Err())
		}
	}
}

// do runs fn against the live plugin. If the plugin dies during the
// call (or the call finds it dead), the error wraps ErrBackendCrashed,
// says which plugin died doing what, and carries its last error lines.
func (s *Supervisor) do(ctx context.Context, op string, fn func(ctx context.Context, inst *instance) error) error {
	inst, err := s.acquire(ctx)
	if err != nil {
		return fmt.Errorf("loader: %s: %w", op, err)
	}
	cctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(inst.ctx, cancel)
	err = fn(cctx, inst)
	stop()
	cancel()
	inst.inflight.Add(-1)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil && inst.ctx.Err() == nil {
		return fmt.Errorf("loader: %s: %w", op, ctx.Err())
	}
	if s.isClosed() {
		return fmt.Errorf("loader: %s: %w", op, ErrClosed)
	}
	if inst.ctx.Err() == nil && errors.Is(err, backends.ErrStaleHandle) {
		// A handle of an earlier process: the live one is fine.
		return fmt.Errorf("backend %s: %s: %w", inst.spec.Name, op, err)
	}
	if inst.ctx.Err() != nil || errors.Is(err, backends.ErrBackendCrashed) {
		s.markDead(inst, fmt.Errorf("%s: %w", op, err))
		return s.crashError(inst, op, err)
	}
	return fmt.Errorf("backend %s: %s: %w", inst.spec.Name, op, err)
}

// crashError describes a call that failed because the plugin died. It
// waits briefly for the dead process to be reaped so that its last
// stderr lines are complete.
func (s *Supervisor) crashError(inst *instance, op string, err error) error {
	select {
	case <-inst.done:
	case <-time.After(250 * time.Millisecond):
	}
	msg := err.Error()
	if cause := context.Cause(inst.ctx); cause != nil && !errors.Is(err, backends.ErrBackendCrashed) {
		msg = cause.Error() // the call was cut short because the plugin was found dead
	}
	return fmt.Errorf("%w: plugin %q (pid %d) died during %s: %s%s",
		backends.ErrBackendCrashed, inst.spec.Name, inst.pid, op, msg, formatLines(inst.stderr.lines()))
}

// model returns the current process's id of a supervisor model id. A
// model that failed to reload into this process (its file was missing,
// corrupt or failed its checksum) is tried again, verified like a first
// load, once its retry delay has passed: a model broken by a restart
// does not stay broken after its file comes back.
func (s *Supervisor) model(ctx context.Context, inst *instance, id backends.ModelID) (backends.ModelID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.models[id]
	if ok && m.err != nil && m.epoch == inst.epoch && !m.retrying && time.Since(m.failedAt) >= retryDelay(m.retries) {
		m.retrying = true
		s.mu.Unlock()
		inner, err := s.reloadOne(ctx, inst, backends.LoadRequest{Path: m.path, KVBudget: m.kvBudget}, m.verify)
		s.mu.Lock()
		m.retrying = false
		switch {
		case s.models[id] != m || inst.ctx.Err() != nil || m.epoch != inst.epoch:
			if err == nil {
				go s.unloadOrphans(inst, []backends.ModelID{inner})
			}
		case err == nil:
			s.log.Info("model reloaded after an earlier failure", "path", m.path, "attempts", m.retries+1)
			m.inner, m.err, m.retries = inner, nil, 0
		default:
			if errors.Is(err, backends.ErrBackendCrashed) {
				return 0, err
			}
			m.err = fmt.Errorf("loader: model %d (%s) could not be reloaded after a plugin restart (retrying in %v): %w",
				id, m.path, retryDelay(m.retries+1), err)
			m.failedAt = time.Now()
			m.retries++
		}
	}
	switch {
	case !ok:
		return 0, fmt.Errorf("model %d: %w", id, backends.ErrNotFound)
	case m.epoch != inst.epoch && inst.ctx.Err() != nil:
		return 0, fmt.Errorf("plugin process %d is gone: %w", inst.epoch, backends.ErrBackendCrashed)
	case m.err != nil:
		return 0, m.err
	case m.epoch != inst.epoch:
		return 0, fmt.Errorf("model %d is not loaded in plugin process %d: %w", id, inst.epoch, backends.ErrStaleHandle)
	}
	return m.inner, nil
}

// Session ids are epoch<<sessionEpochShift | sequence number.
const sessionEpochShift = 40

// session returns the current process's id of a supervisor session id.
func (s *Supervisor) session(inst *instance, id backends.SessionID) (sessionEntry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	epoch := uint32(uint64(id) >> sessionEpochShift)
	if epoch != inst.epoch {
		if inst.ctx.Err() != nil {
			return sessionEntry{}, fmt.Errorf("plugin process %d is gone: %w", inst.epoch, backends.ErrBackendCrashed)
		}
		if epoch != 0 && epoch < inst.epoch {
			// A process is only replaced after it died, so the session
			// was lost to a crash: the error says both, whether the
			// caller comes back before or after the restart finished.
			return sessionEntry{}, fmt.Errorf("session %#x belongs to plugin process %d, which died and has been restarted (now %d): %w: %w",
				uint64(id), epoch, inst.epoch, backends.ErrStaleHandle, backends.ErrBackendCrashed)
		}
		return sessionEntry{}, fmt.Errorf("session %#x: %w", uint64(id), backends.ErrNotFound)
	}
	e, ok := s.sessions[id]
	if !ok {
		return sessionEntry{}, fmt.Errorf("session %#x: %w", uint64(id), backends.ErrNotFound)
	}
	return e, nil
}

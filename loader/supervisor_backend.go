// The backends.Backend methods, forwarded to the live plugin.

package loader

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/realmrt/realm/backends"
)

// Info implements backends.Backend: the live plugin's Info.
func (s *Supervisor) Info(ctx context.Context) (*backends.Info, error) {
	var info *backends.Info
	err := s.do(ctx, "info", func(ctx context.Context, inst *instance) error {
		var err error
		info, err = inst.backend.Info(ctx)
		if err == nil {
			info.KVPools = s.kvPools(inst, info.KVPools)
			info.Preparing = s.hostModels(inst, info.Preparing)
		}
		return err
	})
	return info, err
}

// kvPools returns the pools of inst's models with the supervisor's
// model ids (pools of models it does not know are dropped).
func (s *Supervisor) kvPools(inst *instance, in []backends.KVPoolStats) []backends.KVPoolStats {
	if len(in) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []backends.KVPoolStats
	for _, p := range in {
		for id, m := range s.models {
			if m.epoch == inst.epoch && m.err == nil && m.inner == p.Model {
				p.Model, p.Path = id, m.path
				out = append(out, p)
				break
			}
		}
	}
	return out
}

// hostModels maps model ids of inst to the supervisor's (ids of models
// it does not know are dropped).
func (s *Supervisor) hostModels(inst *instance, in []backends.ModelID) []backends.ModelID {
	if len(in) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []backends.ModelID
	for _, inner := range in {
		for id, m := range s.models {
			if m.epoch == inst.epoch && m.err == nil && m.inner == inner {
				out = append(out, id)
				break
			}
		}
	}
	slices.Sort(out)
	return out
}

// LoadModel implements backends.Backend. The returned ModelInfo.ID is
// the supervisor's and stays valid across plugin restarts.
func (s *Supervisor) LoadModel(ctx context.Context, req backends.LoadRequest) (*backends.ModelInfo, error) {
	return s.LoadModelVerified(ctx, req, nil)
}

// LoadModelVerified is LoadModel for a model whose file must pass
// verify (a pinned checksum) each time the supervisor loads it again
// into a restarted plugin; the caller has verified it for this load.
// It implements VerifyingLoader.
func (s *Supervisor) LoadModelVerified(ctx context.Context, req backends.LoadRequest, verify func(context.Context) error) (*backends.ModelInfo, error) {
	var out *backends.ModelInfo
	err := s.do(ctx, "load model", func(ctx context.Context, inst *instance) error {
		mi, err := inst.backend.LoadModel(ctx, req)
		if err != nil {
			return err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.cur != inst {
			return fmt.Errorf("plugin process %d went away after loading %s: %w", inst.epoch, req.Path, backends.ErrBackendCrashed)
		}
		s.nextModel++
		id := backends.ModelID(s.nextModel)
		e := &modelEntry{path: req.Path, kvBudget: req.KVBudget, verify: verify, info: *mi, inner: mi.ID, epoch: inst.epoch}
		e.info.ID = id
		s.models[id] = e
		info := e.info
		out = &info
		return nil
	})
	return out, err
}

// UnloadModel implements backends.Backend. It gives up after
// SupervisorConfig.UnloadTimeout, so that a plugin hung in it holds up
// neither the model cache (which unloads to make room) nor shutdown; the
// model is forgotten either way.
func (s *Supervisor) UnloadModel(ctx context.Context, id backends.ModelID) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.UnloadTimeout)
	defer cancel()
	forget := func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.models, id)
		for sid, e := range s.sessions {
			if e.model == id {
				delete(s.sessions, sid)
			}
		}
	}
	err := s.do(ctx, "unload model", func(ctx context.Context, inst *instance) error {
		s.mu.Lock()
		m, ok := s.models[id]
		broken := ok && m.err != nil
		s.mu.Unlock()
		if broken {
			forget()
			return nil
		}
		inner, err := s.model(ctx, inst, id)
		if err != nil {
			return err
		}
		if err := inst.backend.UnloadModel(ctx, inner); err != nil {
			return err
		}
		forget()
		return nil
	})
	if errors.Is(err, backends.ErrBackendCrashed) {
		// The process that held it is gone; do not load it again.
		forget()
		return nil
	}
	if errors.Is(err, context.DeadlineExceeded) {
		forget()
	}
	return err
}

// OpenSession implements backends.Backend. The session id is valid in
// the current plugin process only.
func (s *Supervisor) OpenSession(ctx context.Context, id backends.ModelID, nCtx int) (backends.SessionID, error) {
	var sid backends.SessionID
	err := s.do(ctx, "open session", func(ctx context.Context, inst *instance) error {
		inner, err := s.model(ctx, inst, id)
		if err != nil {
			return err
		}
		isid, err := inst.backend.OpenSession(ctx, inner, nCtx)
		if err != nil {
			return err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.cur != inst {
			return fmt.Errorf("plugin process %d went away after opening a session: %w", inst.epoch, backends.ErrBackendCrashed)
		}
		s.nextSession++
		sid = backends.SessionID(uint64(inst.epoch)<<sessionEpochShift | s.nextSession&(1<<sessionEpochShift-1))
		s.sessions[sid] = sessionEntry{inner: isid, model: id}
		return nil
	})
	return sid, err
}

// Decode implements backends.Backend.
func (s *Supervisor) Decode(ctx context.Context, req backends.DecodeRequest) (*backends.DecodeResult, error) {
	var res *backends.DecodeResult
	err := s.do(ctx, "decode", func(ctx context.Context, inst *instance) error {
		e, err := s.session(inst, req.Session)
		if err != nil {
			return err
		}
		r := req
		r.Session = e.inner
		res, err = inst.backend.Decode(ctx, r)
		return err
	})
	return res, err
}

// Truncate implements backends.Backend.
func (s *Supervisor) Truncate(ctx context.Context, id backends.SessionID, n int) error {
	return s.do(ctx, "truncate", func(ctx context.Context, inst *instance) error {
		e, err := s.session(inst, id)
		if err != nil {
			return err
		}
		return inst.backend.Truncate(ctx, e.inner, n)
	})
}

// CloseSession implements backends.Backend.
func (s *Supervisor) CloseSession(ctx context.Context, id backends.SessionID) error {
	return s.do(ctx, "close session", func(ctx context.Context, inst *instance) error {
		e, err := s.session(inst, id)
		if err != nil {
			return err
		}
		err = inst.backend.CloseSession(ctx, e.inner)
		if err == nil || errors.Is(err, backends.ErrNotFound) {
			s.mu.Lock()
			delete(s.sessions, id)
			s.mu.Unlock()
		}
		return err
	})
}

// TensorOp implements backends.Backend. Weight references name
// supervisor model ids.
func (s *Supervisor) TensorOp(ctx context.Context, req backends.TensorOpRequest) (*backends.TensorOpResult, error) {
	var res *backends.TensorOpResult
	err := s.do(ctx, "tensor op", func(ctx context.Context, inst *instance) error {
		r := req
		r.Inputs = append([]backends.TensorRef(nil), req.Inputs...)
		for i := range r.Inputs {
			if r.Inputs[i].Model == 0 {
				continue
			}
			inner, err := s.model(ctx, inst, r.Inputs[i].Model)
			if err != nil {
				return err
			}
			r.Inputs[i].Model = inner
		}
		var err error
		res, err = inst.backend.TensorOp(ctx, r)
		return err
	})
	return res, err
}

// Embed implements backends.Backend. req.Model is a supervisor model id.
func (s *Supervisor) Embed(ctx context.Context, req backends.EmbedRequest) (*backends.EmbedResult, error) {
	var res *backends.EmbedResult
	err := s.do(ctx, "embed", func(ctx context.Context, inst *instance) error {
		inner, err := s.model(ctx, inst, req.Model)
		if err != nil {
			return err
		}
		r := req
		r.Model = inner
		res, err = inst.backend.Embed(ctx, r)
		return err
	})
	return res, err
}

// ModelErr returns why a held model cannot be served now (it failed to
// reload into the current plugin process), or nil.
func (s *Supervisor) ModelErr(id backends.ModelID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m, ok := s.models[id]; ok {
		return m.err
	}
	return nil
}

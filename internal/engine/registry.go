package engine

import (
	"fmt"
	"sync"

	"github.com/realmrt/realm/backends"
)

// Registry is the model and session bookkeeping of a backends.Backend:
// handle allocation, the loaded models (payload M) and the open sessions
// (payload S). A model stays read-locked while a call uses it, and
// RemoveModel waits for those calls before the caller frees it; calls on
// one session are serialized. It is safe for concurrent use.
type Registry[M, S any] struct {
	name string // error prefix ("engine", "vulkan")

	mu       sync.Mutex // guards the fields below
	nextID   uint64
	models   map[backends.ModelID]*modelEntry[M, S]
	sessions map[backends.SessionID]*sessionEntry[M, S]
}

// modelEntry is a loaded model. rw is held for reading by every call
// that uses it and for writing by RemoveModel.
type modelEntry[M, S any] struct {
	val      M
	rw       sync.RWMutex
	closed   bool                                       // guarded by rw
	sessions map[backends.SessionID]*sessionEntry[M, S] // guarded by Registry.mu; nil once removed
}

// sessionEntry is an open session; mu serializes calls on it.
type sessionEntry[M, S any] struct {
	model  *modelEntry[M, S]
	val    S
	mu     sync.Mutex
	closed bool // guarded by mu
}

// NewRegistry returns an empty registry whose errors start with name
// ("engine: model 3: not found").
func NewRegistry[M, S any](name string) *Registry[M, S] {
	return &Registry[M, S]{
		name:     name,
		models:   make(map[backends.ModelID]*modelEntry[M, S]),
		sessions: make(map[backends.SessionID]*sessionEntry[M, S]),
	}
}

// AddModel registers a loaded model and returns its new handle.
func (r *Registry[M, S]) AddModel(m M) backends.ModelID {
	e := &modelEntry[M, S]{val: m, sessions: make(map[backends.SessionID]*sessionEntry[M, S])}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.nextID++
	id := backends.ModelID(r.nextID)
	r.models[id] = e
	return id
}

// Model returns a loaded model, read-locked: it cannot be removed until
// release is called. It returns ErrNotFound for an unknown or removed
// model.
func (r *Registry[M, S]) Model(id backends.ModelID) (m M, release func(), err error) {
	r.mu.Lock()
	e, ok := r.models[id]
	r.mu.Unlock()
	if !ok {
		return m, nil, r.modelNotFound(id)
	}
	e.rw.RLock()
	if e.closed {
		e.rw.RUnlock()
		return m, nil, r.modelNotFound(id)
	}
	return e.val, e.rw.RUnlock, nil
}

// RemoveModel unhooks a model and its sessions, waits for the calls in
// flight on it, marks them closed and calls free (if not nil) with the
// model and its sessions that were still open, under the model's write
// lock. It returns ErrNotFound for an unknown model, else free's error.
func (r *Registry[M, S]) RemoveModel(id backends.ModelID, free func(m M, sessions []S) error) error {
	r.mu.Lock()
	e, ok := r.models[id]
	if !ok {
		r.mu.Unlock()
		return r.modelNotFound(id)
	}
	delete(r.models, id)
	sess := e.sessions
	e.sessions = nil
	for sid := range sess {
		delete(r.sessions, sid)
	}
	r.mu.Unlock()

	e.rw.Lock()
	defer e.rw.Unlock()
	e.closed = true
	open := make([]S, 0, len(sess))
	for _, se := range sess {
		se.mu.Lock()
		if !se.closed {
			se.closed = true
			open = append(open, se.val)
		}
		se.mu.Unlock()
	}
	if free == nil {
		return nil
	}
	return free(e.val, open)
}

// AddSession registers a session of model and returns its new handle.
// The caller should hold the model (from Model) while it creates s; if
// the model is being removed meanwhile, AddSession returns ErrNotFound
// and the caller must free s itself.
func (r *Registry[M, S]) AddSession(model backends.ModelID, s S) (backends.SessionID, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	me, ok := r.models[model]
	if !ok || me.sessions == nil {
		return 0, r.modelNotFound(model)
	}
	r.nextID++
	id := backends.SessionID(r.nextID)
	se := &sessionEntry[M, S]{model: me, val: s}
	r.sessions[id] = se
	me.sessions[id] = se
	return id, nil
}

// Session returns an open session, locked, with its model read-locked;
// the caller must call release when done. It returns ErrNotFound for an
// unknown or closed session.
func (r *Registry[M, S]) Session(id backends.SessionID) (s S, release func(), err error) {
	r.mu.Lock()
	e, ok := r.sessions[id]
	r.mu.Unlock()
	if !ok {
		return s, nil, r.sessionNotFound(id)
	}
	e.model.rw.RLock()
	e.mu.Lock()
	if e.model.closed || e.closed {
		e.mu.Unlock()
		e.model.rw.RUnlock()
		return s, nil, r.sessionNotFound(id)
	}
	return e.val, func() { e.mu.Unlock(); e.model.rw.RUnlock() }, nil
}

// RemoveSession unhooks a session, waits for the call in flight on it
// and calls free (if not nil) with it, under the session's lock. It
// returns ErrNotFound for an unknown session.
func (r *Registry[M, S]) RemoveSession(id backends.SessionID, free func(s S)) error {
	r.mu.Lock()
	e, ok := r.sessions[id]
	if ok {
		delete(r.sessions, id)
		if e.model.sessions != nil {
			delete(e.model.sessions, id)
		}
	}
	r.mu.Unlock()
	if !ok {
		return r.sessionNotFound(id)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.closed {
		e.closed = true
		if free != nil {
			free(e.val)
		}
	}
	return nil
}

// Range calls model (if not nil) for every registered model and session
// (if not nil) for every registered session, under the registry's lock:
// the callbacks must not call the registry, and may only read what in
// the payloads does not change.
func (r *Registry[M, S]) Range(model func(backends.ModelID, M), session func(backends.SessionID, S)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if model != nil {
		for id, e := range r.models {
			model(id, e.val)
		}
	}
	if session != nil {
		for id, e := range r.sessions {
			session(id, e.val)
		}
	}
}

// SessionSize returns the size of a new session: nCtx, or for nCtx ≤ 0
// def capped at the training context nCtxTrain. A size above nCtxTrain
// is an ErrInvalidArgument.
func (r *Registry[M, S]) SessionSize(def, nCtx, nCtxTrain int) (int, error) {
	if nCtx <= 0 {
		nCtx = min(def, nCtxTrain)
	}
	if nCtx > nCtxTrain {
		return 0, fmt.Errorf("%s: %w: context size %d exceeds the model's training context %d", r.name, backends.ErrInvalidArgument, nCtx, nCtxTrain)
	}
	return nCtx, nil
}

// CheckBatch validates a batch of tokens to decode at position start of
// a session of nCtx positions: at least one token, every token in [0,
// nVocab) (ErrInvalidArgument), and room for all of them
// (ErrContextFull).
func CheckBatch(tokens []int32, nVocab, start, nCtx int) error {
	if len(tokens) == 0 {
		return fmt.Errorf("%w: no tokens to decode", backends.ErrInvalidArgument)
	}
	for i, t := range tokens {
		if t < 0 || int(t) >= nVocab {
			return fmt.Errorf("%w: token %d (at %d) is out of range [0, %d)", backends.ErrInvalidArgument, t, i, nVocab)
		}
	}
	if len(tokens) > nCtx-start {
		return fmt.Errorf("%w: %d tokens at position %d exceed the context of %d", backends.ErrContextFull, len(tokens), start, nCtx)
	}
	return nil
}

// TruncateTokens returns tokens cut to its first n, or an
// ErrInvalidArgument when n is out of [0, len(tokens)].
func TruncateTokens(tokens []int32, n int) ([]int32, error) {
	if n < 0 || n > len(tokens) {
		return tokens, fmt.Errorf("%w: cannot truncate a session of %d tokens to %d", backends.ErrInvalidArgument, len(tokens), n)
	}
	return tokens[:n], nil
}

// modelNotFound is the ErrNotFound of model id.
func (r *Registry[M, S]) modelNotFound(id backends.ModelID) error {
	return fmt.Errorf("%s: model %d: %w", r.name, id, backends.ErrNotFound)
}

// sessionNotFound is the ErrNotFound of session id.
func (r *Registry[M, S]) sessionNotFound(id backends.SessionID) error {
	return fmt.Errorf("%s: session %d: %w", r.name, id, backends.ErrNotFound)
}

package core

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/realmrt/realm/abi"
	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/internal/grammar"
	"github.com/realmrt/realm/internal/sample"
	"github.com/realmrt/realm/model"
)

// instanceKey finds a run's instance in the context of its host calls.
type instanceKey struct{}

// maxHandles caps each handle table of an instance.
const maxHandles = 4096

// instance is the host-side state of one run: handle tables, limits,
// the last error. A guest is single-threaded, so host calls of one
// instance never overlap; release runs after the guest has stopped.
type instance struct {
	host   *Host
	policy Policy
	ctx    context.Context
	trace  io.Writer
	stdout *limitWriter

	models   table[*modelHandle]
	sessions table[*sessionHandle]
	tensors  table[*tensorHandle]

	// promptTokens and stopReason are what generate reports
	// (RunResult.PromptTokens, RunResult.StopReason).
	promptTokens int
	stopReason   string
	logprobs     []TokenLogprob     // RunResult.Logprobs
	onLogprob    func(TokenLogprob) // RunRequest.OnLogprob

	lastErr     string
	generated   int
	decoded     int
	tensorBytes int64 // host bytes held for the run (Policy.MaxTensorBytes)
	kvBytes     int64 // of the open sessions (Policy.MaxKVBytes)
	calls       int64
	logBytes    int64
	// cut is set when the run's end interrupted the guest inside a host
	// call, a sleep or a stdin read (see Host.runError).
	cut atomic.Bool
}

// markCut records that the run's end interrupted the guest.
func (in *instance) markCut() { in.cut.Store(true) }

// maxLogBytes caps what one run may send to the host log through
// realm_host_log (stderr has its own cap).
const maxLogBytes = 1 << 20

type modelHandle struct {
	m *model.Model
}

type sessionHandle struct {
	model   int32 // model handle in this instance
	m       *model.Model
	id      backends.SessionID
	nCtx    int
	nPast   int
	logits  []float32
	sampler *sample.Sampler
	history []int32
	kv      int64  // bytes counted in instance.kvBytes
	unkv    func() // gives the KV reservation back to the Models
	host    int64  // logits and history bytes counted in instance.tensorBytes
	// grammar is the parse of the grammar/json_schema sampler option
	// (grammarText its grammar), masked holds the masked logits.
	grammar     *grammar.Matcher
	grammarText string
	masked      []float32

	// greedy predicts that the guest samples the next single-token
	// decode as a plain argmax without reading its logits (true after
	// such a sample, false once it reads logits); such a decode asks the
	// backend for the token only (see hostfuncs_sessions.go).
	// noPluginSample is set once a prediction failed.
	greedy         bool
	noPluginSample bool
	// The backend sampled the last decode (logits is nil): its token,
	// and the decoded token to decode again should the guest read the
	// logits after all.
	sampledIn bool
	token     int32
	lastIDs   []int32
}

type tensorHandle struct {
	model  int32 // model handle of a weight, 0 for data
	m      *model.Model
	name   string // weight name
	shape  []int
	data   []float32 // host-held data (nil for weights)
	nbytes int64
}

func newInstance(h *Host, p Policy, trace io.Writer) *instance {
	return &instance{host: h, policy: p, trace: trace}
}

// table maps small positive handles to values. Handles are never reused
// within an instance, so a stale handle can never alias a new object.
type table[T any] struct {
	next int32
	m    map[int32]T
}

func (t *table[T]) add(v T) (int32, bool) {
	if len(t.m) >= maxHandles || t.next == 1<<31-1 {
		return 0, false
	}
	if t.m == nil {
		t.m = map[int32]T{}
	}
	t.next++
	t.m[t.next] = v
	return t.next, true
}

func (t *table[T]) get(h int32) (T, bool) {
	v, ok := t.m[h]
	return v, ok
}

func (t *table[T]) del(h int32) { delete(t.m, h) }

// releaseTimeout bounds the backend calls made to clean up after a run
// (a hung plugin must not hang the host).
const releaseTimeout = 10 * time.Second

// release frees everything the run still holds.
func (in *instance) release(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, releaseTimeout)
	defer cancel()
	for h, s := range in.sessions.m {
		if err := s.m.Backend.CloseSession(ctx, s.id); err != nil {
			in.host.log.Debug("closing session at end of run", "error", err)
		}
		in.dropSession(h, s)
	}
	for h := range in.tensors.m {
		in.tensors.del(h)
	}
	for h, m := range in.models.m {
		in.host.cfg.Models.Release(m.m)
		in.models.del(h)
	}
}

// hostError is a failure with an errno and a message for last_error.
type hostError struct {
	errno abi.Errno
	msg   string
}

func (e *hostError) Error() string { return e.msg }

func errf(errno abi.Errno, format string, args ...any) *hostError {
	return &hostError{errno: errno, msg: fmt.Sprintf(format, args...)}
}

// fail records err as the instance's last error and returns -errno.
func (in *instance) fail(err error) int32 {
	e := errnoOf(err)
	in.lastErr = err.Error()
	return -int32(e)
}

// Sentinels other packages may return that map to errnos. The loader's
// errors are matched by these interfaces so core does not import it.
type errnoer interface{ Errno() abi.Errno }

// errnoOf maps an error to its errno.
func errnoOf(err error) abi.Errno {
	var he *hostError
	if errors.As(err, &he) {
		return he.errno
	}
	var en errnoer
	if errors.As(err, &en) {
		return en.Errno()
	}
	var e abi.Errno
	if errors.As(err, &e) {
		return e
	}
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return abi.ErrnoCanceled
	case errors.Is(err, backends.ErrBackendCrashed), errors.Is(err, backends.ErrStaleHandle),
		errors.Is(err, backends.ErrPluginStart), errors.Is(err, backends.ErrProtocolMismatch):
		return abi.ErrnoUnavail
	case errors.Is(err, backends.ErrNotFound), errors.Is(err, os.ErrNotExist):
		return abi.ErrnoNoent
	case errors.Is(err, backends.ErrInvalidArgument):
		return abi.ErrnoInval
	case errors.Is(err, backends.ErrContextFull):
		return abi.ErrnoCtxfull
	case errors.Is(err, backends.ErrUnsupported):
		return abi.ErrnoNotsup
	case errors.Is(err, backends.ErrInvalidModel):
		return abi.ErrnoBadmodel
	case errors.Is(err, backends.ErrOutOfMemory):
		return abi.ErrnoNomem
	case errors.Is(err, os.ErrPermission):
		return abi.ErrnoAcces
	case errors.Is(err, ErrOutputLimit):
		return abi.ErrnoLimit
	}
	return abi.ErrnoBackend
}

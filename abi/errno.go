package abi

import "strconv"

// Errno is the error number a host function returns, negated, as its
// i32 result. The values and names are part of the ABI: they never
// change meaning once shipped, and new ones are only appended.
type Errno int32

// Error numbers. A host function that fails returns -errno; the guest
// can fetch a human-readable message with realm_host_last_error.
const (
	// ErrnoSuccess is not an error; no function returns it as a failure.
	ErrnoSuccess Errno = 0
	// ErrnoInval: an argument is invalid (bad flags, malformed JSON,
	// unknown op, a name that breaks the naming rules, a zero length
	// where data is required).
	ErrnoInval Errno = 1
	// ErrnoNoent: the named thing does not exist (no such model file,
	// no such weight tensor).
	ErrnoNoent Errno = 2
	// ErrnoAcces: the app's policy does not allow it (a model name
	// outside the app's patterns).
	ErrnoAcces Errno = 3
	// ErrnoBadf: a handle is not open in this instance (never opened,
	// already closed or unloaded, or another instance's handle).
	ErrnoBadf Errno = 4
	// Errno2big: an input is larger than the host accepts (a name over
	// MaxNameLen, JSON over MaxJSONLen, a token batch over n_ctx).
	Errno2big Errno = 5
	// ErrnoFault: a pointer/length pair is outside the guest's memory
	// (including ranges whose end overflows u32).
	ErrnoFault Errno = 6
	// ErrnoNomem: the host or backend is out of memory, or a per-run
	// budget (tensor bytes, open handles) is exhausted.
	ErrnoNomem Errno = 7
	// ErrnoUnavail: the backend is unavailable (its plugin crashed or
	// is restarting); handles into it are stale.
	ErrnoUnavail Errno = 8
	// ErrnoBackend: the backend failed the call for another reason.
	ErrnoBackend Errno = 9
	// ErrnoBadmodel: the model file is not a valid GGUF model the
	// backend can run.
	ErrnoBadmodel Errno = 10
	// ErrnoCtxfull: the session's context is full.
	ErrnoCtxfull Errno = 11
	// ErrnoCanceled: the run was cancelled or passed its deadline.
	ErrnoCanceled Errno = 12
	// ErrnoNotsup: the operation is not supported (by the backend, or
	// for this kind of handle).
	ErrnoNotsup Errno = 13
	// ErrnoLimit: a per-run limit was reached (max tokens, max output).
	ErrnoLimit Errno = 14
	// ErrnoIO: writing the guest's output failed.
	ErrnoIO Errno = 15
)

var errnoNames = [...]string{
	ErrnoSuccess:  "ESUCCESS",
	ErrnoInval:    "EINVAL",
	ErrnoNoent:    "ENOENT",
	ErrnoAcces:    "EACCES",
	ErrnoBadf:     "EBADF",
	Errno2big:     "E2BIG",
	ErrnoFault:    "EFAULT",
	ErrnoNomem:    "ENOMEM",
	ErrnoUnavail:  "EUNAVAIL",
	ErrnoBackend:  "EBACKEND",
	ErrnoBadmodel: "EBADMODEL",
	ErrnoCtxfull:  "ECTXFULL",
	ErrnoCanceled: "ECANCELED",
	ErrnoNotsup:   "ENOTSUP",
	ErrnoLimit:    "ELIMIT",
	ErrnoIO:       "EIO",
}

var errnoText = [...]string{
	ErrnoSuccess:  "success",
	ErrnoInval:    "invalid argument",
	ErrnoNoent:    "not found",
	ErrnoAcces:    "permission denied",
	ErrnoBadf:     "bad handle",
	Errno2big:     "argument too large",
	ErrnoFault:    "bad address",
	ErrnoNomem:    "out of memory",
	ErrnoUnavail:  "backend unavailable",
	ErrnoBackend:  "backend failed",
	ErrnoBadmodel: "invalid model file",
	ErrnoCtxfull:  "context full",
	ErrnoCanceled: "cancelled",
	ErrnoNotsup:   "not supported",
	ErrnoLimit:    "limit reached",
	ErrnoIO:       "i/o error",
}

// String returns the errno's stable name, e.g. "EINVAL", or
// "errno(N)" for a value this version does not know.
func (e Errno) String() string {
	if e >= 0 && int(e) < len(errnoNames) {
		return errnoNames[e]
	}
	return "errno(" + strconv.Itoa(int(e)) + ")"
}

// Error implements error: the stable name and a short description.
func (e Errno) Error() string {
	if e >= 0 && int(e) < len(errnoText) {
		return errnoNames[e] + ": " + errnoText[e]
	}
	return e.String()
}

// Errnos lists every defined errno in numeric order (for documentation
// and tests).
func Errnos() []Errno {
	out := make([]Errno, len(errnoNames))
	for i := range out {
		out[i] = Errno(i)
	}
	return out
}

// ParseResult splits a host function's i32 result into a non-negative
// value and an errno (ErrnoSuccess when r ≥ 0).
func ParseResult(r int32) (int32, Errno) {
	if r >= 0 {
		return r, ErrnoSuccess
	}
	return 0, Errno(-r)
}

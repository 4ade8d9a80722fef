package backends

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/realmrt/realm/backends/proto"
)

// Errors of the plugin machinery (host side). Like the sentinels in
// backend.go they are matched with errors.Is.
var (
	// ErrPluginStart reports a plugin process that could not be started
	// or exited before completing the go-plugin handshake.
	ErrPluginStart = errors.New("plugin failed to start")
	// ErrProtocolMismatch reports a plugin that speaks another version of
	// the backend protocol (go-plugin handshake or Info.ProtocolVersion).
	ErrProtocolMismatch = errors.New("plugin protocol version mismatch")
)

// sentinelCode is one row of the error mapping: a sentinel error, its
// stable wire name (carried in pb.ErrorDetail) and its gRPC status code.
type sentinelCode struct {
	err  error
	name string
	code codes.Code
}

// sentinelTable returns the one mapping between sentinel errors and
// gRPC status codes. A code that several sentinels share maps back to
// the first of them when a status carries no ErrorDetail (a status made
// by gRPC itself rather than by our server).
func sentinelTable() []sentinelCode {
	return []sentinelCode{
		{ErrNotFound, "not_found", codes.NotFound},
		{ErrInvalidArgument, "invalid_argument", codes.InvalidArgument},
		{ErrOutOfMemory, "out_of_memory", codes.ResourceExhausted},
		{ErrContextFull, "context_full", codes.ResourceExhausted},
		{ErrUnsupported, "unsupported", codes.Unimplemented},
		{ErrInvalidModel, "invalid_model", codes.FailedPrecondition},
		{ErrStaleHandle, "stale_handle", codes.Aborted},
		{ErrBackendCrashed, "backend_crashed", codes.Unavailable},
		{ErrPluginStart, "plugin_start", codes.Unavailable},
		{ErrProtocolMismatch, "protocol_mismatch", codes.FailedPrecondition},
	}
}

// StatusFromError converts an error of a Backend method into a gRPC
// status error for the wire (plugin side). The message is preserved;
// the sentinel it wraps, if any, travels as a pb.ErrorDetail beside the
// matching status code. Context errors become Canceled/DeadlineExceeded.
func StatusFromError(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	code := codes.Unknown
	name := ""
	switch {
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	default:
		for _, row := range sentinelTable() {
			if errors.Is(err, row.err) {
				code, name = row.code, row.name
				break
			}
		}
	}
	st := status.New(code, err.Error())
	if name != "" {
		if d, derr := st.WithDetails(&pb.ErrorDetail{Sentinel: name}); derr == nil {
			st = d
		}
	}
	return st.Err()
}

// ErrorFromStatus converts an error returned by a gRPC call into an
// error that wraps the matching sentinel (host side), keeping the
// plugin's message, so that callers use errors.Is across the boundary.
// Unavailable (the connection to the plugin is gone) always maps to
// ErrBackendCrashed; Canceled and DeadlineExceeded to the context errors.
func ErrorFromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	msg := st.Message()
	switch st.Code() {
	case codes.OK:
		return nil
	case codes.Canceled:
		return &wireError{msg: msg, sentinel: context.Canceled}
	case codes.DeadlineExceeded:
		return &wireError{msg: msg, sentinel: context.DeadlineExceeded}
	case codes.Unavailable:
		return &wireError{msg: msg, sentinel: ErrBackendCrashed}
	}
	table := sentinelTable()
	for _, d := range st.Details() {
		ed, ok := d.(*pb.ErrorDetail)
		if !ok {
			continue
		}
		for _, row := range table {
			if row.name == ed.GetSentinel() {
				return &wireError{msg: msg, sentinel: row.err}
			}
		}
	}
	for _, row := range table {
		if row.code == st.Code() {
			return &wireError{msg: msg, sentinel: row.err}
		}
	}
	return &wireError{msg: msg}
}

// wireError is an error received from a plugin: the plugin's message and
// the sentinel it stood for (nil when none).
type wireError struct {
	msg      string
	sentinel error
}

// Error returns the plugin's message.
func (e *wireError) Error() string {
	if e.msg == "" && e.sentinel != nil {
		return e.sentinel.Error()
	}
	return e.msg
}

// Unwrap returns the sentinel the error stood for on the plugin side.
func (e *wireError) Unwrap() error { return e.sentinel }

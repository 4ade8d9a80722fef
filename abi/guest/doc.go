// Package guest is the Go SDK for Realm guest apps (GOOS=wasip1
// GOARCH=wasm). It wraps the realm_host_* imports of package abi:
// handles become Model, Session and Tensor values, failures become
// *Error values (errors.Is(err, abi.ErrnoAcces) works), and
// variable-length outputs are retried with a larger buffer as the
// snprintf convention allows.
//
// Go's wasip1 port runs every goroutine on one thread, so host calls
// from several goroutines interleave but never overlap; the SDK needs
// no locking.
package guest

// Package abi is the contract between Realm guests and the Realm host:
// the names of the host functions a guest imports, their error numbers,
// flags, limits and the JSON documents they exchange. It has no
// dependencies so that the host (core), the Go guest SDK (abi/guest)
// and tools can all share it. Functions is the one table of host
// functions: `go generate` makes the Func* constants, the C header
// abi/realm.h and the Go guest stubs abi/guest/imports.go from it.
//
// # Conventions
//
// Every host function lives in the import module "env" (ModuleName) and
// is named realm_host_*. Parameters are i32 (u32 pointers and lengths
// into the guest's linear memory, or small integers). The i32 result is
// ≥ 0 on success (a handle, a count or a length) and -errno on failure
// (see Errno); realm_host_last_error returns the message of the last
// failure of the calling instance.
//
// Variable-length outputs take (out_ptr, out_cap) and follow snprintf:
// the result is the full length of the output; the bytes are written
// only when it fits (length ≤ out_cap), so a guest retries with a larger
// buffer. Capacities of token and float arrays count elements, not
// bytes. Structured data (parameters, model info, lists) is UTF-8 JSON;
// hot-path arrays (tokens, logits, tensor data, shapes) are raw
// little-endian i32 or f32 arrays.
//
// Handles (models, sessions, tensors) are small positive integers into
// tables that belong to one guest instance: they mean nothing in another
// instance, and become invalid (ErrnoBadf) once unloaded, closed or
// freed. Everything a run holds is released when the run ends.
//
// The host bounds-checks every pointer/length pair (ErrnoFault) and caps
// every length before it allocates (Errno2big), so no guest can make the
// host crash or allocate without bound.
package abi

import (
	"strconv"
	"strings"
)

// ModuleName is the import module of every host function.
const ModuleName = "env"

// Limits the host applies to guest inputs before reading them.
const (
	// MaxNameLen is the longest model or tensor name accepted (the
	// naming rule allows 128 bytes; longer names fail with Errno2big
	// without being copied).
	MaxNameLen = 256
	// MaxJSONLen is the largest JSON document a guest may pass.
	MaxJSONLen = 64 << 10
	// MaxTextLen is the largest text a guest may tokenize or prompt with.
	MaxTextLen = 4 << 20
	// MaxLogLen is the longest log message kept (longer ones are cut).
	MaxLogLen = 16 << 10
	// MaxDims is the largest tensor rank.
	MaxDims = 4
	// MaxInputs is the most inputs a tensor op takes.
	MaxInputs = 8
)

// Tokenize flags (realm_host_tokenize).
const (
	// TokenizeAddBOS prepends the beginning-of-sequence token.
	TokenizeAddBOS = 1 << 0
	// TokenizeParseSpecial turns the text of special tokens (like
	// "<s>") into those tokens instead of plain text.
	TokenizeParseSpecial = 1 << 1
	// TokenizeDefaultBOS adds BOS when the vocabulary's own default says
	// so (overrides TokenizeAddBOS).
	TokenizeDefaultBOS = 1 << 2
)

// Detokenize flags (realm_host_detokenize).
const (
	// DetokenizePieces concatenates each token's raw piece bytes, as a
	// stream would print them one by one (no leading-space cleanup, no
	// dropping of special tokens). Without it the text is decoded as a
	// whole.
	DetokenizePieces = 1 << 0
)

// Embed flags (realm_host_embed).
const (
	// EmbedNormalize scales each embedding to unit Euclidean length.
	EmbedNormalize = 1 << 0
)

// MaxEmbedInputs is the most sequences one realm_host_embed call takes.
const MaxEmbedInputs = 2048

// Log levels (realm_host_log).
const (
	LogDebug = 0
	LogInfo  = 1
	LogWarn  = 2
	LogError = 3
)

// MaxModelNameLen is the longest valid model name.
const MaxModelNameLen = 128

// CheckModelName reports why name is not a valid model name, or "" when
// it is. Valid names match ^[a-z0-9][a-z0-9._-]{0,127}$ and contain no
// "..": no path separators, no NUL, no upper case, no leading dot or dash.
// The host and the loader both apply this one rule.
func CheckModelName(name string) string {
	switch {
	case name == "":
		return "empty"
	case len(name) > MaxModelNameLen:
		return "longer than " + strconv.Itoa(MaxModelNameLen) + " bytes"
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		lowerOrDigit := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		switch {
		case c >= 'A' && c <= 'Z':
			return "contains upper-case letters (names are lower-case)"
		case i == 0 && !lowerOrDigit:
			return "must start with a lower-case letter or digit, not " + strconv.Quote(name[:1])
		case lowerOrDigit || c == '.' || c == '_' || c == '-':
		case c == '/' || c == '\\':
			return "contains a path separator"
		case c == 0:
			return "contains a NUL byte"
		default:
			return "byte " + strconv.Itoa(i) + " is " + strconv.Quote(name[i:i+1]) + "; allowed are a-z, 0-9, '.', '_', '-'"
		}
	}
	if strings.Contains(name, "..") {
		return `contains ".."`
	}
	return ""
}

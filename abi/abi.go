// Package abi is the contract between Realm guests and the Realm host:
// the names of the host functions a guest imports, their error numbers,
// flags, limits and the JSON documents they exchange. It has no
// dependencies so that the host (core), the Go guest SDK (abi/guest)
// and tools can all share it; abi/realm.h states the same contract for
// C guests.
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

// Log levels (realm_host_log).
const (
	LogDebug = 0
	LogInfo  = 1
	LogWarn  = 2
	LogError = 3
)

// Host function names, in ABI order. See the doc comment of each for its
// signature, result, errors and the guest memory it touches.
const (
	// FuncLoadModelByName loads (or shares an already loaded) model by
	// its registry name.
	//
	//	realm_host_load_model_by_name(name_ptr u32, name_len u32) -> i32
	//
	// Result: a model handle > 0.
	// Reads: name_len bytes at name_ptr (the name, no NUL).
	// Errors: EFAULT (range outside memory), E2BIG (name_len >
	// MaxNameLen; nothing copied), EINVAL (empty name, or a name that
	// breaks ^[a-z0-9][a-z0-9._-]{0,127}$: "/", "..", NUL, upper case),
	// EACCES (the app's policy does not list the name, or the resolved
	// path leaves the models directory), ENOENT (no such model),
	// EBADMODEL (not a valid GGUF model), ENOMEM, EUNAVAIL, EBACKEND,
	// ECANCELED.
	FuncLoadModelByName = "realm_host_load_model_by_name"

	// FuncUnloadModel drops this instance's reference to a model. Its
	// sessions and weight tensors become invalid.
	//
	//	realm_host_unload_model(model i32) -> i32
	//
	// Result: 0. Errors: EBADF.
	FuncUnloadModel = "realm_host_unload_model"

	// FuncListModels lists the model names this guest may load.
	//
	//	realm_host_list_models(out_ptr u32, out_cap u32) -> i32
	//
	// Result: the length of a JSON array of strings, ["a","b"].
	// Writes: that JSON at out_ptr when it fits in out_cap.
	// Errors: EFAULT, EBACKEND (the registry failed).
	FuncListModels = "realm_host_list_models"

	// FuncModelInfo describes a loaded model as a ModelInfo JSON object.
	//
	//	realm_host_model_info(model i32, out_ptr u32, out_cap u32) -> i32
	//
	// Result: the JSON length. Writes: the JSON when it fits.
	// Errors: EBADF, EFAULT.
	FuncModelInfo = "realm_host_model_info"

	// FuncTokenize turns text into token ids.
	//
	//	realm_host_tokenize(model i32, text_ptr u32, text_len u32, flags u32,
	//	                    out_ptr u32, out_cap u32) -> i32
	//
	// Reads: text_len bytes of UTF-8 at text_ptr. flags: Tokenize*.
	// Result: the number of tokens. Writes: that many little-endian i32
	// at out_ptr when the count ≤ out_cap (a count of tokens, not bytes).
	// Errors: EBADF, EFAULT, E2BIG (text_len > MaxTextLen), EINVAL
	// (unknown flags, or the tokenizer rejects the text), ENOTSUP (the
	// model has no tokenizer).
	FuncTokenize = "realm_host_tokenize"

	// FuncDetokenize turns token ids into text.
	//
	//	realm_host_detokenize(model i32, ids_ptr u32, n_ids u32, flags u32,
	//	                      out_ptr u32, out_cap u32) -> i32
	//
	// Reads: n_ids little-endian i32 at ids_ptr. flags: Detokenize*.
	// Result: the text length in bytes. Writes: the text when it fits.
	// Errors: EBADF, EFAULT, E2BIG (n_ids > 1<<20, or the text would be
	// longer than MaxTextLen), EINVAL (an id outside the vocabulary,
	// unknown flags).
	FuncDetokenize = "realm_host_detokenize"

	// FuncSessionOpen opens a session (KV cache and position) on a model.
	//
	//	realm_host_session_open(model i32, n_ctx u32) -> i32
	//
	// n_ctx 0 means the model's training context (capped by the policy).
	// Result: a session handle > 0.
	// Errors: EBADF, EINVAL (n_ctx larger than the model's or the
	// policy's context), ENOMEM, EUNAVAIL, EBACKEND.
	FuncSessionOpen = "realm_host_session_open"

	// FuncSessionDecode appends tokens to a session and computes the
	// logits of the last position (kept host-side for
	// realm_host_session_logits and realm_host_session_sample).
	//
	//	realm_host_session_decode(session i32, ids_ptr u32, n_ids u32) -> i32
	//
	// Reads: n_ids little-endian i32 at ids_ptr.
	// Result: the session length (n_past) after the call.
	// Errors: EBADF, EFAULT, EINVAL (n_ids 0, an id outside the
	// vocabulary), E2BIG (n_ids > n_ctx), ECTXFULL, ELIMIT (the policy's
	// max_tokens for this run is spent), EUNAVAIL, EBACKEND, ECANCELED.
	FuncSessionDecode = "realm_host_session_decode"

	// FuncSessionLogits copies out the logits of the last decoded
	// position.
	//
	//	realm_host_session_logits(session i32, out_ptr u32, out_cap u32) -> i32
	//
	// Result: n_vocab. Writes: n_vocab little-endian f32 at out_ptr when
	// n_vocab ≤ out_cap (a count of floats).
	// Errors: EBADF, EFAULT, EINVAL (nothing decoded yet).
	FuncSessionLogits = "realm_host_session_logits"

	// FuncSessionSample samples a token from the last logits on the
	// host, with SampleParams JSON (greedy when empty). The session keeps
	// its RNG (seeded by the first call's seed) and the recent tokens for
	// the repetition penalty.
	//
	//	realm_host_session_sample(session i32, params_ptr u32, params_len u32) -> i32
	//
	// Result: the token id. Errors: EBADF, EFAULT, E2BIG (params_len >
	// MaxJSONLen), EINVAL (malformed JSON, nothing decoded yet).
	FuncSessionSample = "realm_host_session_sample"

	// FuncSessionTruncate rewinds a session to its first n positions.
	//
	//	realm_host_session_truncate(session i32, n u32) -> i32
	//
	// Result: n. Errors: EBADF, EINVAL (n > n_past), EUNAVAIL, EBACKEND.
	FuncSessionTruncate = "realm_host_session_truncate"

	// FuncSessionClose closes a session.
	//
	//	realm_host_session_close(session i32) -> i32
	//
	// Result: 0. Errors: EBADF.
	FuncSessionClose = "realm_host_session_close"

	// FuncGenerate generates text from a prompt in one call and streams
	// it to the guest's stdout (the same writer fd 1 uses) as tokens
	// complete.
	//
	//	realm_host_generate(model i32, prompt_ptr u32, prompt_len u32,
	//	                    params_ptr u32, params_len u32) -> i32
	//
	// Reads: the prompt (UTF-8) and GenerateParams JSON (may be empty).
	// Result: the number of tokens generated.
	// Errors: EBADF, EFAULT, E2BIG, EINVAL (malformed JSON, unknown
	// fields, an empty stop string), ECTXFULL (the prompt does not fit),
	// ELIMIT (the policy's max_tokens is spent, or max output reached),
	// EIO (the output failed), ENOTSUP (no tokenizer), EUNAVAIL,
	// EBACKEND, ECANCELED (the run's deadline passed).
	FuncGenerate = "realm_host_generate"

	// FuncTensorFromWeight makes a tensor handle for a weight of a loaded
	// model; the data stays in the backend.
	//
	//	realm_host_tensor_from_weight(model i32, name_ptr u32, name_len u32) -> i32
	//
	// Result: a tensor handle > 0. Errors: EBADF, EFAULT, E2BIG (name_len
	// > MaxNameLen), ENOENT (no such tensor).
	FuncTensorFromWeight = "realm_host_tensor_from_weight"

	// FuncTensorFromData makes an f32 tensor from guest data.
	//
	//	realm_host_tensor_from_data(data_ptr u32, n u32, shape_ptr u32, n_dims u32) -> i32
	//
	// Reads: n little-endian f32 at data_ptr; n_dims little-endian i32 at
	// shape_ptr (fastest-varying first) whose product must equal n.
	// Result: a tensor handle > 0. Errors: EFAULT, EINVAL (n_dims 0 or >
	// MaxDims, a dimension ≤ 0, product ≠ n), ENOMEM (the run's tensor
	// budget is spent).
	FuncTensorFromData = "realm_host_tensor_from_data"

	// FuncTensorOp runs one backend tensor op and returns its f32 result
	// as a new tensor.
	//
	//	realm_host_tensor_op(op_ptr u32, op_len u32, inputs_ptr u32, n_inputs u32,
	//	                     params_ptr u32, params_len u32) -> i32
	//
	// Reads: the op name (matmul, add, mul, rmsnorm, softmax, silu,
	// silu_mul, rope, get_rows, attention), n_inputs little-endian i32
	// tensor handles, OpParams JSON (may be empty).
	// Result: a tensor handle > 0. Errors: EFAULT, EINVAL (unknown op,
	// n_inputs 0 or > MaxInputs, shapes the op rejects, malformed JSON),
	// E2BIG, EBADF (an input handle), ENOTSUP (the backend lacks the op),
	// ENOMEM, EUNAVAIL, EBACKEND.
	FuncTensorOp = "realm_host_tensor_op"

	// FuncTensorShape copies out a tensor's shape.
	//
	//	realm_host_tensor_shape(tensor i32, out_ptr u32, out_cap u32) -> i32
	//
	// Result: the rank. Writes: rank little-endian i32 when rank ≤ out_cap.
	// Errors: EBADF, EFAULT.
	FuncTensorShape = "realm_host_tensor_shape"

	// FuncTensorRead copies out a tensor's data as f32 (weights are
	// dequantized by the backend).
	//
	//	realm_host_tensor_read(tensor i32, out_ptr u32, out_cap u32) -> i32
	//
	// Result: the element count. Writes: that many little-endian f32 when
	// count ≤ out_cap. Errors: EBADF, EFAULT, ENOTSUP, EBACKEND.
	FuncTensorRead = "realm_host_tensor_read"

	// FuncTensorFree frees a tensor handle.
	//
	//	realm_host_tensor_free(tensor i32) -> i32
	//
	// Result: 0. Errors: EBADF.
	FuncTensorFree = "realm_host_tensor_free"

	// FuncLog writes a message to the host log at a level (Log*).
	//
	//	realm_host_log(level u32, msg_ptr u32, msg_len u32) -> i32
	//
	// Reads: msg_len bytes (cut to MaxLogLen). Result: 0.
	// Errors: EFAULT, EINVAL (unknown level), ELIMIT (the run has logged
	// more than 1 MiB).
	FuncLog = "realm_host_log"

	// FuncLastError copies out the message of the last failed call of
	// this instance ("" when none).
	//
	//	realm_host_last_error(out_ptr u32, out_cap u32) -> i32
	//
	// Result: the message length. Writes: the message when it fits.
	// Errors: EFAULT.
	FuncLastError = "realm_host_last_error"
)

// Funcs lists every host function name in ABI order.
func Funcs() []string {
	return []string{
		FuncLoadModelByName, FuncUnloadModel, FuncListModels, FuncModelInfo,
		FuncTokenize, FuncDetokenize,
		FuncSessionOpen, FuncSessionDecode, FuncSessionLogits, FuncSessionSample,
		FuncSessionTruncate, FuncSessionClose,
		FuncGenerate,
		FuncTensorFromWeight, FuncTensorFromData, FuncTensorOp, FuncTensorShape,
		FuncTensorRead, FuncTensorFree,
		FuncLog, FuncLastError,
	}
}

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

package abi

//go:generate go run ./internal/abigen

// ParamType is the meaning of one i32 parameter of a host function. On
// the wire every parameter is a wasm i32; the type says how the host
// reads it, how the C header and the Go guest stubs declare it, and how
// a trace prints it.
type ParamType uint8

// Parameter types.
const (
	// ParamHandle is a model, session or tensor handle (signed i32).
	ParamHandle ParamType = iota + 1
	// ParamInt32 is a small signed integer (a log level).
	ParamInt32
	// ParamUint32 is an unsigned count, length, capacity or flag set.
	ParamUint32
	// ParamBytesIn is the address of bytes the host reads.
	ParamBytesIn
	// ParamBytesOut is the address of bytes the host writes.
	ParamBytesOut
	// ParamI32sIn is the address of little-endian i32 values the host reads.
	ParamI32sIn
	// ParamI32sOut is the address of little-endian i32 values the host writes.
	ParamI32sOut
	// ParamF32sIn is the address of little-endian f32 values the host reads.
	ParamF32sIn
	// ParamF32sOut is the address of little-endian f32 values the host writes.
	ParamF32sOut
)

// Signed reports whether the parameter is read as a signed i32 (handles
// and levels); every other parameter is a u32.
func (t ParamType) Signed() bool { return t == ParamHandle || t == ParamInt32 }

// Param is one named parameter of a host function.
type Param struct {
	Name string // snake_case, as in the signature: "name_ptr", "n_ctx"
	Type ParamType
}

// Func describes one host function: the single table from which the Go
// constants (funcs_gen.go), the C header (realm.h), the Go guest import
// stubs (guest/imports.go) and the host's export table (package core)
// are all made. Every function returns one i32: Result on success,
// -errno on failure.
type Func struct {
	Name   string  // the import name, realm_host_*
	Doc    string  // what it does, one paragraph
	Params []Param // in order
	Result string  // what a non-negative result means
	Notes  string  // the memory it reads and writes, and its errors
}

func p(name string, t ParamType) Param { return Param{Name: name, Type: t} }

// Functions returns the host functions in ABI order (a fresh copy).
// Run `go generate ./abi` after changing it; a test fails while the
// generated files disagree with it.
func Functions() []Func {
	return []Func{{
		Name:   "realm_host_load_model_by_name",
		Doc:    "loads (or shares an already loaded) model by its registry name.",
		Params: []Param{p("name_ptr", ParamBytesIn), p("name_len", ParamUint32)},
		Result: "a model handle > 0",
		Notes: "Reads: name_len bytes at name_ptr (the name, no NUL). " +
			"Errors: EFAULT (range outside memory), E2BIG (name_len > MaxNameLen; nothing copied), " +
			`EINVAL (empty name, or a name that breaks ^[a-z0-9][a-z0-9._-]{0,127}$: "/", "..", NUL, upper case), ` +
			"EACCES (the app's policy does not list the name, or the resolved path leaves the models directory), " +
			"ENOENT (no such model), EBADMODEL (not a valid GGUF model), ENOMEM, EUNAVAIL, EBACKEND, ECANCELED.",
	}, {
		Name:   "realm_host_unload_model",
		Doc:    "drops this instance's reference to a model. Its sessions and weight tensors become invalid.",
		Params: []Param{p("model", ParamHandle)},
		Result: "0",
		Notes:  "Errors: EBADF.",
	}, {
		Name:   "realm_host_list_models",
		Doc:    "lists the model names this guest may load.",
		Params: []Param{p("out_ptr", ParamBytesOut), p("out_cap", ParamUint32)},
		Result: `the length of a JSON array of strings, ["a","b"]`,
		Notes:  "Writes: that JSON at out_ptr when it fits in out_cap. Errors: EFAULT, EBACKEND (the registry failed).",
	}, {
		Name:   "realm_host_model_info",
		Doc:    "describes a loaded model as a ModelInfo JSON object.",
		Params: []Param{p("model", ParamHandle), p("out_ptr", ParamBytesOut), p("out_cap", ParamUint32)},
		Result: "the JSON length",
		Notes:  "Writes: the JSON when it fits. Errors: EBADF, EFAULT.",
	}, {
		Name: "realm_host_tokenize",
		Doc:  "turns text into token ids.",
		Params: []Param{p("model", ParamHandle), p("text_ptr", ParamBytesIn), p("text_len", ParamUint32),
			p("flags", ParamUint32), p("out_ptr", ParamI32sOut), p("out_cap", ParamUint32)},
		Result: "the number of tokens",
		Notes: "Reads: text_len bytes of UTF-8 at text_ptr. flags: Tokenize*. " +
			"Writes: that many little-endian i32 at out_ptr when the count ≤ out_cap (a count of tokens, not bytes). " +
			"Errors: EBADF, EFAULT, E2BIG (text_len > MaxTextLen), EINVAL (unknown flags, or the tokenizer rejects the text), " +
			"ENOTSUP (the model has no tokenizer).",
	}, {
		Name: "realm_host_detokenize",
		Doc:  "turns token ids into text.",
		Params: []Param{p("model", ParamHandle), p("ids_ptr", ParamI32sIn), p("n_ids", ParamUint32),
			p("flags", ParamUint32), p("out_ptr", ParamBytesOut), p("out_cap", ParamUint32)},
		Result: "the text length in bytes",
		Notes: "Reads: n_ids little-endian i32 at ids_ptr. flags: Detokenize*. Writes: the text when it fits. " +
			"Errors: EBADF, EFAULT, E2BIG (n_ids > 1<<20, or the text would be longer than MaxTextLen), " +
			"EINVAL (an id outside the vocabulary, unknown flags).",
	}, {
		Name:   "realm_host_session_open",
		Doc:    "opens a session (KV cache and position) on a model.",
		Params: []Param{p("model", ParamHandle), p("n_ctx", ParamUint32)},
		Result: "a session handle > 0",
		Notes: "n_ctx 0 means the model's training context (capped by the policy). " +
			"Errors: EBADF, EINVAL (n_ctx larger than the model's or the policy's context), ENOMEM, EUNAVAIL, EBACKEND.",
	}, {
		Name: "realm_host_session_decode",
		Doc: "appends tokens to a session and computes the logits of the last position " +
			"(kept host-side for realm_host_session_logits and realm_host_session_sample).",
		Params: []Param{p("session", ParamHandle), p("ids_ptr", ParamI32sIn), p("n_ids", ParamUint32)},
		Result: "the session length (n_past) after the call",
		Notes: "Reads: n_ids little-endian i32 at ids_ptr. " +
			"Errors: EBADF, EFAULT, EINVAL (n_ids 0, an id outside the vocabulary), E2BIG (n_ids > n_ctx), ECTXFULL, " +
			"ELIMIT (the policy's max_tokens for this run is spent), EUNAVAIL, EBACKEND, ECANCELED.",
	}, {
		Name:   "realm_host_session_logits",
		Doc:    "copies out the logits of the last decoded position.",
		Params: []Param{p("session", ParamHandle), p("out_ptr", ParamF32sOut), p("out_cap", ParamUint32)},
		Result: "n_vocab",
		Notes: "Writes: n_vocab little-endian f32 at out_ptr when n_vocab ≤ out_cap (a count of floats). " +
			"Errors: EBADF, EFAULT, EINVAL (nothing decoded yet).",
	}, {
		Name: "realm_host_session_sample",
		Doc: "samples a token from the last logits on the host, with SampleParams JSON (greedy when empty). " +
			"The session keeps its RNG (seeded by the first call's seed) and the recent tokens for the repetition penalty. " +
			"With grammar or json_schema the token is drawn from the tokens that can continue the constrained text " +
			"(the session keeps the parse and advances it by each sampled token; an end-of-generation token only where the text is complete).",
		Params: []Param{p("session", ParamHandle), p("params_ptr", ParamBytesIn), p("params_len", ParamUint32)},
		Result: "the token id",
		Notes: "Errors: EBADF, EFAULT, E2BIG (params_len > MaxJSONLen), EINVAL (malformed JSON, nothing decoded yet, " +
			"an invalid grammar or schema, no token can continue it).",
	}, {
		Name:   "realm_host_session_truncate",
		Doc:    "rewinds a session to its first n positions.",
		Params: []Param{p("session", ParamHandle), p("n", ParamUint32)},
		Result: "n",
		Notes:  "Errors: EBADF, EINVAL (n > n_past), EUNAVAIL, EBACKEND.",
	}, {
		Name:   "realm_host_session_close",
		Doc:    "closes a session.",
		Params: []Param{p("session", ParamHandle)},
		Result: "0",
		Notes:  "Errors: EBADF.",
	}, {
		Name: "realm_host_generate",
		Doc: "generates text from a prompt in one call and streams it to the guest's stdout " +
			"(the same writer fd 1 uses) as tokens complete.",
		Params: []Param{p("model", ParamHandle), p("prompt_ptr", ParamBytesIn), p("prompt_len", ParamUint32),
			p("params_ptr", ParamBytesIn), p("params_len", ParamUint32)},
		Result: "the number of tokens generated",
		Notes: "Reads: the prompt (UTF-8) and GenerateParams JSON (may be empty). " +
			"With grammar or json_schema (see realm_host_session_sample) the output is a sentence of the grammar: " +
			"generation ends at an end-of-generation token, which is allowed only where the text is complete. " +
			"Errors: EBADF, EFAULT, E2BIG, EINVAL (malformed JSON, unknown fields, an empty stop string, an invalid grammar or schema), " +
			"ECTXFULL (the prompt does not fit), ELIMIT (the policy's max_tokens is spent, or max output reached), " +
			"EIO (the output failed), ENOTSUP (no tokenizer), EUNAVAIL, EBACKEND, ECANCELED (the run's deadline passed).",
	}, {
		Name:   "realm_host_tensor_from_weight",
		Doc:    "makes a tensor handle for a weight of a loaded model; the data stays in the backend.",
		Params: []Param{p("model", ParamHandle), p("name_ptr", ParamBytesIn), p("name_len", ParamUint32)},
		Result: "a tensor handle > 0",
		Notes:  "Errors: EBADF, EFAULT, E2BIG (name_len > MaxNameLen), ENOENT (no such tensor).",
	}, {
		Name: "realm_host_tensor_from_data",
		Doc:  "makes an f32 tensor from guest data.",
		Params: []Param{p("data_ptr", ParamF32sIn), p("n", ParamUint32),
			p("shape_ptr", ParamI32sIn), p("n_dims", ParamUint32)},
		Result: "a tensor handle > 0",
		Notes: "Reads: n little-endian f32 at data_ptr; n_dims little-endian i32 at shape_ptr (fastest-varying first) " +
			"whose product must equal n. " +
			"Errors: EFAULT, EINVAL (n_dims 0 or > MaxDims, a dimension ≤ 0, product ≠ n), " +
			"ENOMEM (the run's tensor budget is spent).",
	}, {
		Name: "realm_host_tensor_op",
		Doc:  "runs one backend tensor op and returns its f32 result as a new tensor.",
		Params: []Param{p("op_ptr", ParamBytesIn), p("op_len", ParamUint32), p("inputs_ptr", ParamI32sIn),
			p("n_inputs", ParamUint32), p("params_ptr", ParamBytesIn), p("params_len", ParamUint32)},
		Result: "a tensor handle > 0",
		Notes: "Reads: the op name (a backends.Op* name such as matmul), n_inputs little-endian i32 tensor handles, OpParams JSON (may be empty). " +
			"Errors: EFAULT, EINVAL (unknown op, n_inputs 0 or > MaxInputs, shapes the op rejects, malformed JSON), " +
			"E2BIG, EBADF (an input handle), ENOTSUP (the backend lacks the op), ENOMEM, EUNAVAIL, EBACKEND.",
	}, {
		Name:   "realm_host_tensor_shape",
		Doc:    "copies out a tensor's shape.",
		Params: []Param{p("tensor", ParamHandle), p("out_ptr", ParamI32sOut), p("out_cap", ParamUint32)},
		Result: "the rank",
		Notes:  "Writes: rank little-endian i32 when rank ≤ out_cap. Errors: EBADF, EFAULT.",
	}, {
		Name:   "realm_host_tensor_read",
		Doc:    "copies out a tensor's data as f32 (weights are dequantized by the backend).",
		Params: []Param{p("tensor", ParamHandle), p("out_ptr", ParamF32sOut), p("out_cap", ParamUint32)},
		Result: "the element count",
		Notes:  "Writes: that many little-endian f32 when count ≤ out_cap. Errors: EBADF, EFAULT, ENOTSUP, EBACKEND.",
	}, {
		Name:   "realm_host_tensor_free",
		Doc:    "frees a tensor handle.",
		Params: []Param{p("tensor", ParamHandle)},
		Result: "0",
		Notes:  "Errors: EBADF.",
	}, {
		Name:   "realm_host_log",
		Doc:    "writes a message to the host log at a level (Log*).",
		Params: []Param{p("level", ParamInt32), p("msg_ptr", ParamBytesIn), p("msg_len", ParamUint32)},
		Result: "0",
		Notes: "Reads: msg_len bytes (cut to MaxLogLen). " +
			"Errors: EFAULT, EINVAL (unknown level), ELIMIT (the run has logged more than 1 MiB).",
	}, {
		Name:   "realm_host_last_error",
		Doc:    `copies out the message of the last failed call of this instance ("" when none).`,
		Params: []Param{p("out_ptr", ParamBytesOut), p("out_cap", ParamUint32)},
		Result: "the message length",
		Notes:  "Writes: the message when it fits. Errors: EFAULT.",
	}, {
		Name: "realm_host_embed",
		Doc: "computes the pooled embedding of each of n_inputs token sequences with an embedding model " +
			"(model_info's pooling is set), in one batch: the sequences are the n_ids ids at ids_ptr, " +
			"cut into the lengths at lens_ptr.",
		Params: []Param{p("model", ParamHandle), p("ids_ptr", ParamI32sIn), p("n_ids", ParamUint32),
			p("lens_ptr", ParamI32sIn), p("n_inputs", ParamUint32), p("flags", ParamUint32),
			p("out_ptr", ParamF32sOut), p("out_cap", ParamUint32)},
		Result: "n_inputs·n_embd (a count of floats)",
		Notes: "Reads: n_ids little-endian i32 token ids at ids_ptr (tokenized with the model's special tokens, " +
			"for bert CLS … SEP) and n_inputs i32 lengths at lens_ptr. flags: Embed*. " +
			"Writes: n_embd little-endian f32 per input, in order, at out_ptr when the count ≤ out_cap; " +
			"a smaller out_cap computes nothing and only returns the count. " +
			"Errors: EBADF, EFAULT, EINVAL (n_inputs 0, an empty input, lengths that do not add up to n_ids, " +
			"an id outside the vocabulary, unknown flags), E2BIG (an input longer than the model's or the policy's context, " +
			"n_inputs > MaxEmbedInputs), ENOTSUP (not an embedding model, or its backend cannot embed), " +
			"ELIMIT (the policy's max_tokens for this run is spent), EUNAVAIL, EBACKEND, ECANCELED.",
	}}
}

// Funcs lists every host function name in ABI order.
func Funcs() []string {
	fs := Functions()
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = f.Name
	}
	return names
}

package abi

import "encoding/json"

// ModelInfo is the JSON document realm_host_model_info returns.
type ModelInfo struct {
	Name         string         `json:"name"`
	Arch         string         `json:"arch"`
	Backend      string         `json:"backend"`
	NCtxTrain    int            `json:"n_ctx_train"`
	NVocab       int            `json:"n_vocab"`
	NEmbd        int            `json:"n_embd"`
	NLayer       int            `json:"n_layer"`
	NHead        int            `json:"n_head"`
	NHeadKV      int            `json:"n_head_kv"`
	NFF          int            `json:"n_ff"`
	TensorTypes  map[string]int `json:"tensor_types"` // type name → tensor count
	WeightBytes  uint64         `json:"weight_bytes"`
	ChatTemplate string         `json:"chat_template,omitempty"`
	BOS          int32          `json:"bos"`
	EOS          int32          `json:"eos"`
	EOG          []int32        `json:"eog"`     // every end-of-generation token
	AddBOS       bool           `json:"add_bos"` // the vocabulary's default
}

// SampleParams is the JSON realm_host_session_sample takes. The zero
// value (or an empty document) is greedy decoding.
type SampleParams struct {
	Temperature   float32 `json:"temperature,omitempty"`
	TopK          int     `json:"top_k,omitempty"`
	TopP          float32 `json:"top_p,omitempty"`
	MinP          float32 `json:"min_p,omitempty"`
	RepeatPenalty float32 `json:"repeat_penalty,omitempty"`
	RepeatLastN   int     `json:"repeat_last_n,omitempty"`
	Seed          uint64  `json:"seed,omitempty"`
	// Grammar (llama.cpp's GBNF notation, start rule "root") or
	// JSONSchema (a JSON schema of the subset package grammar documents)
	// constrain the tokens to a language: the host masks the logits of
	// every token that cannot continue it before it draws, and allows an
	// end-of-generation token only where the text is complete. At most
	// one of them. realm_host_generate applies it to its whole output;
	// realm_host_session_sample keeps one parse per session, advanced by
	// each token it samples (and restarted when the grammar or schema
	// changes, or after it sampled the end of generation). Optional:
	// older guests omit them.
	Grammar    string          `json:"grammar,omitempty"`
	JSONSchema json.RawMessage `json:"json_schema,omitempty"`
}

// GenerateParams is the JSON realm_host_generate takes. Zero fields
// take defaults: MaxTokens the policy's limit (or 256), greedy sampling,
// the vocabulary's default for BOS.
type GenerateParams struct {
	SampleParams
	MaxTokens int      `json:"max_tokens,omitempty"`
	Stop      []string `json:"stop,omitempty"`
	// NCtx is the session's context size (0: the prompt's tokens plus
	// max_tokens, rounded up to 256, capped by the model and the policy).
	NCtx int `json:"n_ctx,omitempty"`
	// Logprobs asks the host to record each generated token's
	// log-probability, and TopLogprobs (0–20) that many most likely
	// alternatives per position; the embedder reads them from the run's
	// result (core.RunResult.Logprobs). Optional: older guests omit them.
	Logprobs    bool `json:"logprobs,omitempty"`
	TopLogprobs int  `json:"top_logprobs,omitempty"`
	// PresencePenalty and FrequencyPenalty (OpenAI's, −2 to 2) lower the
	// logits of tokens already generated: once per token present, and
	// per occurrence.
	PresencePenalty  float32 `json:"presence_penalty,omitempty"`
	FrequencyPenalty float32 `json:"frequency_penalty,omitempty"`
}

// OpParams is the JSON realm_host_tensor_op takes: the scalar parameters
// of an op (see the op list in realm_host_tensor_op).
type OpParams struct {
	Eps      float32 `json:"eps,omitempty"`
	IDs      []int32 `json:"ids,omitempty"`
	Pos      []int32 `json:"pos,omitempty"`
	NDims    int     `json:"n_dims,omitempty"`
	Base     float32 `json:"base,omitempty"`
	NHead    int     `json:"n_head,omitempty"`
	NHeadKV  int     `json:"n_head_kv,omitempty"`
	HeadDim  int     `json:"head_dim,omitempty"`
	StartPos int     `json:"start_pos,omitempty"`
	Scale    float32 `json:"scale,omitempty"`
}

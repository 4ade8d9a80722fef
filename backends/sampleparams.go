package backends

// SampleParams are the sampling parameters of a Decode with
// WantSample (and of the host's own sampler). The zero value is greedy
// decoding. The samplers themselves live in internal/sample, shared by
// the host and the backends so that one seed gives one answer whichever
// side samples.
type SampleParams struct {
	// Temperature ≤ 0 means greedy (argmax).
	Temperature float32 `json:"temperature"`
	// TopK keeps the K most likely tokens; ≤ 0 disables it.
	TopK int `json:"top_k"`
	// TopP keeps the smallest set whose probability mass reaches P;
	// ≤ 0 or ≥ 1 disables it.
	TopP float32 `json:"top_p"`
	// MinP drops tokens whose probability is below MinP × the top
	// probability; ≤ 0 disables it.
	MinP float32 `json:"min_p"`
	// RepeatPenalty > 1 penalizes tokens seen in the last RepeatLastN
	// tokens (llama.cpp's rule: divide positive logits, multiply
	// negative ones); 0, 1, a negative or a non-finite value disables it.
	RepeatPenalty float32 `json:"repeat_penalty"`
	// RepeatLastN is the window of the repetition penalty (64 when 0).
	RepeatLastN int `json:"repeat_last_n"`
	// Seed seeds the RNG.
	Seed uint64 `json:"seed"`
}

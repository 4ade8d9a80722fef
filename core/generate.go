package core

import (
	"fmt"

	"github.com/tetratelabs/wazero/api"

	"github.com/realmrt/realm/abi"
	"github.com/realmrt/realm/internal/gen"
)

// DefaultMaxTokens is realm_host_generate's max_tokens when neither the
// request nor the policy sets one.
const DefaultMaxTokens = 256

func generate(in *instance, mem api.Memory, p []uint64) (int32, error) {
	mh, err := in.model(i32(p[0]))
	if err != nil {
		return 0, err
	}
	prompt, err := readString(mem, u32(p[1]), u32(p[2]), abi.MaxTextLen, "prompt")
	if err != nil {
		return 0, err
	}
	var gp abi.GenerateParams
	if err := readJSON(mem, u32(p[3]), u32(p[4]), &gp, "generate params"); err != nil {
		return 0, err
	}
	if gp.MaxTokens < 0 || gp.NCtx < 0 {
		return 0, errf(abi.ErrnoInval, "generate: max_tokens and n_ctx must be ≥ 0")
	}
	for _, s := range gp.Stop {
		if s == "" {
			return 0, errf(abi.ErrnoInval, "generate: empty stop string")
		}
	}
	if gp.TopLogprobs < 0 || gp.TopLogprobs > gen.MaxTopLogprobs {
		return 0, errf(abi.ErrnoInval, "generate: top_logprobs must be in [0, %d]", gen.MaxTopLogprobs)
	}
	for _, v := range []float32{gp.PresencePenalty, gp.FrequencyPenalty} {
		if !(v >= -2 && v <= 2) {
			return 0, errf(abi.ErrnoInval, "generate: presence_penalty and frequency_penalty must be in [-2, 2]")
		}
	}
	tok, err := mh.tokenizer()
	if err != nil {
		return 0, err
	}
	constraint, _, err := in.constraint(tok, gp.SampleParams)
	if err != nil {
		return 0, fmt.Errorf("generate: %w", err)
	}
	maxTokens := in.policy.MaxTokensFor(gp.MaxTokens)
	if in.policy.MaxTokens > 0 {
		left := in.policy.MaxTokens - in.generated
		if left <= 0 {
			return 0, errf(abi.ErrnoLimit, "max_tokens (%d) reached for this run", in.policy.MaxTokens)
		}
		maxTokens = min(maxTokens, left)
	}
	var ids []int32
	var nCtx int
	if gp.NCtx == 0 {
		// Sized from the request, not the model's training context (a
		// 32k-context model would reserve 512 MiB of KV for "Hi").
		if ids, err = tok.Encode(prompt, tok.AddBOSDefault(), true); err != nil {
			return 0, errf(abi.ErrnoInval, "generate: tokenize prompt: %v", err)
		}
		need := (len(ids) + maxTokens + kvGranule - 1) / kvGranule * kvGranule
		nCtx = min(need, in.contextLimit(mh.m))
		if d := in.policy.DefaultContext; d > 0 && d < nCtx && d >= len(ids)+maxTokens {
			nCtx = d
		}
	} else if nCtx, err = in.contextSize(mh.m, uint32(gp.NCtx)); err != nil {
		return 0, err
	}
	nCtx, kv, unkv, err := in.reserveKV(mh.m, nCtx, false)
	if err != nil {
		return 0, fmt.Errorf("generate: %w", err)
	}
	defer func() {
		in.kvBytes -= kv
		unkv()
	}()
	var onLogprob func(gen.TokenLogprob)
	if in.onLogprob != nil {
		onLogprob = func(lp gen.TokenLogprob) { in.onLogprob(tokenLogprob(lp)) }
	}
	// The shared generation loop: prefill, then one token per decode,
	// sampled in the backend, streamed through the run's stdout writer.
	res, err := gen.Run(in.ctx, mh.m.Backend, mh.m.Info.ID, tok, gen.Request{
		Prompt: prompt, PromptIDs: ids, AddBOS: tok.AddBOSDefault(), ParseSpecial: true,
		MaxTokens: maxTokens, NCtx: nCtx, Sample: sampleParams(gp.SampleParams), Stop: gp.Stop,
		Logprobs: gp.Logprobs, TopLogprobs: gp.TopLogprobs, OnLogprob: onLogprob,
		PresencePenalty: gp.PresencePenalty, FrequencyPenalty: gp.FrequencyPenalty,
		Constraint: asConstraint(constraint),
	}, in.stdout)
	for _, lp := range res.Logprobs {
		in.logprobs = append(in.logprobs, tokenLogprob(lp))
	}
	in.generated += len(res.IDs)
	in.decoded += len(res.PromptIDs) + max(len(res.IDs)-1, 0)
	in.promptTokens += len(res.PromptIDs)
	in.stopReason = res.StopReason
	if err != nil {
		return 0, fmt.Errorf("generate: %w", err)
	}
	return int32(len(res.IDs)), nil
}

// TokenLogprob is the log-probability of one generated token under the
// model's distribution (the log-softmax of the raw logits), with the most
// likely alternatives at its position, most likely first.
type TokenLogprob struct {
	ID      int32     `json:"id"`
	Bytes   []byte    `json:"bytes"` // the token's piece of output text
	Logprob float32   `json:"logprob"`
	Top     []TopProb `json:"top,omitempty"`
}

// TopProb is one alternative of a TokenLogprob.
type TopProb struct {
	ID      int32   `json:"id"`
	Bytes   []byte  `json:"bytes"`
	Logprob float32 `json:"logprob"`
}

func tokenLogprob(lp gen.TokenLogprob) TokenLogprob {
	out := TokenLogprob{ID: lp.ID, Bytes: lp.Bytes, Logprob: lp.Logprob}
	for _, t := range lp.Top {
		out.Top = append(out.Top, TopProb(t))
	}
	return out
}

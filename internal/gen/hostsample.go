package gen

import (
	"fmt"
	"math"
	"slices"

	"github.com/realmrt/realm/internal/sample"
	"github.com/realmrt/realm/tokenizer"
)

// hostSampler draws tokens on the host from the logits a Decode
// returned, for the requests that need them (Request.hostSampled). Its
// sampler sees the same history the backends' does (the session's
// tokens: the prompt, then each generated token), so the tokens are
// those the backend would have sampled.
type hostSampler struct {
	req     *Request
	tok     *tokenizer.Tokenizer
	s       *sample.Sampler
	history []int32
	counts  map[int32]int // generated tokens, for the OpenAI penalties
	scratch []float32
}

func newHostSampler(req *Request, tok *tokenizer.Tokenizer, prompt []int32) *hostSampler {
	if !req.hostSampled() {
		return nil
	}
	return &hostSampler{req: req, tok: tok, s: sample.New(req.Sample),
		history: append([]int32(nil), prompt...), counts: map[int32]int{}}
}

// accept records a generated token.
func (h *hostSampler) accept(t int32) error {
	h.history = append(h.history, t)
	h.counts[t]++
	if c := h.req.Constraint; c != nil {
		if err := c.Accept(t); err != nil {
			return fmt.Errorf("gen: constraint: %w", err)
		}
	}
	return nil
}

// sample picks the next token from logits and, when asked, its
// log-probability and the top alternatives.
func (h *hostSampler) sample(logits []float32) (int32, *TokenLogprob, error) {
	lg := logits
	if h.req.PresencePenalty != 0 || h.req.FrequencyPenalty != 0 {
		h.scratch = append(h.scratch[:0], logits...)
		for id, n := range h.counts {
			if int(id) < len(h.scratch) {
				h.scratch[id] -= float32(n)*h.req.FrequencyPenalty + h.req.PresencePenalty
			}
		}
		lg = h.scratch
	}
	c := h.req.Constraint
	if c != nil {
		if len(h.scratch) == 0 || &lg[0] != &h.scratch[0] {
			h.scratch = append(h.scratch[:0], logits...)
			lg = h.scratch
		}
		n, err := c.Apply(lg)
		if err != nil {
			return 0, nil, fmt.Errorf("gen: constraint: %w", err)
		}
		if n == 0 {
			if c.Complete() {
				return 0, nil, ErrConstraintEnd
			}
			return 0, nil, fmt.Errorf("gen: constraint: no token of the vocabulary can continue the output")
		}
	}
	t, err := h.s.Sample(lg, h.history)
	if err != nil {
		return 0, nil, fmt.Errorf("gen: sample: %w", err)
	}
	if c != nil && !c.Allowed(t) {
		// Every allowed token had a −∞ (or NaN) logit: the sampler fell
		// back to the lowest id; take the lowest allowed one instead.
		t = -1
		for id := range lg {
			if c.Allowed(int32(id)) {
				t = int32(id)
				break
			}
		}
		if t < 0 {
			return 0, nil, fmt.Errorf("gen: constraint: no token can continue the output")
		}
	}
	if !h.req.Logprobs && h.req.TopLogprobs == 0 {
		return t, nil, nil
	}
	lse := logSumExp(logits)
	lp := &TokenLogprob{ID: t, Bytes: h.tok.Piece(t), Logprob: logprob(logits[t], lse)}
	if k := h.req.TopLogprobs; k > 0 {
		for _, id := range topK(logits, k) {
			lp.Top = append(lp.Top, TopProb{ID: id, Bytes: h.tok.Piece(id), Logprob: logprob(logits[id], lse)})
		}
	}
	return t, lp, nil
}

// logprob is the log-softmax of one logit; NaN counts as −∞.
func logprob(x float32, lse float64) float32 {
	if math.IsNaN(float64(x)) {
		return float32(math.Inf(-1))
	}
	return float32(float64(x) - lse)
}

// logSumExp is log Σ exp(logits), in float64, NaN logits left out.
func logSumExp(logits []float32) float64 {
	m := math.Inf(-1)
	for _, x := range logits {
		if float64(x) > m {
			m = float64(x)
		}
	}
	if math.IsInf(m, 0) {
		return m
	}
	var sum float64
	for _, x := range logits {
		if !math.IsNaN(float64(x)) {
			sum += math.Exp(float64(x) - m)
		}
	}
	return m + math.Log(sum)
}

// topK returns the ids of the k largest logits, largest first (ties:
// lower id first; NaN last).
func topK(logits []float32, k int) []int32 {
	k = min(k, len(logits))
	top := make([]int32, 0, k+1)
	less := func(a, b int32) bool { // a ranks below b
		x, y := float64(logits[a]), float64(logits[b])
		if math.IsNaN(x) != math.IsNaN(y) {
			return math.IsNaN(x)
		}
		if x != y {
			return x < y
		}
		return a > b
	}
	for id := range logits {
		i := int32(id)
		if len(top) == k && !less(top[k-1], i) {
			continue
		}
		pos, _ := slices.BinarySearchFunc(top, i, func(e, t int32) int {
			if less(t, e) {
				return -1
			}
			return 1
		})
		top = slices.Insert(top, pos, i)
		if len(top) > k {
			top = top[:k]
		}
	}
	return top
}

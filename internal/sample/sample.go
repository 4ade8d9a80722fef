// Package sample turns logits into tokens: greedy, temperature, top-k,
// top-p, min-p and repetition penalty with a seeded, deterministic RNG,
// with the parameters of backends.SampleParams. Both the host
// (guest-driven sampling) and the backend plugins (sampling inside
// Decode) use it, so one seed gives one answer whichever side samples.
// It is internal: plugin authors see only the parameters type.
package sample

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/realmrt/realm/backends"
)

// DefaultRepeatLastN is the repetition-penalty window used when
// backends.SampleParams.RepeatLastN is 0 (llama.cpp's default).
const DefaultRepeatLastN = 64

// ErrNoLogits is returned by Sample when there is nothing to sample from.
var ErrNoLogits = errors.New("sample: no logits")

// Sampler draws tokens from logits with fixed parameters and its own
// deterministic random number generator. The chain is llama.cpp's:
// repetition penalty, then (temperature ≤ 0) argmax, or top-k, top-p,
// min-p, temperature and a weighted draw. A Sampler is not safe for
// concurrent use; give each session its own.
type Sampler struct {
	p    backends.SampleParams
	rng  RNG
	cand []candidate
}

// candidate is one token still in the running.
type candidate struct {
	id    int32
	logit float32
	p     float64
}

// New returns a Sampler for p, its RNG seeded from p.Seed.
func New(p backends.SampleParams) *Sampler {
	return &Sampler{p: p, rng: NewRNG(p.Seed)}
}

// Params returns the sampler's parameters.
func (s *Sampler) Params() backends.SampleParams { return s.p }

// SetParams changes the parameters. The RNG is reseeded only when the
// seed changes, so a session that keeps its seed keeps its random
// stream across calls.
func (s *Sampler) SetParams(p backends.SampleParams) {
	if p.Seed != s.p.Seed {
		s.rng = NewRNG(p.Seed)
	}
	s.p = p
}

// Sample picks a token from logits (one per vocabulary entry). history
// holds the tokens seen so far, oldest first; the last RepeatLastN of
// them are penalized. logits is not modified. NaN logits are treated as
// −∞; when every logit is −∞ or NaN the lowest id wins.
func (s *Sampler) Sample(logits []float32, history []int32) (int32, error) {
	n := len(logits)
	if n == 0 {
		return 0, ErrNoLogits
	}
	if int64(n) > math.MaxInt32 {
		return 0, fmt.Errorf("sample: %d logits is too many", n)
	}
	if cap(s.cand) < n {
		s.cand = make([]candidate, n)
	}
	c := s.cand[:n]
	for i, l := range logits {
		if l != l { // NaN
			l = float32(math.Inf(-1))
		}
		c[i] = candidate{id: int32(i), logit: l}
	}
	s.penalize(c, history)
	if s.p.Temperature <= 0 {
		return argmax(c), nil
	}
	c = sortDesc(c)
	if s.p.TopK > 0 && s.p.TopK < len(c) {
		c = c[:s.p.TopK]
	}
	if s.p.TopP > 0 && s.p.TopP < 1 {
		softmax(c, 1)
		var cum float64
		for i := range c {
			cum += c[i].p
			if cum >= float64(s.p.TopP) {
				c = c[:i+1]
				break
			}
		}
	}
	if s.p.MinP > 0 && !math.IsInf(float64(c[0].logit), -1) {
		// p_i ≥ MinP·p_max  ⇔  logit_i ≥ logit_max + ln(MinP).
		min := float64(c[0].logit) + math.Log(float64(s.p.MinP))
		keep := 1
		for keep < len(c) && float64(c[keep].logit) >= min {
			keep++
		}
		c = c[:keep]
	}
	softmax(c, s.p.Temperature)
	u := s.rng.Float64()
	var cum float64
	for i := range c {
		cum += c[i].p
		if u < cum {
			return c[i].id, nil
		}
	}
	// Rounding left u above the total: take the last token with mass.
	for i := len(c) - 1; i >= 0; i-- {
		if c[i].p > 0 {
			return c[i].id, nil
		}
	}
	return c[0].id, nil
}

// penalize applies llama.cpp's repetition penalty to every distinct
// token among the last RepeatLastN of history: positive logits are
// divided by the penalty, the others multiplied.
func (s *Sampler) penalize(c []candidate, history []int32) {
	pen := s.p.RepeatPenalty
	// NaN and ±Inf would turn logits into NaN (0·Inf), which then win
	// or lose arbitrarily: like 0 and 1 they disable the penalty.
	if !(pen > 0) || pen == 1 || math.IsInf(float64(pen), 0) || len(history) == 0 {
		return
	}
	last := s.p.RepeatLastN
	if last == 0 {
		last = DefaultRepeatLastN
	}
	if last < 0 || last > len(history) {
		last = len(history)
	}
	seen := make(map[int32]bool, last)
	for _, id := range history[len(history)-last:] {
		if id < 0 || int(id) >= len(c) || seen[id] {
			continue
		}
		seen[id] = true
		if c[id].logit <= 0 {
			c[id].logit *= pen
		} else {
			c[id].logit /= pen
		}
	}
}

// argmax returns the id with the largest logit, the lowest id on ties.
func argmax(c []candidate) int32 {
	best := 0
	for i := 1; i < len(c); i++ {
		if c[i].logit > c[best].logit {
			best = i
		}
	}
	return c[best].id
}

// Greedy returns the index of the largest logit (the lowest index on
// ties; NaN never wins). It returns -1 for an empty slice.
func Greedy(logits []float32) int32 {
	best := -1
	for i, l := range logits {
		if l != l {
			continue
		}
		if best < 0 || l > logits[best] {
			best = i
		}
	}
	if best < 0 && len(logits) > 0 {
		return 0
	}
	return int32(best)
}

// sortDesc orders candidates by logit, highest first, lower id first on
// ties, so that the result does not depend on the sort algorithm.
func sortDesc(c []candidate) []candidate {
	slices.SortFunc(c, func(a, b candidate) int {
		if a.logit != b.logit {
			if a.logit > b.logit {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.id, b.id)
	})
	return c
}

// softmax sets c[i].p = softmax(logit/temp) over c, which must be
// sorted highest first. Computed in float64.
func softmax(c []candidate, temp float32) {
	t := float64(temp)
	max := float64(c[0].logit)
	if math.IsInf(max, -1) {
		// Nothing has mass: make the first candidate certain.
		for i := range c {
			c[i].p = 0
		}
		c[0].p = 1
		return
	}
	var sum float64
	for i := range c {
		e := math.Exp((float64(c[i].logit) - max) / t)
		c[i].p = e
		sum += e
	}
	for i := range c {
		c[i].p /= sum
	}
}

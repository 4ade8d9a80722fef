// Package gen is the text generation loop shared by the CLI, the WASM
// host and the server: tokenize a prompt, prefill it in one decode, then
// decode one token at a time, streaming the text as it is produced and
// stopping at an end-of-generation token, a stop string, the token limit
// or the end of the context.
package gen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/tokenizer"
)

// Stop reasons reported in Result.StopReason.
const (
	StopLength  = "length"  // MaxTokens tokens were generated
	StopEOS     = "eos"     // the model produced an end-of-generation token
	StopString  = "stop"    // the text reached one of Request.Stop
	StopContext = "context" // the session's context is full
)

// closeTimeout bounds the CloseSession call made after a run ends.
const closeTimeout = 5 * time.Second

// Request describes one generation.
type Request struct {
	// Prompt is tokenized with AddBOS and ParseSpecial unless PromptIDs
	// is set.
	Prompt string
	// PromptIDs, when not empty, is used instead of Prompt.
	PromptIDs    []int32
	AddBOS       bool
	ParseSpecial bool
	// MaxTokens limits the generated tokens; ≤ 0 means no limit but the
	// context.
	MaxTokens int
	// NCtx is the session size (≤ 0: the backend's default).
	NCtx int
	// Sample are the sampling parameters (the zero value is greedy).
	Sample backends.SampleParams
	// Stop strings end the generation; the text never includes them.
	Stop []string
	// Logprobs asks for the log-probability of each generated token
	// (Result.Logprobs) and TopLogprobs for that many most likely
	// alternatives at each position (0–MaxTopLogprobs).
	Logprobs    bool
	TopLogprobs int
	// OnLogprob, when set with Logprobs or TopLogprobs, receives each
	// token's entry as the token is produced, before its text is written
	// to the output, so a streaming caller can send the log-probabilities
	// with the text they belong to. It runs on Run's goroutine.
	OnLogprob func(TokenLogprob)
	// PresencePenalty and FrequencyPenalty (OpenAI's, −2 to 2) lower the
	// logit of every token already generated: by PresencePenalty once and
	// by FrequencyPenalty per occurrence, before the sampler's chain.
	PresencePenalty, FrequencyPenalty float32
	// Constraint, when set, restricts every token to those it allows
	// (a grammar: package grammar's Matcher); the tokens are then drawn
	// on the host from the masked logits.
	Constraint Constraint
}

// Constraint restricts the tokens a generation may produce.
type Constraint interface {
	// Apply sets the logits of the tokens that may not come next to
	// −∞ and returns how many remain allowed.
	Apply(logits []float32) (int, error)
	// Allowed reports whether id may come next.
	Allowed(id int32) bool
	// Accept moves past the chosen token.
	Accept(id int32) error
	// Complete reports whether the output so far is whole (an
	// end-of-generation token may come next).
	Complete() bool
}

// ErrConstraintEnd is returned by the host sampler when the constraint
// is complete and allows no further token, not even an end of
// generation (the vocabulary has none): the generation ends there.
var ErrConstraintEnd = errors.New("gen: the constraint is complete")

// MaxTopLogprobs caps Request.TopLogprobs (OpenAI's limit).
const MaxTopLogprobs = 20

// TokenLogprob is the log-probability of one generated token under the
// model's distribution (log-softmax of the raw logits, before
// penalties, temperature and truncation), with the most likely
// alternatives at its position, most likely first.
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

// hostSampled reports whether the request needs the logits on the host:
// logprobs and the OpenAI penalties are computed here, and the token is
// then drawn with the same sampler the backends use (package sample),
// so one seed gives one answer either way.
func (r *Request) hostSampled() bool {
	return r.Logprobs || r.TopLogprobs > 0 || r.PresencePenalty != 0 || r.FrequencyPenalty != 0 || r.Constraint != nil
}

// Result is the outcome of a generation.
type Result struct {
	PromptIDs []int32
	// IDs are the generated tokens (an end-of-generation token is not
	// included).
	IDs []int32
	// Text is the generated text, up to (not including) a stop string.
	Text string
	// StopReason is StopLength, StopEOS, StopString or StopContext.
	StopReason string
	// Logprobs holds one entry per token of IDs when Request.Logprobs
	// or TopLogprobs asked for them.
	Logprobs         []TokenLogprob
	TimeToFirstToken time.Duration
	Duration         time.Duration
}

// Run generates text with model on b and streams it to out as it is
// produced (out may be nil). It opens a session, prefills the prompt in
// one Decode that samples the first token, then decodes one token per
// call. The session is closed when Run returns, also on error or
// cancellation. On error the returned Result (never nil) holds what was
// generated before the failure.
func Run(ctx context.Context, b backends.Backend, model backends.ModelID, tok *tokenizer.Tokenizer, req Request, out io.Writer) (*Result, error) {
	start := time.Now()
	res := &Result{}
	if out == nil {
		out = io.Discard
	}
	ids := req.PromptIDs
	if len(ids) == 0 {
		if tok == nil {
			return res, fmt.Errorf("gen: %w: no tokenizer to encode the prompt", backends.ErrInvalidArgument)
		}
		var err error
		if ids, err = tok.Encode(req.Prompt, req.AddBOS, req.ParseSpecial); err != nil {
			return res, fmt.Errorf("gen: tokenize prompt: %w", err)
		}
	}
	res.PromptIDs = append([]int32(nil), ids...)
	if len(ids) == 0 {
		return res, fmt.Errorf("gen: %w: empty prompt", backends.ErrInvalidArgument)
	}
	if tok == nil {
		return res, fmt.Errorf("gen: %w: a tokenizer is needed to produce text", backends.ErrInvalidArgument)
	}
	for _, s := range req.Stop {
		if s == "" {
			return res, fmt.Errorf("gen: %w: empty stop string", backends.ErrInvalidArgument)
		}
	}
	if req.TopLogprobs < 0 || req.TopLogprobs > MaxTopLogprobs {
		return res, fmt.Errorf("gen: %w: top_logprobs must be in [0, %d], got %d", backends.ErrInvalidArgument, MaxTopLogprobs, req.TopLogprobs)
	}
	for _, v := range []float32{req.PresencePenalty, req.FrequencyPenalty} {
		if !(v >= -2 && v <= 2) {
			return res, fmt.Errorf("gen: %w: presence and frequency penalties must be in [-2, 2], got %g", backends.ErrInvalidArgument, v)
		}
	}

	sid, err := b.OpenSession(ctx, model, req.NCtx)
	if err != nil {
		return res, fmt.Errorf("gen: open session: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
		b.CloseSession(cctx, sid) // best effort: the session dies with its model anyway
		cancel()
	}()

	st := &streamer{out: out, stops: req.Stop, dec: tokenizer.NewStreamer(tok)}
	defer func() { res.Text = st.text.String()[:st.textLen()]; res.Duration = time.Since(start) }()

	hs := newHostSampler(&req, tok, ids)
	next := func(tokens []int32) (int32, *TokenLogprob, error) {
		if hs == nil {
			d, err := b.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: tokens, Want: backends.WantSample, Sample: req.Sample})
			if err != nil {
				return 0, nil, err
			}
			return d.Token, nil, nil
		}
		d, err := b.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: tokens, Want: backends.WantLogits})
		if err != nil {
			return 0, nil, err
		}
		return hs.sample(d.Logits)
	}
	t, lp, err := next(ids)
	if errors.Is(err, ErrConstraintEnd) {
		res.TimeToFirstToken = time.Since(start)
		res.StopReason = StopEOS
		return res, nil
	}
	if err != nil {
		if errors.Is(err, backends.ErrContextFull) {
			return res, fmt.Errorf("gen: the prompt of %d tokens does not fit the context: %w", len(ids), err)
		}
		return res, fmt.Errorf("gen: prefill: %w", err)
	}
	res.TimeToFirstToken = time.Since(start)
	for {
		if tok.IsEOG(t) {
			res.StopReason = StopEOS
			break
		}
		res.IDs = append(res.IDs, t)
		if hs != nil {
			if err := hs.accept(t); err != nil {
				return res, err
			}
			if lp != nil {
				res.Logprobs = append(res.Logprobs, *lp)
				if req.OnLogprob != nil {
					req.OnLogprob(*lp)
				}
			}
		}
		stopped, err := st.add(st.dec.Add(t))
		if err != nil {
			return res, err
		}
		if stopped {
			res.StopReason = StopString
			return res, nil
		}
		if req.MaxTokens > 0 && len(res.IDs) >= req.MaxTokens {
			res.StopReason = StopLength
			break
		}
		t, lp, err = next([]int32{t})
		if errors.Is(err, backends.ErrContextFull) {
			res.StopReason = StopContext
			break
		}
		if errors.Is(err, ErrConstraintEnd) {
			res.StopReason = StopEOS
			break
		}
		if err != nil {
			return res, fmt.Errorf("gen: decode: %w", err)
		}
	}
	stopped, err := st.add(st.dec.Flush())
	if err != nil {
		return res, err
	}
	if stopped {
		res.StopReason = StopString
		return res, nil
	}
	if err := st.flush(); err != nil {
		return res, err
	}
	return res, nil
}

// streamer writes generated text to out, holding back any tail that
// could be the start of a stop string.
type streamer struct {
	out     io.Writer
	stops   []string
	dec     *tokenizer.Streamer
	text    strings.Builder // all text produced
	sent    int             // bytes of text written to out
	stopped int             // text length up to the stop string, when hit
	hit     bool
}

// textLen is the length of the result text: up to the stop string.
func (s *streamer) textLen() int {
	if s.hit {
		return s.stopped
	}
	return s.text.Len()
}

// add appends b and writes what can no longer be part of a stop string.
// It reports whether a stop string was completed (its text and what
// follows are then dropped).
func (s *streamer) add(b []byte) (bool, error) {
	if len(b) == 0 {
		return false, nil
	}
	s.text.Write(b)
	all := s.text.String()
	pending := all[s.sent:]
	first := -1
	for _, stop := range s.stops {
		if i := strings.Index(pending, stop); i >= 0 && (first < 0 || i < first) {
			first = i
		}
	}
	if first >= 0 {
		s.hit, s.stopped = true, s.sent+first
		return true, s.write(pending[:first])
	}
	hold := 0
	for _, stop := range s.stops {
		for n := min(len(stop)-1, len(pending)); n > hold; n-- {
			if strings.HasSuffix(pending, stop[:n]) {
				hold = n
				break
			}
		}
	}
	return false, s.write(pending[:len(pending)-hold])
}

// flush writes the held-back tail (the generation is over).
func (s *streamer) flush() error {
	return s.write(s.text.String()[s.sent:])
}

// write sends p to out.
func (s *streamer) write(p string) error {
	if p == "" {
		return nil
	}
	s.sent += len(p)
	if _, err := io.WriteString(s.out, p); err != nil {
		return fmt.Errorf("gen: write output: %w", err)
	}
	return nil
}

// Host functions of the sessions group: open, decode, logits, sample, truncate, close.

package core

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"

	"github.com/tetratelabs/wazero/api"

	"github.com/realmrt/realm/abi"
	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/internal/sample"
	"github.com/realmrt/realm/model"
)

func (in *instance) session(h int32) (*sessionHandle, error) {
	s, ok := in.sessions.get(h)
	if !ok {
		return nil, errf(abi.ErrnoBadf, "bad session handle %d", h)
	}
	return s, nil
}

// contextLimit is the largest context a session of m may have.
func (in *instance) contextLimit(m *model.Model) int {
	return ContextLimit(m.Info.NCtxTrain, in.policy)
}

// contextSize resolves a requested context size against the model and
// the policy (0 = the policy's DefaultContext, else as large as allowed).
func (in *instance) contextSize(m *model.Model, req uint32) (int, error) {
	limit := in.contextLimit(m)
	if req == 0 {
		if d := in.policy.DefaultContext; d > 0 && d < limit {
			return d, nil
		}
		return limit, nil
	}
	if uint64(req) > uint64(limit) {
		return 0, errf(abi.ErrnoInval, "context size %d exceeds the limit of %d", req, limit)
	}
	return int(req), nil
}

// kvGranule rounds default context sizes.
const kvGranule = 256

// reserveKV counts the KV cache of a session of nCtx positions against
// the run's MaxKVBytes and the Models' shared budget (when it keeps
// one). With shrink set (the guest left the size to the host) a size
// that does not fit is lowered to what does, in kvGranule steps. It
// returns the size, the bytes counted and the function that gives them
// back.
func (in *instance) reserveKV(m *model.Model, nCtx int, shrink bool) (int, int64, func(), error) {
	per := kvPerPos(m)
	left := in.policy.MaxKVBytes - in.kvBytes
	if per > 0 && int64(nCtx)*per > left {
		fit := int(max(left, 0) / per)
		if shrink && fit >= kvGranule {
			nCtx = fit / kvGranule * kvGranule
		} else {
			return 0, 0, nil, errf(abi.ErrnoNomem, "a session of %d positions needs %d bytes of KV cache; the run has %d of %d left (open sessions hold %d)",
				nCtx, int64(nCtx)*per, max(left, 0), in.policy.MaxKVBytes, in.kvBytes)
		}
	}
	kv := int64(nCtx) * per
	unkv := func() {}
	if r, ok := in.host.cfg.Models.(KVReserver); ok && kv > 0 {
		rel, err := r.ReserveKV(in.ctx, kv)
		if err != nil {
			return 0, 0, nil, fmt.Errorf("KV cache of %d positions: %w", nCtx, err)
		}
		unkv = rel
	}
	in.kvBytes += kv
	return nCtx, kv, unkv, nil
}

// dropSession forgets a session and gives back its KV and host bytes.
func (in *instance) dropSession(h int32, s *sessionHandle) {
	in.sessions.del(h)
	in.kvBytes -= s.kv
	in.tensorBytes -= s.host
	if s.unkv != nil {
		s.unkv()
		s.unkv = nil
	}
}

func sessionOpen(in *instance, _ api.Memory, p []uint64) (int32, error) {
	mh, err := in.model(i32(p[0]))
	if err != nil {
		return 0, err
	}
	nCtx, err := in.contextSize(mh.m, u32(p[1]))
	if err != nil {
		return 0, err
	}
	if len(in.sessions.m) >= maxHandles {
		return 0, errf(abi.ErrnoNomem, "too many open sessions (%d)", maxHandles)
	}
	nCtx, kv, unkv, err := in.reserveKV(mh.m, nCtx, u32(p[1]) == 0)
	if err != nil {
		return 0, err
	}
	// The host keeps the last logits and the token history of each
	// session: counted with the run's other host memory.
	host := 4 * (int64(max(mh.m.Info.NVocab, 0)) + int64(nCtx))
	if in.tensorBytes+host > in.policy.MaxTensorBytes {
		in.kvBytes -= kv
		unkv()
		return 0, errf(abi.ErrnoNomem, "a session's logits and history (%d bytes) exceed the run's host memory budget (%d of %d used)",
			host, in.tensorBytes, in.policy.MaxTensorBytes)
	}
	id, err := mh.m.Backend.OpenSession(in.ctx, mh.m.Info.ID, nCtx)
	if err != nil {
		in.kvBytes -= kv
		unkv()
		return 0, fmt.Errorf("open session: %w", err)
	}
	in.tensorBytes += host
	h, _ := in.sessions.add(&sessionHandle{model: i32(p[0]), m: mh.m, id: id, nCtx: nCtx, kv: kv, unkv: unkv, host: host})
	return h, nil
}

func sessionDecode(in *instance, mem api.Memory, p []uint64) (int32, error) {
	s, err := in.session(i32(p[0]))
	if err != nil {
		return 0, err
	}
	n := u32(p[2])
	if n == 0 {
		return 0, errf(abi.ErrnoInval, "decode: no tokens")
	}
	ids, err := readI32s(mem, u32(p[1]), n, uint64(s.nCtx), "decode ids")
	if err != nil {
		return 0, err
	}
	if err := checkIDs(ids, s.m.Info.NVocab); err != nil {
		return 0, err
	}
	if s.nPast+len(ids) > s.nCtx {
		return 0, errf(abi.ErrnoCtxfull, "decode: %d tokens do not fit (%d of %d positions used)", len(ids), s.nPast, s.nCtx)
	}
	if len(ids) == 1 {
		if err := in.spend(1); err != nil {
			return 0, err
		}
	}
	req := backends.DecodeRequest{Session: s.id, Tokens: ids, Want: backends.WantLogits}
	if len(ids) == 1 && s.greedy && !s.noPluginSample {
		// Predicted: a plain argmax follows. The backend samples it
		// (its sampler's greedy pick is the host's), only the token
		// crosses the plugin boundary instead of n_vocab logits.
		req.Want = backends.WantSample
	}
	res, err := s.m.Backend.Decode(in.ctx, req)
	if err != nil {
		if len(ids) == 1 {
			in.generated-- // nothing was generated: the token is not spent
		}
		return 0, fmt.Errorf("decode: %w", err)
	}
	in.decoded += len(ids)
	if req.Want == backends.WantSample {
		if res.NPast != s.nPast+len(ids) || res.Token < 0 || int(res.Token) >= s.m.Info.NVocab {
			return 0, errf(abi.ErrnoBackend, "decode: backend sampled token %d at position %d, want one of %d at %d",
				res.Token, res.NPast, s.m.Info.NVocab, s.nPast+len(ids))
		}
		s.logits, s.sampledIn, s.token, s.lastIDs = nil, true, res.Token, ids
	} else {
		if res.NPast != s.nPast+len(ids) || len(res.Logits) != s.m.Info.NVocab {
			return 0, errf(abi.ErrnoBackend, "decode: backend answered %d logits at position %d, want %d at %d",
				len(res.Logits), res.NPast, s.m.Info.NVocab, s.nPast+len(ids))
		}
		s.logits, s.sampledIn, s.lastIDs = res.Logits, false, nil
	}
	s.nPast = res.NPast
	// The whole session (at most n_ctx tokens), so that the repetition
	// penalty sees the window a backend-side sampler would see.
	s.history = append(s.history, ids...)
	return int32(s.nPast), nil
}

// Generation from the guest's own loop (decode one token, sample,
// repeat) would move n_vocab logits (128 KiB to 512 KiB) across the
// plugin boundary per token where the direct path moves one token. The
// host therefore predicts: after a sample that is a plain argmax
// (temperature ≤ 0, no repetition penalty) with no logits read since,
// the next single-token decode asks the backend to sample (WantSample);
// the backend's greedy pick is the host's (the same sample package,
// which leaves the random state alone for greedy picks). The guest sees
// the same results: a plain-argmax sample returns that token; logits or
// any other sample after such a decode make the host truncate the
// session by one position and decode the same token again for its
// logits (the same computation at the same position), and the session
// stops predicting. Errors stay with the decode call.

// needLogits makes the logits of the last decode available, decoding
// its token again when the backend sampled it.
func (in *instance) needLogits(s *sessionHandle) error {
	if s.logits != nil || !s.sampledIn {
		return nil
	}
	s.noPluginSample = true
	start := s.nPast - len(s.lastIDs)
	if err := s.m.Backend.Truncate(in.ctx, s.id, start); err != nil {
		return fmt.Errorf("decode again for the logits: %w", err)
	}
	res, err := s.m.Backend.Decode(in.ctx, backends.DecodeRequest{Session: s.id, Tokens: s.lastIDs, Want: backends.WantLogits})
	if err != nil {
		return fmt.Errorf("decode again for the logits: %w", err)
	}
	if res.NPast != s.nPast || len(res.Logits) != s.m.Info.NVocab {
		return errf(abi.ErrnoBackend, "decode: backend answered %d logits at position %d, want %d at %d",
			len(res.Logits), res.NPast, s.m.Info.NVocab, s.nPast)
	}
	s.logits, s.sampledIn, s.lastIDs = res.Logits, false, nil
	return nil
}

// setSampler gives the session's host sampler a sample call's
// parameters.
func (s *sessionHandle) setSampler(p backends.SampleParams) {
	if s.sampler == nil {
		s.sampler = sample.New(p)
	} else {
		s.sampler.SetParams(p)
	}
}

// plainArgmax reports whether sampling with p picks the largest logit
// whatever the history and the random state.
func plainArgmax(p backends.SampleParams) bool {
	pen := p.RepeatPenalty
	noPenalty := !(pen > 0) || pen == 1 || math.IsInf(float64(pen), 0)
	return p.Temperature <= 0 && noPenalty
}

// spend counts n generated tokens against the policy's MaxTokens.
func (in *instance) spend(n int) error {
	if in.policy.MaxTokens > 0 && in.generated+n > in.policy.MaxTokens {
		return errf(abi.ErrnoLimit, "max_tokens (%d) reached for this run", in.policy.MaxTokens)
	}
	in.generated += n
	return nil
}

func sessionLogits(in *instance, mem api.Memory, p []uint64) (int32, error) {
	s, err := in.session(i32(p[0]))
	if err != nil {
		return 0, err
	}
	if err := in.needLogits(s); err != nil {
		return 0, err
	}
	if s.logits == nil {
		return 0, errf(abi.ErrnoInval, "logits: nothing decoded since the session opened or was truncated")
	}
	s.greedy = false // the guest reads logits: the next decode fetches them
	return writeF32s(mem, u32(p[1]), u32(p[2]), s.logits, "logits")
}

// readJSON decodes an optional JSON argument (empty means zero value),
// rejecting unknown fields so typos fail loudly.
func readJSON(mem api.Memory, ptr, n uint32, v any, what string) error {
	b, err := view(mem, ptr, n, abi.MaxJSONLen, what)
	if err != nil || len(b) == 0 {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errf(abi.ErrnoInval, "%s: %v", what, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errf(abi.ErrnoInval, "%s: trailing data after the JSON object", what)
	}
	return nil
}

func sampleParams(p abi.SampleParams) backends.SampleParams {
	return backends.SampleParams{
		Temperature: p.Temperature, TopK: p.TopK, TopP: p.TopP, MinP: p.MinP,
		RepeatPenalty: p.RepeatPenalty, RepeatLastN: p.RepeatLastN, Seed: p.Seed,
	}
}

func sessionSample(in *instance, mem api.Memory, p []uint64) (int32, error) {
	s, err := in.session(i32(p[0]))
	if err != nil {
		return 0, err
	}
	var sp abi.SampleParams
	if err := readJSON(mem, u32(p[1]), u32(p[2]), &sp, "sample params"); err != nil {
		return 0, err
	}
	bp := sampleParams(sp)
	constrained := sp.Grammar != "" || (len(sp.JSONSchema) > 0 && string(sp.JSONSchema) != "null")
	argmax := plainArgmax(bp) && !constrained
	if s.sampledIn && argmax {
		// The backend sampled this decode, as predicted; a change of
		// seed restarts the host sampler's sequence either way.
		s.setSampler(bp)
		return s.token, nil
	}
	if err := in.needLogits(s); err != nil {
		return 0, err
	}
	if s.logits == nil {
		return 0, errf(abi.ErrnoInval, "sample: nothing decoded since the session opened or was truncated")
	}
	s.setSampler(bp)
	if constrained {
		s.greedy = false
		return in.sampleConstrained(s, sp)
	}
	id, err := s.sampler.Sample(s.logits, s.history)
	if err != nil {
		return 0, errf(abi.ErrnoInval, "sample: %v", err)
	}
	s.greedy = argmax
	return id, nil
}

// sampleConstrained samples with the grammar or json_schema option: the
// session's parse (started when the grammar changes or the last one
// ended) masks a copy of the logits, and the sampled token advances it.
func (in *instance) sampleConstrained(s *sessionHandle, sp abi.SampleParams) (int32, error) {
	tok := s.m.Tokenizer
	if tok == nil {
		return 0, errf(abi.ErrnoNotsup, "sample: model %q has no tokenizer", s.m.Name)
	}
	if s.masked == nil {
		need := 4 * int64(len(s.logits))
		if in.tensorBytes+need > in.policy.MaxTensorBytes {
			return 0, errf(abi.ErrnoNomem, "sample: the masked logits (%d bytes) exceed the run's host memory budget", need)
		}
		in.tensorBytes += need
		s.host += need
		s.masked = make([]float32, len(s.logits))
	}
	text := sp.Grammar
	if text == "" {
		text = "json_schema:" + string(sp.JSONSchema)
	}
	if s.grammar == nil || s.grammarText != text || s.grammar.Done() {
		m, _, err := in.constraint(tok, sp)
		if err != nil {
			return 0, fmt.Errorf("sample: %w", err)
		}
		s.grammar, s.grammarText = m, text
	}
	masked := s.masked[:copy(s.masked, s.logits)]
	n, err := s.grammar.Apply(masked)
	if err != nil {
		return 0, errf(abi.ErrnoInval, "sample: %v", err)
	}
	if n == 0 {
		return 0, errf(abi.ErrnoInval, "sample: no token of the vocabulary can continue the grammar")
	}
	id, err := s.sampler.Sample(masked, s.history)
	if err != nil {
		return 0, errf(abi.ErrnoInval, "sample: %v", err)
	}
	if !s.grammar.Allowed(id) {
		// Every allowed token has a −∞ logit: take the first of them.
		for i := range masked {
			if s.grammar.Allowed(int32(i)) {
				id = int32(i)
				break
			}
		}
	}
	if err := s.grammar.Accept(id); err != nil {
		return 0, errf(abi.ErrnoInval, "sample: %v", err)
	}
	return id, nil
}

func sessionTruncate(in *instance, _ api.Memory, p []uint64) (int32, error) {
	s, err := in.session(i32(p[0]))
	if err != nil {
		return 0, err
	}
	n := u32(p[1])
	if uint64(n) > uint64(s.nPast) {
		return 0, errf(abi.ErrnoInval, "truncate: %d is past the session length %d", n, s.nPast)
	}
	if err := s.m.Backend.Truncate(in.ctx, s.id, int(n)); err != nil {
		return 0, fmt.Errorf("truncate: %w", err)
	}
	s.nPast = int(n)
	s.logits, s.sampledIn, s.lastIDs = nil, false, nil
	s.history = s.history[:n]
	s.grammar, s.grammarText = nil, "" // a parse cannot rewind: the next constrained sample starts again
	return int32(n), nil
}

func sessionClose(in *instance, _ api.Memory, p []uint64) (int32, error) {
	h := i32(p[0])
	s, err := in.session(h)
	if err != nil {
		return 0, err
	}
	in.dropSession(h, s)
	if err := s.m.Backend.CloseSession(in.ctx, s.id); err != nil {
		return 0, fmt.Errorf("close session: %w", err)
	}
	return 0, nil
}

// --- tensors ---

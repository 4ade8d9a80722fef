package core

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"path"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/realmrt/realm/abi"
	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/backends/sample"
	"github.com/realmrt/realm/gguf"
	"github.com/realmrt/realm/tokenizer"
)

// hostFunc is one host function as data: its ABI name, parameter names
// (all i32; names ending in "ptr", "len", "cap", "n" or "flags" are
// traced unsigned, handles signed) and its implementation, which
// returns a non-negative result or an error mapped to -errno.
type hostFunc struct {
	name   string
	params []string
	impl   func(in *instance, mem api.Memory, p []uint64) (int32, error)
}

// fn builds a hostFunc entry.
func fn(name string, impl func(in *instance, mem api.Memory, p []uint64) (int32, error), params ...string) hostFunc {
	return hostFunc{name: name, params: params, impl: impl}
}

// hostFuncs is the ABI, in abi.Funcs order.
func hostFuncs() []hostFunc {
	return []hostFunc{
		fn(abi.FuncLoadModelByName, loadModelByName, "name_ptr", "name_len"),
		fn(abi.FuncUnloadModel, unloadModel, "model"),
		fn(abi.FuncListModels, listModels, "out_ptr", "out_cap"),
		fn(abi.FuncModelInfo, modelInfo, "model", "out_ptr", "out_cap"),
		fn(abi.FuncTokenize, tokenize, "model", "text_ptr", "text_len", "flags", "out_ptr", "out_cap"),
		fn(abi.FuncDetokenize, detokenize, "model", "ids_ptr", "n_ids", "flags", "out_ptr", "out_cap"),
		fn(abi.FuncSessionOpen, sessionOpen, "model", "n_ctx"),
		fn(abi.FuncSessionDecode, sessionDecode, "session", "ids_ptr", "n_ids"),
		fn(abi.FuncSessionLogits, sessionLogits, "session", "out_ptr", "out_cap"),
		fn(abi.FuncSessionSample, sessionSample, "session", "params_ptr", "params_len"),
		fn(abi.FuncSessionTruncate, sessionTruncate, "session", "n"),
		fn(abi.FuncSessionClose, sessionClose, "session"),
		fn(abi.FuncGenerate, generate, "model", "prompt_ptr", "prompt_len", "params_ptr", "params_len"),
		fn(abi.FuncTensorFromWeight, tensorFromWeight, "model", "name_ptr", "name_len"),
		fn(abi.FuncTensorFromData, tensorFromData, "data_ptr", "n", "shape_ptr", "n_dims"),
		fn(abi.FuncTensorOp, tensorOp, "op_ptr", "op_len", "inputs_ptr", "n_inputs", "params_ptr", "params_len"),
		fn(abi.FuncTensorShape, tensorShape, "tensor", "out_ptr", "out_cap"),
		fn(abi.FuncTensorRead, tensorRead, "tensor", "out_ptr", "out_cap"),
		fn(abi.FuncTensorFree, tensorFree, "tensor"),
		fn(abi.FuncLog, hostLog, "level", "msg_ptr", "msg_len"),
		fn(abi.FuncLastError, lastError, "out_ptr", "out_cap"),
	}
}

// exportHostFuncs instantiates the "env" module in rt: every entry of
// the table, exported in one place over the raw stack.
func (h *Host) exportHostFuncs(ctx context.Context, rt wazero.Runtime) error {
	b := rt.NewHostModuleBuilder(abi.ModuleName)
	for _, f := range h.funcs {
		types := make([]api.ValueType, len(f.params))
		for i := range types {
			types[i] = api.ValueTypeI32
		}
		b.NewFunctionBuilder().
			WithGoModuleFunction(h.wrap(f), types, []api.ValueType{api.ValueTypeI32}).
			WithParameterNames(f.params...).
			WithResultNames("result").
			Export(f.name)
	}
	if _, err := b.Instantiate(ctx); err != nil {
		return fmt.Errorf("core: host module: %w", err)
	}
	return nil
}

// wrap adapts an entry to wazero: finds the run's instance, traces,
// recovers host panics (a host bug fails the call, never the process)
// and encodes the result.
func (h *Host) wrap(f hostFunc) api.GoModuleFunc {
	return func(ctx context.Context, mod api.Module, stack []uint64) {
		in, _ := ctx.Value(instanceKey{}).(*instance)
		if in == nil {
			stack[0] = api.EncodeI32(-int32(abi.ErrnoInval))
			return
		}
		in.calls++
		if in.trace != nil {
			in.traceCall(f, stack)
		}
		r := in.call(f, mod.Memory(), stack)
		if in.trace != nil {
			if r >= 0 {
				fmt.Fprintf(in.trace, "<== %d\n", r)
			} else {
				fmt.Fprintf(in.trace, "<== %s\n", abi.Errno(-r).String())
			}
		}
		stack[0] = api.EncodeI32(r)
	}
}

func (in *instance) call(f hostFunc, mem api.Memory, stack []uint64) (r int32) {
	defer func() {
		if p := recover(); p != nil {
			in.host.log.Error("host function panicked", "func", f.name, "panic", p, "stack", string(debug.Stack()))
			r = in.fail(errf(abi.ErrnoBackend, "%s: internal host error: %v", f.name, p))
		}
	}()
	if err := in.ctx.Err(); err != nil {
		return in.fail(errf(abi.ErrnoCanceled, "%s: run cancelled: %v", f.name, err))
	}
	if mem == nil {
		return in.fail(errf(abi.ErrnoFault, "%s: guest has no memory", f.name))
	}
	r, err := f.impl(in, mem, stack[:len(f.params)])
	if err != nil {
		return in.fail(err)
	}
	return r
}

func (in *instance) traceCall(f hostFunc, stack []uint64) {
	var sb strings.Builder
	sb.WriteString("==> ")
	sb.WriteString(abi.ModuleName)
	sb.WriteByte('.')
	sb.WriteString(f.name)
	sb.WriteByte('(')
	for i, p := range f.params {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(p)
		sb.WriteByte('=')
		if signedParam(p) {
			sb.WriteString(strconv.Itoa(int(api.DecodeI32(stack[i]))))
		} else {
			sb.WriteString(strconv.FormatUint(uint64(api.DecodeU32(stack[i])), 10))
		}
	}
	sb.WriteString(")\n")
	in.trace.Write([]byte(sb.String()))
}

func signedParam(name string) bool {
	switch name {
	case "model", "session", "tensor", "level":
		return true
	}
	return false
}

func u32(v uint64) uint32 { return api.DecodeU32(v) }
func i32(v uint64) int32  { return api.DecodeI32(v) }

// --- models ---

func (in *instance) allowed(name string) bool {
	if in.policy.ModelPatterns == nil {
		return true
	}
	for _, pat := range in.policy.ModelPatterns {
		if ok, _ := path.Match(pat, name); ok {
			return true
		}
	}
	return false
}

func loadModelByName(in *instance, mem api.Memory, p []uint64) (int32, error) {
	name, err := readString(mem, u32(p[0]), u32(p[1]), abi.MaxNameLen, "model name")
	if err != nil {
		return 0, err
	}
	if why := abi.CheckModelName(name); why != "" {
		return 0, errf(abi.ErrnoInval, "invalid model name %q: %s", name, why)
	}
	if !in.allowed(name) {
		return 0, errf(abi.ErrnoAcces, "model %q is not allowed for this app (allowed: %s)", name, strings.Join(in.policy.ModelPatterns, ", "))
	}
	m, err := in.host.cfg.Models.Acquire(in.ctx, name)
	if err != nil {
		return 0, fmt.Errorf("load model %q: %w", name, err)
	}
	h, ok := in.models.add(&modelHandle{m: m})
	if !ok {
		in.host.cfg.Models.Release(m)
		return 0, errf(abi.ErrnoNomem, "too many open models (%d)", maxHandles)
	}
	return h, nil
}

func (in *instance) model(h int32) (*modelHandle, error) {
	m, ok := in.models.get(h)
	if !ok {
		return nil, errf(abi.ErrnoBadf, "bad model handle %d", h)
	}
	return m, nil
}

func unloadModel(in *instance, _ api.Memory, p []uint64) (int32, error) {
	h := i32(p[0])
	mh, err := in.model(h)
	if err != nil {
		return 0, err
	}
	for sh, s := range in.sessions.m {
		if s.model == h {
			if err := s.m.Backend.CloseSession(in.ctx, s.id); err != nil {
				in.host.log.Debug("closing session on unload", "error", err)
			}
			in.sessions.del(sh)
		}
	}
	for th, t := range in.tensors.m {
		if t.model == h {
			in.tensorBytes -= t.nbytes
			in.tensors.del(th)
		}
	}
	in.models.del(h)
	in.host.cfg.Models.Release(mh.m)
	return 0, nil
}

func listModels(in *instance, mem api.Memory, p []uint64) (int32, error) {
	names, err := in.host.cfg.Models.List(in.ctx)
	if err != nil {
		return 0, fmt.Errorf("list models: %w", err)
	}
	out := []string{}
	for _, n := range names {
		if in.allowed(n) {
			out = append(out, n)
		}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return 0, fmt.Errorf("list models: %w", err)
	}
	return writeOut(mem, u32(p[0]), u32(p[1]), b, "list models")
}

func modelInfo(in *instance, mem api.Memory, p []uint64) (int32, error) {
	mh, err := in.model(i32(p[0]))
	if err != nil {
		return 0, err
	}
	m := mh.m
	info := abi.ModelInfo{
		Name: m.Name, Arch: m.Info.Arch, Backend: m.BackendName,
		NCtxTrain: m.Info.NCtxTrain, NVocab: m.Info.NVocab, NEmbd: m.Info.NEmbd,
		NLayer: m.Info.NLayer, NHead: m.Info.NHead, NHeadKV: m.Info.NHeadKV, NFF: m.Info.NFF,
		TensorTypes: m.Info.TensorTypes, WeightBytes: m.Info.WeightBytes, EOG: []int32{},
	}
	if m.Meta != nil {
		info.ChatTemplate, _ = m.Meta.String("tokenizer.chat_template")
	}
	if t := m.Tokenizer; t != nil {
		info.BOS, info.EOS, info.AddBOS = t.BOS(), t.EOS(), t.AddBOSDefault()
		info.EOG = t.EOGs()
	}
	b, err := json.Marshal(info)
	if err != nil {
		return 0, fmt.Errorf("model info: %w", err)
	}
	return writeOut(mem, u32(p[1]), u32(p[2]), b, "model info")
}

// --- tokens ---

func (mh *modelHandle) tokenizer() (*tokenizer.Tokenizer, error) {
	if mh.m.Tokenizer == nil {
		return nil, errf(abi.ErrnoNotsup, "model %q has no tokenizer", mh.m.Name)
	}
	return mh.m.Tokenizer, nil
}

func tokenize(in *instance, mem api.Memory, p []uint64) (int32, error) {
	mh, err := in.model(i32(p[0]))
	if err != nil {
		return 0, err
	}
	flags := u32(p[3])
	if flags&^uint32(abi.TokenizeAddBOS|abi.TokenizeParseSpecial|abi.TokenizeDefaultBOS) != 0 {
		return 0, errf(abi.ErrnoInval, "tokenize: unknown flags %#x", flags)
	}
	tok, err := mh.tokenizer()
	if err != nil {
		return 0, err
	}
	text, err := readString(mem, u32(p[1]), u32(p[2]), abi.MaxTextLen, "tokenize text")
	if err != nil {
		return 0, err
	}
	addBOS := flags&abi.TokenizeAddBOS != 0
	if flags&abi.TokenizeDefaultBOS != 0 {
		addBOS = tok.AddBOSDefault()
	}
	ids, err := tok.Encode(text, addBOS, flags&abi.TokenizeParseSpecial != 0)
	if err != nil {
		return 0, errf(abi.ErrnoInval, "tokenize: %v", err)
	}
	return writeI32s(mem, u32(p[4]), u32(p[5]), ids, "tokenize")
}

const maxDetokenize = 1 << 20

func detokenize(in *instance, mem api.Memory, p []uint64) (int32, error) {
	mh, err := in.model(i32(p[0]))
	if err != nil {
		return 0, err
	}
	flags := u32(p[3])
	if flags&^uint32(abi.DetokenizePieces) != 0 {
		return 0, errf(abi.ErrnoInval, "detokenize: unknown flags %#x", flags)
	}
	tok, err := mh.tokenizer()
	if err != nil {
		return 0, err
	}
	ids, err := readI32s(mem, u32(p[1]), u32(p[2]), maxDetokenize, "detokenize ids")
	if err != nil {
		return 0, err
	}
	if err := checkIDs(ids, tok.NVocab()); err != nil {
		return 0, err
	}
	// Bound the text before building it: a vocabulary with long pieces
	// could otherwise turn 1M ids into gigabytes.
	total := 0
	for _, id := range ids {
		if total += len(tok.Piece(id)); total > abi.MaxTextLen {
			return 0, errf(abi.Errno2big, "detokenize: the text of %d ids exceeds %d bytes", len(ids), abi.MaxTextLen)
		}
	}
	var text []byte
	if flags&abi.DetokenizePieces != 0 {
		for _, id := range ids {
			text = append(text, tok.Piece(id)...)
		}
	} else {
		text = []byte(tok.Decode(ids))
	}
	return writeOut(mem, u32(p[4]), u32(p[5]), text, "detokenize")
}

func checkIDs(ids []int32, nVocab int) error {
	for i, id := range ids {
		if id < 0 || int(id) >= nVocab {
			return errf(abi.ErrnoInval, "token %d at index %d is outside the vocabulary [0, %d)", id, i, nVocab)
		}
	}
	return nil
}

// --- sessions ---

func (in *instance) session(h int32) (*sessionHandle, error) {
	s, ok := in.sessions.get(h)
	if !ok {
		return nil, errf(abi.ErrnoBadf, "bad session handle %d", h)
	}
	return s, nil
}

// contextSize resolves a requested context size against the model and
// the policy (0 = as large as allowed).
func (in *instance) contextSize(m *Model, req uint32) (int, error) {
	limit := m.Info.NCtxTrain
	if limit <= 0 {
		limit = 4096
	}
	if in.policy.MaxContext > 0 && in.policy.MaxContext < limit {
		limit = in.policy.MaxContext
	}
	if req == 0 {
		return limit, nil
	}
	if uint64(req) > uint64(limit) {
		return 0, errf(abi.ErrnoInval, "context size %d exceeds the limit of %d", req, limit)
	}
	return int(req), nil
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
	id, err := mh.m.Backend.OpenSession(in.ctx, mh.m.Info.ID, nCtx)
	if err != nil {
		return 0, fmt.Errorf("open session: %w", err)
	}
	h, _ := in.sessions.add(&sessionHandle{model: i32(p[0]), m: mh.m, id: id, nCtx: nCtx})
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
	res, err := s.m.Backend.Decode(in.ctx, backends.DecodeRequest{Session: s.id, Tokens: ids, Want: backends.WantLogits})
	if err != nil {
		return 0, fmt.Errorf("decode: %w", err)
	}
	in.decoded += len(ids)
	if res.NPast != s.nPast+len(ids) || len(res.Logits) != s.m.Info.NVocab {
		return 0, errf(abi.ErrnoBackend, "decode: backend answered %d logits at position %d, want %d at %d",
			len(res.Logits), res.NPast, s.m.Info.NVocab, s.nPast+len(ids))
	}
	s.logits = res.Logits
	s.nPast = res.NPast
	// The whole session (at most n_ctx tokens), so that the repetition
	// penalty sees the window a backend-side sampler would see.
	s.history = append(s.history, ids...)
	return int32(s.nPast), nil
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
	if s.logits == nil {
		return 0, errf(abi.ErrnoInval, "logits: nothing decoded since the session opened or was truncated")
	}
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

func sampleParams(p abi.SampleParams) sample.Params {
	return sample.Params{
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
	if s.logits == nil {
		return 0, errf(abi.ErrnoInval, "sample: nothing decoded since the session opened or was truncated")
	}
	if s.sampler == nil {
		s.sampler = sample.New(sampleParams(sp))
	} else {
		s.sampler.SetParams(sampleParams(sp))
	}
	id, err := s.sampler.Sample(s.logits, s.history)
	if err != nil {
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
	s.logits = nil
	s.history = s.history[:n]
	return int32(n), nil
}

func sessionClose(in *instance, _ api.Memory, p []uint64) (int32, error) {
	h := i32(p[0])
	s, err := in.session(h)
	if err != nil {
		return 0, err
	}
	in.sessions.del(h)
	if err := s.m.Backend.CloseSession(in.ctx, s.id); err != nil {
		return 0, fmt.Errorf("close session: %w", err)
	}
	return 0, nil
}

// --- tensors ---

func (in *instance) tensor(h int32) (*tensorHandle, error) {
	t, ok := in.tensors.get(h)
	if !ok {
		return nil, errf(abi.ErrnoBadf, "bad tensor handle %d", h)
	}
	return t, nil
}

func (in *instance) addTensor(t *tensorHandle) (int32, error) {
	if in.tensorBytes+t.nbytes > in.policy.MaxTensorBytes {
		return 0, errf(abi.ErrnoNomem, "tensor of %d bytes exceeds the run's tensor budget (%d of %d used)", t.nbytes, in.tensorBytes, in.policy.MaxTensorBytes)
	}
	h, ok := in.tensors.add(t)
	if !ok {
		return 0, errf(abi.ErrnoNomem, "too many open tensors (%d)", maxHandles)
	}
	in.tensorBytes += t.nbytes
	return h, nil
}

func tensorFromWeight(in *instance, mem api.Memory, p []uint64) (int32, error) {
	mh, err := in.model(i32(p[0]))
	if err != nil {
		return 0, err
	}
	name, err := readString(mem, u32(p[1]), u32(p[2]), abi.MaxNameLen, "tensor name")
	if err != nil {
		return 0, err
	}
	shape, ok := mh.m.shape(name)
	if !ok {
		return 0, errf(abi.ErrnoNoent, "model %q has no tensor %q", mh.m.Name, name)
	}
	return in.addTensor(&tensorHandle{model: i32(p[0]), m: mh.m, name: name, shape: append([]int(nil), shape...)})
}

func tensorFromData(in *instance, mem api.Memory, p []uint64) (int32, error) {
	n, nDims := u32(p[1]), u32(p[3])
	if nDims == 0 || nDims > abi.MaxDims {
		return 0, errf(abi.ErrnoInval, "tensor: rank %d is outside [1, %d]", nDims, abi.MaxDims)
	}
	dims, err := readI32s(mem, u32(p[2]), nDims, abi.MaxDims, "tensor shape")
	if err != nil {
		return 0, err
	}
	shape, err := checkShape(dims, uint64(n))
	if err != nil {
		return 0, err
	}
	left := in.policy.MaxTensorBytes - in.tensorBytes
	data, err := readF32s(mem, u32(p[0]), n, uint64(max(left, 0))/4, "tensor data")
	if err != nil {
		return 0, err
	}
	return in.addTensor(&tensorHandle{shape: shape, data: data, nbytes: int64(n) * 4})
}

func checkShape(dims []int32, n uint64) ([]int, error) {
	shape := make([]int, len(dims))
	prod := uint64(1)
	for i, d := range dims {
		if d <= 0 {
			return nil, errf(abi.ErrnoInval, "tensor: dimension %d is %d (must be > 0)", i, d)
		}
		prod *= uint64(d)
		if prod > math.MaxUint32 {
			return nil, errf(abi.ErrnoInval, "tensor: shape %v has too many elements", dims)
		}
		shape[i] = int(d)
	}
	if prod != n {
		return nil, errf(abi.ErrnoInval, "tensor: shape %v has %d elements, data has %d", dims, prod, n)
	}
	return shape, nil
}

// isTensorOp reports whether op is one of the ops the ABI routes.
func isTensorOp(op string) bool {
	switch op {
	case backends.OpMatMul, backends.OpGetRows, backends.OpRMSNorm, backends.OpRoPE,
		backends.OpSoftmax, backends.OpSiLUMul, backends.OpSiLU, backends.OpAdd,
		backends.OpMul, backends.OpAttention:
		return true
	}
	return false
}

func tensorOp(in *instance, mem api.Memory, p []uint64) (int32, error) {
	op, err := readString(mem, u32(p[0]), u32(p[1]), 32, "op name")
	if err != nil {
		return 0, err
	}
	if !isTensorOp(op) {
		return 0, errf(abi.ErrnoInval, "unknown tensor op %q", op)
	}
	nIn := u32(p[3])
	if nIn == 0 {
		return 0, errf(abi.ErrnoInval, "%s: no inputs", op)
	}
	hs, err := readI32s(mem, u32(p[2]), nIn, abi.MaxInputs, "op inputs")
	if err != nil {
		return 0, err
	}
	var op2 abi.OpParams
	if err := readJSON(mem, u32(p[4]), u32(p[5]), &op2, "op params"); err != nil {
		return 0, err
	}
	req := backends.TensorOpRequest{Op: op, Params: backends.OpParams{
		Eps: op2.Eps, IDs: op2.IDs, Pos: op2.Pos, NDims: op2.NDims, Base: op2.Base,
		NHead: op2.NHead, NHeadKV: op2.NHeadKV, HeadDim: op2.HeadDim, StartPos: op2.StartPos, Scale: op2.Scale,
	}}
	var be backends.Backend
	for _, h := range hs {
		t, err := in.tensor(h)
		if err != nil {
			return 0, err
		}
		ref := backends.TensorRef{Shape: t.shape}
		if t.m != nil {
			ref.Model, ref.Name = t.m.Info.ID, t.name
			if be != nil && be != t.m.Backend {
				return 0, errf(abi.ErrnoInval, "%s: inputs are weights of models in different backends", op)
			}
			be = t.m.Backend
		} else {
			ref.Type, ref.Data = gguf.TypeF32, gguf.F32Bytes(t.data)
		}
		req.Inputs = append(req.Inputs, ref)
	}
	if be == nil {
		be = in.anyBackend()
	}
	if be == nil {
		return 0, errf(abi.ErrnoNotsup, "%s: no backend: load a model first", op)
	}
	return in.runOp(be, req)
}

func (in *instance) anyBackend() backends.Backend {
	best := int32(math.MaxInt32)
	var be backends.Backend
	for h, m := range in.models.m {
		if h < best {
			best, be = h, m.m.Backend
		}
	}
	return be
}

func (in *instance) runOp(be backends.Backend, req backends.TensorOpRequest) (int32, error) {
	res, err := be.TensorOp(in.ctx, req)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", req.Op, err)
	}
	if err := checkResult(res); err != nil {
		return 0, fmt.Errorf("%s: %w", req.Op, err)
	}
	return in.addTensor(&tensorHandle{shape: res.Shape, data: res.Data, nbytes: int64(len(res.Data)) * 4})
}

// checkResult rejects a backend result whose shape the ABI cannot carry
// (rank, i32 dimensions) or that disagrees with its data, so that a
// faulty plugin cannot hand the guest a tensor that lies about its size.
func checkResult(res *backends.TensorOpResult) error {
	if len(res.Shape) == 0 || len(res.Shape) > abi.MaxDims {
		return errf(abi.ErrnoBackend, "backend returned a tensor of rank %d (want 1 to %d)", len(res.Shape), abi.MaxDims)
	}
	n := uint64(1)
	for _, d := range res.Shape {
		if d <= 0 || d > math.MaxInt32 {
			return errf(abi.ErrnoBackend, "backend returned a tensor of shape %v", res.Shape)
		}
		if n *= uint64(d); n > math.MaxUint32 {
			return errf(abi.ErrnoBackend, "backend returned a tensor of shape %v (too many elements)", res.Shape)
		}
	}
	if n != uint64(len(res.Data)) {
		return errf(abi.ErrnoBackend, "backend returned a tensor of shape %v with %d values", res.Shape, len(res.Data))
	}
	return nil
}

func tensorShape(in *instance, mem api.Memory, p []uint64) (int32, error) {
	t, err := in.tensor(i32(p[0]))
	if err != nil {
		return 0, err
	}
	dims := make([]int32, len(t.shape))
	for i, d := range t.shape {
		dims[i] = int32(d)
	}
	return writeI32s(mem, u32(p[1]), u32(p[2]), dims, "tensor shape")
}

func tensorRead(in *instance, mem api.Memory, p []uint64) (int32, error) {
	t, err := in.tensor(i32(p[0]))
	if err != nil {
		return 0, err
	}
	data := t.data
	if t.m != nil {
		// A weight: the backend dequantizes its rows.
		if len(t.shape) == 0 || len(t.shape) > 2 {
			return 0, errf(abi.ErrnoNotsup, "tensor read: weights of rank %d", len(t.shape))
		}
		rows := 1
		if len(t.shape) == 2 {
			rows = t.shape[1]
		}
		n := int64(rows) * int64(t.shape[0])
		if n*4 > in.policy.MaxTensorBytes-in.tensorBytes {
			return 0, errf(abi.ErrnoNomem, "tensor read: %d elements exceed the run's tensor budget", n)
		}
		req := backends.TensorOpRequest{Op: backends.OpGetRows, Inputs: []backends.TensorRef{{Model: t.m.Info.ID, Name: t.name, Shape: t.shape}}}
		if len(t.shape) == 1 {
			// get_rows needs rows: materialize a vector as weight + 0.
			req = backends.TensorOpRequest{Op: backends.OpAdd, Inputs: []backends.TensorRef{req.Inputs[0],
				{Type: gguf.TypeF32, Shape: t.shape, Data: make([]byte, 4*t.shape[0])}}}
		} else {
			req.Params.IDs = make([]int32, rows)
			for i := range req.Params.IDs {
				req.Params.IDs[i] = int32(i)
			}
		}
		res, err := t.m.Backend.TensorOp(in.ctx, req)
		if err != nil {
			return 0, fmt.Errorf("tensor read: %w", err)
		}
		data = res.Data
	}
	return writeF32s(mem, u32(p[1]), u32(p[2]), data, "tensor read")
}

func tensorFree(in *instance, _ api.Memory, p []uint64) (int32, error) {
	h := i32(p[0])
	t, err := in.tensor(h)
	if err != nil {
		return 0, err
	}
	in.tensorBytes -= t.nbytes
	in.tensors.del(h)
	return 0, nil
}

// --- misc ---

func hostLog(in *instance, mem api.Memory, p []uint64) (int32, error) {
	level := i32(p[0])
	if level < abi.LogDebug || level > abi.LogError {
		return 0, errf(abi.ErrnoInval, "log: unknown level %d", level)
	}
	n := min(u32(p[2]), abi.MaxLogLen)
	msg, err := readString(mem, u32(p[1]), n, abi.MaxLogLen, "log message")
	if err != nil {
		return 0, err
	}
	if in.logBytes += int64(len(msg)); in.logBytes > maxLogBytes {
		return 0, errf(abi.ErrnoLimit, "log: this run has logged more than %d bytes", maxLogBytes)
	}
	l := in.host.log.Named("guest")
	switch level {
	case abi.LogDebug:
		l.Debug(msg)
	case abi.LogInfo:
		l.Info(msg)
	case abi.LogWarn:
		l.Warn(msg)
	default:
		l.Error(msg)
	}
	return 0, nil
}

func lastError(in *instance, mem api.Memory, p []uint64) (int32, error) {
	return writeOut(mem, u32(p[0]), u32(p[1]), []byte(in.lastErr), "last error")
}

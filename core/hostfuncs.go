package core

import (
	"context"
	"fmt"
	"path"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/realmrt/realm/abi"
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
		in.markCut()
		return in.fail(errf(abi.ErrnoCanceled, "%s: run cancelled: %v", f.name, err))
	}
	if mem == nil {
		return in.fail(errf(abi.ErrnoFault, "%s: guest has no memory", f.name))
	}
	r, err := f.impl(in, mem, stack[:len(f.params)])
	if err != nil {
		if in.ctx.Err() != nil {
			in.markCut()
		}
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

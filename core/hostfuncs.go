package core

import (
	"context"
	"fmt"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/realmrt/realm/abi"
)

// hostFunc is one host function as data: its ABI name and parameters
// (from abi.Functions) and its implementation, which returns a
// non-negative result or an error mapped to -errno.
type hostFunc struct {
	name   string
	params []abi.Param
	impl   hostImpl
}

// hostImpl implements a host function over its raw i32 parameters.
type hostImpl func(in *instance, mem api.Memory, p []uint64) (int32, error)

// hostImpls maps every abi function to its implementation and the
// number of parameters that implementation reads (pinned equal to the
// abi table by TestHostImplsMatchABI).
func hostImpls() map[string]struct {
	impl    hostImpl
	nParams int
} {
	type entry = struct {
		impl    hostImpl
		nParams int
	}
	return map[string]entry{
		abi.FuncLoadModelByName:  {loadModelByName, 2},
		abi.FuncUnloadModel:      {unloadModel, 1},
		abi.FuncListModels:       {listModels, 2},
		abi.FuncModelInfo:        {modelInfo, 3},
		abi.FuncTokenize:         {tokenize, 6},
		abi.FuncDetokenize:       {detokenize, 6},
		abi.FuncSessionOpen:      {sessionOpen, 2},
		abi.FuncSessionDecode:    {sessionDecode, 3},
		abi.FuncSessionLogits:    {sessionLogits, 3},
		abi.FuncSessionSample:    {sessionSample, 3},
		abi.FuncSessionTruncate:  {sessionTruncate, 2},
		abi.FuncSessionClose:     {sessionClose, 1},
		abi.FuncGenerate:         {generate, 5},
		abi.FuncTensorFromWeight: {tensorFromWeight, 3},
		abi.FuncTensorFromData:   {tensorFromData, 4},
		abi.FuncTensorOp:         {tensorOp, 6},
		abi.FuncTensorShape:      {tensorShape, 3},
		abi.FuncTensorRead:       {tensorRead, 3},
		abi.FuncTensorFree:       {tensorFree, 1},
		abi.FuncLog:              {hostLog, 3},
		abi.FuncLastError:        {lastError, 2},
		abi.FuncEmbed:            {embed, 8},
	}
}

// hostFuncs is the ABI, in abi.Functions order: names and parameters
// come from the abi table, implementations from hostImpls. A function
// the host does not implement fails every call with ENOTSUP (a test
// keeps that from shipping).
func hostFuncs() []hostFunc {
	impls := hostImpls()
	fs := abi.Functions()
	out := make([]hostFunc, len(fs))
	for i, f := range fs {
		impl := impls[f.Name].impl
		if impl == nil {
			name := f.Name
			impl = func(*instance, api.Memory, []uint64) (int32, error) {
				return 0, errf(abi.ErrnoNotsup, "%s: not implemented by this host", name)
			}
		}
		out[i] = hostFunc{name: f.Name, params: f.Params, impl: impl}
	}
	return out
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
			WithParameterNames(paramNames(f.params)...).
			WithResultNames("result").
			Export(f.name)
	}
	if _, err := b.Instantiate(ctx); err != nil {
		return fmt.Errorf("core: host module: %w", err)
	}
	return nil
}

func paramNames(ps []abi.Param) []string {
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.Name
	}
	return names
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
		sb.WriteString(p.Name)
		sb.WriteByte('=')
		if p.Type.Signed() {
			sb.WriteString(strconv.Itoa(int(api.DecodeI32(stack[i]))))
		} else {
			sb.WriteString(strconv.FormatUint(uint64(api.DecodeU32(stack[i])), 10))
		}
	}
	sb.WriteString(")\n")
	in.trace.Write([]byte(sb.String()))
}

func u32(v uint64) uint32 { return api.DecodeU32(v) }
func i32(v uint64) int32  { return api.DecodeI32(v) }

// --- models ---

func (in *instance) allowed(name string) bool { return in.policy.AllowsModel(name) }

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

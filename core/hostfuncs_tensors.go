// Host functions of the tensors group: tensors from weights or data, ops routed to the backend, shape, read, free.

package core

import (
	"fmt"
	"math"

	"github.com/tetratelabs/wazero/api"

	"github.com/realmrt/realm/abi"
	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/gguf"
)

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
	_, ok := backends.OpInputs(op)
	return ok
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
	var data []*tensorHandle // by input; nil for weights
	sent := uint64(4 * (len(req.Params.IDs) + len(req.Params.Pos)))
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
			data = append(data, nil)
		} else {
			ref.Type = gguf.TypeF32
			sent += uint64(len(t.data)) * 4
			data = append(data, t)
		}
		req.Inputs = append(req.Inputs, ref)
	}
	if be == nil {
		be = in.anyBackend()
	}
	if be == nil {
		return 0, errf(abi.ErrnoNotsup, "%s: no backend: load a model first", op)
	}
	// Checked from the shapes before anything is copied or computed.
	if err := in.checkOpSize(req, sent); err != nil {
		return 0, err
	}
	for i, t := range data {
		if t != nil {
			req.Inputs[i].Data = gguf.F32Bytes(t.data)
		}
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

// msgSlack is room left in a gRPC message for everything but tensor
// data (shapes, names, framing).
const msgSlack = 64 << 10

// opOutputElems is the number of values op produces, from the input
// shapes alone (the shapes the backends document on the Op constants),
// so that the budget is checked before the backend computes or
// allocates anything.
func opOutputElems(req backends.TensorOpRequest) uint64 {
	elems := func(shape []int) uint64 {
		n := uint64(1)
		for _, d := range shape {
			n *= uint64(max(d, 0))
		}
		return n
	}
	in0 := req.Inputs[0].Shape
	switch req.Op {
	case backends.OpMatMul: // [cols, rows] × [cols, batch] → [rows, batch]
		if len(req.Inputs) < 2 || len(in0) == 0 || in0[0] <= 0 {
			return 0
		}
		cols := uint64(in0[0])
		return elems(in0) / cols * (elems(req.Inputs[1].Shape) / cols)
	case backends.OpGetRows: // [cols, rows], IDs → [cols, len(IDs)]
		if len(in0) == 0 {
			return 0
		}
		return uint64(max(in0[0], 0)) * uint64(len(req.Params.IDs))
	}
	// Elementwise, norms, rope, softmax, attention: the shape of the
	// (largest) input.
	var n uint64
	for _, r := range req.Inputs {
		n = max(n, elems(r.Shape))
	}
	return n
}

// checkOpSize refuses an op whose request or result would exceed the
// run's tensor budget or the plugin boundary's message limit. The
// budget counts the result and the encoded copies of the inputs, which
// the host holds while the op runs.
func (in *instance) checkOpSize(req backends.TensorOpRequest, sent uint64) error {
	out := opOutputElems(req) * 4
	left := uint64(max(in.policy.MaxTensorBytes-in.tensorBytes, 0))
	if out+sent > left {
		return errf(abi.ErrnoNomem, "%s: the result (%d bytes) and the inputs' copies (%d bytes) exceed the run's tensor budget (%d of %d bytes left)",
			req.Op, out, sent, left, in.policy.MaxTensorBytes)
	}
	if out > backends.MaxMessageBytes-msgSlack {
		return errf(abi.Errno2big, "%s: the result (%d bytes) exceeds the backend message limit (%d bytes)", req.Op, out, backends.MaxMessageBytes)
	}
	if sent > backends.MaxMessageBytes-msgSlack {
		return errf(abi.Errno2big, "%s: the inputs (%d bytes) exceed the backend message limit (%d bytes)", req.Op, sent, backends.MaxMessageBytes)
	}
	return nil
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
		if n*4 > backends.MaxMessageBytes-msgSlack {
			return 0, errf(abi.Errno2big, "tensor read: %d elements exceed the backend message limit (%d bytes)", n, backends.MaxMessageBytes)
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

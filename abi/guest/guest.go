//go:build wasip1

package guest

import (
	"encoding/json"
	"fmt"
	"math"
	"runtime"
	"unsafe"

	"github.com/realmrt/realm/abi"
)

// Error is a failed host call.
type Error struct {
	Op    string    // the host function
	Errno abi.Errno // the error number
	Msg   string    // the host's message (realm_host_last_error)
}

func (e *Error) Error() string {
	if e.Msg != "" {
		return fmt.Sprintf("%s: %s (%s)", e.Op, e.Msg, e.Errno)
	}
	return fmt.Sprintf("%s: %s", e.Op, e.Errno.Error())
}

// Unwrap returns the Errno, so errors.Is(err, abi.ErrnoBadf) works.
func (e *Error) Unwrap() error { return e.Errno }

// check turns a raw result into a value or an *Error.
func check(op string, r int32) (int32, error) {
	if r >= 0 {
		return r, nil
	}
	return 0, &Error{Op: op, Errno: abi.Errno(-r), Msg: LastError()}
}

// ptr returns the linear-memory address of b's first byte (0 when empty).
func ptr(b []byte) uint32 {
	if len(b) == 0 {
		return 0
	}
	return uint32(uintptr(unsafe.Pointer(&b[0])))
}

func strPtr(s string) uint32 {
	if len(s) == 0 {
		return 0
	}
	return uint32(uintptr(unsafe.Pointer(unsafe.StringData(s))))
}

func i32Ptr(v []int32) uint32 {
	if len(v) == 0 {
		return 0
	}
	return uint32(uintptr(unsafe.Pointer(&v[0])))
}

func f32Ptr(v []float32) uint32 {
	if len(v) == 0 {
		return 0
	}
	return uint32(uintptr(unsafe.Pointer(&v[0])))
}

// bytesOut calls f with growing buffers until the output fits.
func bytesOut(op string, f func(p, c uint32) int32) ([]byte, error) {
	buf := make([]byte, 256)
	for {
		n, err := check(op, f(ptr(buf), uint32(len(buf))))
		runtime.KeepAlive(buf)
		if err != nil {
			return nil, err
		}
		if int(n) <= len(buf) {
			return buf[:n], nil
		}
		buf = make([]byte, n)
	}
}

func i32sOut(op string, f func(p, c uint32) int32) ([]int32, error) {
	buf := make([]int32, 64)
	for {
		n, err := check(op, f(i32Ptr(buf), uint32(len(buf))))
		runtime.KeepAlive(buf)
		if err != nil {
			return nil, err
		}
		if int(n) <= len(buf) {
			return buf[:n], nil
		}
		buf = make([]int32, n)
	}
}

func f32sOut(op string, buf []float32, f func(p, c uint32) int32) ([]float32, error) {
	for {
		n, err := check(op, f(f32Ptr(buf), uint32(len(buf))))
		runtime.KeepAlive(buf)
		if err != nil {
			return nil, err
		}
		if int(n) <= len(buf) {
			return buf[:n], nil
		}
		buf = make([]float32, n)
	}
}

// LastError returns the message of this instance's last failed call.
func LastError() string {
	buf := make([]byte, 256)
	for {
		n := hostLastError(ptr(buf), uint32(len(buf)))
		if n < 0 {
			return ""
		}
		if int(n) <= len(buf) {
			return string(buf[:n])
		}
		buf = make([]byte, n)
	}
}

// Log writes msg to the host log at a level (abi.LogDebug ... LogError).
func Log(level int, msg string) error {
	_, err := check(abi.FuncLog, hostLog(int32(level), strPtr(msg), uint32(len(msg))))
	runtime.KeepAlive(msg)
	return err
}

// Model is a loaded model.
type Model struct{ h int32 }

// LoadModel loads a model by its registry name.
func LoadModel(name string) (*Model, error) {
	h, err := check(abi.FuncLoadModelByName, hostLoadModelByName(strPtr(name), uint32(len(name))))
	runtime.KeepAlive(name)
	if err != nil {
		return nil, err
	}
	return &Model{h: h}, nil
}

// ListModels returns the model names this guest may load.
func ListModels() ([]string, error) {
	b, err := bytesOut(abi.FuncListModels, hostListModels)
	if err != nil {
		return nil, err
	}
	var names []string
	if err := json.Unmarshal(b, &names); err != nil {
		return nil, fmt.Errorf("%s: %w", abi.FuncListModels, err)
	}
	return names, nil
}

// Handle returns the raw model handle.
func (m *Model) Handle() int32 { return m.h }

// Unload drops this guest's reference to the model.
func (m *Model) Unload() error {
	_, err := check(abi.FuncUnloadModel, hostUnloadModel(m.h))
	return err
}

// Info describes the model.
func (m *Model) Info() (*abi.ModelInfo, error) {
	b, err := bytesOut(abi.FuncModelInfo, func(p, c uint32) int32 { return hostModelInfo(m.h, p, c) })
	if err != nil {
		return nil, err
	}
	var info abi.ModelInfo
	if err := json.Unmarshal(b, &info); err != nil {
		return nil, fmt.Errorf("%s: %w", abi.FuncModelInfo, err)
	}
	return &info, nil
}

// Tokenize turns text into tokens (flags: abi.Tokenize*).
func (m *Model) Tokenize(text string, flags uint32) ([]int32, error) {
	ids, err := i32sOut(abi.FuncTokenize, func(p, c uint32) int32 {
		return hostTokenize(m.h, strPtr(text), uint32(len(text)), flags, p, c)
	})
	runtime.KeepAlive(text)
	return ids, err
}

// Detokenize turns tokens into text (flags: abi.Detokenize*).
func (m *Model) Detokenize(ids []int32, flags uint32) (string, error) {
	b, err := bytesOut(abi.FuncDetokenize, func(p, c uint32) int32 {
		return hostDetokenize(m.h, i32Ptr(ids), uint32(len(ids)), flags, p, c)
	})
	runtime.KeepAlive(ids)
	return string(b), err
}

// Piece returns the bytes one token contributes to a stream of text.
func (m *Model) Piece(id int32) ([]byte, error) {
	ids := []int32{id}
	b, err := bytesOut(abi.FuncDetokenize, func(p, c uint32) int32 {
		return hostDetokenize(m.h, i32Ptr(ids), 1, abi.DetokenizePieces, p, c)
	})
	runtime.KeepAlive(ids)
	return b, err
}

// Generate generates from prompt, streaming the text to stdout, and
// returns the number of tokens generated.
func (m *Model) Generate(prompt string, params abi.GenerateParams) (int, error) {
	pj, err := json.Marshal(params)
	if err != nil {
		return 0, err
	}
	n, err := check(abi.FuncGenerate, hostGenerate(m.h, strPtr(prompt), uint32(len(prompt)), ptr(pj), uint32(len(pj))))
	runtime.KeepAlive(prompt)
	runtime.KeepAlive(pj)
	return int(n), err
}

// Session is a decoding session on a model.
type Session struct {
	h      int32
	logits []float32
}

// NewSession opens a session of nCtx positions (0: as large as allowed).
func (m *Model) NewSession(nCtx int) (*Session, error) {
	if nCtx < 0 || nCtx > math.MaxInt32 {
		return nil, &Error{Op: abi.FuncSessionOpen, Errno: abi.ErrnoInval, Msg: "bad context size"}
	}
	h, err := check(abi.FuncSessionOpen, hostSessionOpen(m.h, uint32(nCtx)))
	if err != nil {
		return nil, err
	}
	return &Session{h: h}, nil
}

// Handle returns the raw session handle.
func (s *Session) Handle() int32 { return s.h }

// Decode appends tokens and returns the session length.
func (s *Session) Decode(ids []int32) (int, error) {
	n, err := check(abi.FuncSessionDecode, hostSessionDecode(s.h, i32Ptr(ids), uint32(len(ids))))
	runtime.KeepAlive(ids)
	return int(n), err
}

// Logits returns the logits of the last decoded position. The slice is
// reused by the next call.
func (s *Session) Logits() ([]float32, error) {
	out, err := f32sOut(abi.FuncSessionLogits, s.logits, func(p, c uint32) int32 { return hostSessionLogits(s.h, p, c) })
	if err == nil {
		s.logits = out
	}
	return out, err
}

// Sample samples a token from the last logits on the host.
func (s *Session) Sample(params abi.SampleParams) (int32, error) {
	pj, err := json.Marshal(params)
	if err != nil {
		return 0, err
	}
	id, err := check(abi.FuncSessionSample, hostSessionSample(s.h, ptr(pj), uint32(len(pj))))
	runtime.KeepAlive(pj)
	return id, err
}

// Truncate rewinds the session to its first n positions.
func (s *Session) Truncate(n int) error {
	_, err := check(abi.FuncSessionTruncate, hostSessionTruncate(s.h, uint32(n)))
	return err
}

// Close closes the session.
func (s *Session) Close() error {
	_, err := check(abi.FuncSessionClose, hostSessionClose(s.h))
	return err
}

// Tensor is a tensor held by the host (a model weight or f32 data).
type Tensor struct{ h int32 }

// Weight returns a tensor for the model's weight called name.
func (m *Model) Weight(name string) (*Tensor, error) {
	h, err := check(abi.FuncTensorFromWeight, hostTensorFromWeight(m.h, strPtr(name), uint32(len(name))))
	runtime.KeepAlive(name)
	if err != nil {
		return nil, err
	}
	return &Tensor{h: h}, nil
}

// NewTensor makes an f32 tensor from data with shape (fastest first).
func NewTensor(data []float32, shape ...int) (*Tensor, error) {
	dims := make([]int32, len(shape))
	for i, d := range shape {
		dims[i] = int32(d)
	}
	h, err := check(abi.FuncTensorFromData, hostTensorFromData(f32Ptr(data), uint32(len(data)), i32Ptr(dims), uint32(len(dims))))
	runtime.KeepAlive(data)
	runtime.KeepAlive(dims)
	if err != nil {
		return nil, err
	}
	return &Tensor{h: h}, nil
}

// Op runs a tensor op (matmul, add, mul, rmsnorm, softmax, silu,
// silu_mul, rope, get_rows, attention) on the backend.
func Op(op string, params *abi.OpParams, inputs ...*Tensor) (*Tensor, error) {
	var pj []byte
	if params != nil {
		var err error
		if pj, err = json.Marshal(params); err != nil {
			return nil, err
		}
	}
	hs := make([]int32, len(inputs))
	for i, t := range inputs {
		hs[i] = t.h
	}
	h, err := check(abi.FuncTensorOp, hostTensorOp(strPtr(op), uint32(len(op)), i32Ptr(hs), uint32(len(hs)), ptr(pj), uint32(len(pj))))
	runtime.KeepAlive(op)
	runtime.KeepAlive(hs)
	runtime.KeepAlive(pj)
	if err != nil {
		return nil, err
	}
	return &Tensor{h: h}, nil
}

// Handle returns the raw tensor handle.
func (t *Tensor) Handle() int32 { return t.h }

// Shape returns the tensor's shape (fastest first).
func (t *Tensor) Shape() ([]int, error) {
	dims, err := i32sOut(abi.FuncTensorShape, func(p, c uint32) int32 { return hostTensorShape(t.h, p, c) })
	if err != nil {
		return nil, err
	}
	out := make([]int, len(dims))
	for i, d := range dims {
		out[i] = int(d)
	}
	return out, nil
}

// Read copies the tensor's data out as f32.
func (t *Tensor) Read() ([]float32, error) {
	return f32sOut(abi.FuncTensorRead, nil, func(p, c uint32) int32 { return hostTensorRead(t.h, p, c) })
}

// Free frees the tensor.
func (t *Tensor) Free() error {
	_, err := check(abi.FuncTensorFree, hostTensorFree(t.h))
	return err
}

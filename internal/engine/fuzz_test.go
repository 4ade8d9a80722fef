package engine_test

import (
	"context"
	"strings"
	"testing"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/gguf"
	"github.com/realmrt/realm/internal/backend/reference"
	"github.com/realmrt/realm/internal/engine"
)

// FuzzTensorOp feeds arbitrary shapes, types, data and parameters to
// every op: the backend must answer with a result or an error, never
// panic (a kernel panic would surface as a "kernel panic" error).
func FuzzTensorOp(f *testing.F) {
	f.Add(uint8(0), uint8(0), uint8(3), uint8(2), uint8(0), uint8(3), uint8(1), []byte("0123456789abcdef0123456789abcdef"), int32(1), uint8(2), int32(0))
	f.Add(uint8(9), uint8(0), uint8(1), uint8(2), uint8(2), uint8(1), uint8(4), []byte("abcdefgh"), int32(0), uint8(1), int32(1))
	f.Add(uint8(1), uint8(8), uint8(32), uint8(1), uint8(0), uint8(32), uint8(1), make([]byte, 200), int32(5), uint8(2), int32(-1))
	b := engine.NewBackend(reference.New(), engine.Options{})
	ops := backends.Ops()
	types := []gguf.Type{gguf.TypeF32, gguf.TypeF16, gguf.TypeQ8_0, gguf.TypeQ4_0, gguf.TypeQ8_K, 77}
	f.Fuzz(func(t *testing.T, op, ty, d0, d1, d2, e0, e1 uint8, data []byte, id int32, heads uint8, start int32) {
		mk := func(dims ...uint8) backends.TensorRef {
			var shape []int
			n := 1
			for _, d := range dims {
				if d == 0 {
					break
				}
				shape = append(shape, int(d))
				n *= int(d)
			}
			tt := types[int(ty)%len(types)]
			r := backends.TensorRef{Type: tt, Shape: shape}
			if rb, err := tt.RowBytes(int64(max(1, int(dims[0])))); err == nil && len(shape) > 0 {
				need := int(rb) * n / shape[0]
				if need <= len(data) {
					r.Data = data[:need]
				} else {
					r.Data = data
				}
			} else {
				r.Data = data
			}
			return r
		}
		a := mk(d0, d1, d2)
		c := mk(e0, e1)
		h := int(heads%8) + 1
		req := backends.TensorOpRequest{
			Op:     ops[int(op)%len(ops)],
			Inputs: []backends.TensorRef{a, c, a}[:1+int(op/16)%3],
			Params: backends.OpParams{
				Eps: 1e-5, IDs: []int32{id}, Pos: []int32{id, start}, NDims: int(d0) &^ 1, Base: 10000,
				NHead: h, NHeadKV: int(heads/8%4) + 1, HeadDim: int(d0), StartPos: int(start), Scale: 0,
			},
		}
		_, err := b.TensorOp(context.Background(), req)
		if err != nil && strings.Contains(err.Error(), "kernel panic") {
			t.Fatalf("%+v: %v", req.Params, err)
		}
	})
}

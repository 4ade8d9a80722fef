package engine_test

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/gguf"
	"github.com/realmrt/realm/internal/backend/reference"
)

// f32Ref is an inline f32 operand.
func f32Ref(shape []int, vals ...float32) backends.TensorRef {
	return backends.TensorRef{Type: gguf.TypeF32, Shape: shape, Data: gguf.F32Bytes(vals)}
}

// seq returns n values 0.1, 0.2, ...
func seq(n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(i+1) / 10
	}
	return out
}

func TestTensorOps(t *testing.T) {
	b, mi := newStories(t)
	ctx := context.Background()
	k := reference.New()
	weight := func(name string) backends.TensorRef { return backends.TensorRef{Model: mi.ID, Name: name} }

	// Expected results computed directly with the kernels.
	m := storiesModel(t, k)
	wq, _ := m.Weight("blk.0.attn_q.weight")
	x := seq(128)
	wantQ := make([]float32, 128)
	k.MatMul(wantQ, wq, x, 2)
	wantRows := make([]float32, 128)
	te, _ := m.Weight("token_embd.weight")
	k.GetRows(wantRows, te, []int32{5, 511})
	wantNorm := make([]float32, 128)
	an, _ := m.Weight("blk.0.attn_norm.weight")
	norm := make([]float32, an.Cols)
	for i := range norm {
		norm[i] = math.Float32frombits(binary.LittleEndian.Uint32(an.Data[4*i:]))
	}
	k.RMSNorm(wantNorm, x, norm, 64, 1e-5)

	tests := []struct {
		name      string
		req       backends.TensorOpRequest
		wantShape []int
		want      []float32
	}{
		{"matmul inline", backends.TensorOpRequest{Op: backends.OpMatMul, Inputs: []backends.TensorRef{
			f32Ref([]int{3, 2}, 1, 2, 3, 4, 5, 6), f32Ref([]int{3, 2}, 1, 0, -1, 1, 1, 1)}},
			[]int{2, 2}, []float32{-2, -2, 6, 15}},
		{"matmul 1-D x", backends.TensorOpRequest{Op: backends.OpMatMul, Inputs: []backends.TensorRef{
			f32Ref([]int{3, 1}, 1, 2, 3), f32Ref([]int{3}, 1, 1, 1)}},
			[]int{1, 1}, []float32{6}},
		{"matmul model weight", backends.TensorOpRequest{Op: backends.OpMatMul, Inputs: []backends.TensorRef{
			weight("blk.0.attn_q.weight"), f32Ref([]int{64, 2}, x...)}},
			[]int{64, 2}, wantQ},
		{"get_rows", backends.TensorOpRequest{Op: backends.OpGetRows, Inputs: []backends.TensorRef{weight("token_embd.weight")},
			Params: backends.OpParams{IDs: []int32{5, 511}}},
			[]int{64, 2}, wantRows},
		{"rmsnorm model weight", backends.TensorOpRequest{Op: backends.OpRMSNorm, Inputs: []backends.TensorRef{
			f32Ref([]int{64, 2}, x...), weight("blk.0.attn_norm.weight")}, Params: backends.OpParams{Eps: 1e-5}},
			[]int{64, 2}, wantNorm},
		{"rope", backends.TensorOpRequest{Op: backends.OpRoPE, Inputs: []backends.TensorRef{f32Ref([]int{2, 1, 1}, 1, 0)},
			Params: backends.OpParams{Pos: []int32{1}, NDims: 2, Base: 10000}},
			[]int{2, 1, 1}, []float32{float32(math.Cos(1)), float32(math.Sin(1))}},
		{"softmax", backends.TensorOpRequest{Op: backends.OpSoftmax, Inputs: []backends.TensorRef{f32Ref([]int{2, 2}, 1, 1, 0, float32(math.Log(3)))}},
			[]int{2, 2}, []float32{.5, .5, .25, .75}},
		{"silu", backends.TensorOpRequest{Op: backends.OpSiLU, Inputs: []backends.TensorRef{f32Ref([]int{2}, 0, 1)}},
			[]int{2}, []float32{0, float32(1 / (1 + math.Exp(-1)))}},
		{"silu_mul", backends.TensorOpRequest{Op: backends.OpSiLUMul, Inputs: []backends.TensorRef{f32Ref([]int{2}, 0, 1), f32Ref([]int{2}, 5, 2)}},
			[]int{2}, []float32{0, float32(2 / (1 + math.Exp(-1)))}},
		{"add", backends.TensorOpRequest{Op: backends.OpAdd, Inputs: []backends.TensorRef{f32Ref([]int{3}, 1, 2, 3), f32Ref([]int{3}, 1, 1, -1)}},
			[]int{3}, []float32{2, 3, 2}},
		{"mul", backends.TensorOpRequest{Op: backends.OpMul, Inputs: []backends.TensorRef{f32Ref([]int{3}, 1, 2, 3), f32Ref([]int{3}, 1, 1, -1)}},
			[]int{3}, []float32{1, 2, -3}},
		{"attention", backends.TensorOpRequest{Op: backends.OpAttention, Inputs: []backends.TensorRef{
			f32Ref([]int{1, 1, 1}, 1), f32Ref([]int{1, 1, 2}, 0, float32(math.Ln2)), f32Ref([]int{1, 1, 2}, 3, 6)},
			Params: backends.OpParams{NHead: 1, NHeadKV: 1, HeadDim: 1, StartPos: 1, Scale: 1}},
			[]int{1, 1, 1}, []float32{5}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := b.TensorOp(ctx, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(res.Shape, tc.wantShape) {
				t.Errorf("shape %v, want %v", res.Shape, tc.wantShape)
			}
			if len(res.Data) != len(tc.want) {
				t.Fatalf("%d values, want %d", len(res.Data), len(tc.want))
			}
			for i := range tc.want {
				if math.Abs(float64(res.Data[i]-tc.want[i])) > 1e-6 {
					t.Fatalf("got %v, want %v", res.Data, tc.want)
				}
			}
		})
	}
}

func TestTensorOpErrors(t *testing.T) {
	b, mi := newStories(t)
	ctx := context.Background()
	v2 := f32Ref([]int{2}, 1, 2)
	v3 := f32Ref([]int{3}, 1, 2, 3)
	m23 := f32Ref([]int{3, 2}, 1, 2, 3, 4, 5, 6)
	short := v3
	short.Data = short.Data[:8]
	q8k := backends.TensorRef{Type: gguf.TypeQ8_K, Shape: []int{256}, Data: make([]byte, 292)}
	q := f32Ref([]int{1, 2, 1}, 1, 1)
	kv := f32Ref([]int{1, 1, 2}, 0, 1)
	att := backends.OpParams{NHead: 2, NHeadKV: 1, HeadDim: 1, StartPos: 1}
	in := func(r ...backends.TensorRef) []backends.TensorRef { return r }
	tests := []struct {
		name string
		req  backends.TensorOpRequest
		want error
	}{
		{"unknown op", backends.TensorOpRequest{Op: "conv2d", Inputs: in(v2)}, backends.ErrUnsupported},
		{"too few inputs", backends.TensorOpRequest{Op: backends.OpAdd, Inputs: in(v2)}, backends.ErrInvalidArgument},
		{"too many inputs", backends.TensorOpRequest{Op: backends.OpSoftmax, Inputs: in(v2, v2)}, backends.ErrInvalidArgument},
		{"short data", backends.TensorOpRequest{Op: backends.OpSoftmax, Inputs: in(short)}, backends.ErrInvalidArgument},
		{"no shape", backends.TensorOpRequest{Op: backends.OpSoftmax, Inputs: in(backends.TensorRef{Type: gguf.TypeF32})}, backends.ErrInvalidArgument},
		{"zero dim", backends.TensorOpRequest{Op: backends.OpSoftmax, Inputs: in(backends.TensorRef{Type: gguf.TypeF32, Shape: []int{0}})}, backends.ErrInvalidArgument},
		{"huge shape", backends.TensorOpRequest{Op: backends.OpSoftmax, Inputs: in(backends.TensorRef{Type: gguf.TypeF32, Shape: []int{1 << 20, 1 << 20}})}, backends.ErrInvalidArgument},
		{"5 dims", backends.TensorOpRequest{Op: backends.OpSoftmax, Inputs: in(f32Ref([]int{1, 1, 1, 1, 1}, 1))}, backends.ErrInvalidArgument},
		{"Q8_K", backends.TensorOpRequest{Op: backends.OpSoftmax, Inputs: in(q8k)}, backends.ErrUnsupported},
		{"unknown type", backends.TensorOpRequest{Op: backends.OpSoftmax, Inputs: in(backends.TensorRef{Type: 77, Shape: []int{1}, Data: []byte{0}})}, backends.ErrUnsupported},
		{"Q8_0 partial block", backends.TensorOpRequest{Op: backends.OpSoftmax, Inputs: in(backends.TensorRef{Type: gguf.TypeQ8_0, Shape: []int{16}, Data: make([]byte, 17)})}, backends.ErrInvalidArgument},
		{"unknown model", backends.TensorOpRequest{Op: backends.OpSoftmax, Inputs: in(backends.TensorRef{Model: mi.ID + 9, Name: "output_norm.weight"})}, backends.ErrNotFound},
		{"unknown weight", backends.TensorOpRequest{Op: backends.OpSoftmax, Inputs: in(backends.TensorRef{Model: mi.ID, Name: "nope"})}, backends.ErrNotFound},
		{"name and data", backends.TensorOpRequest{Op: backends.OpSoftmax, Inputs: in(backends.TensorRef{Model: mi.ID, Name: "output_norm.weight", Data: []byte{1}})}, backends.ErrInvalidArgument},
		{"matmul cols", backends.TensorOpRequest{Op: backends.OpMatMul, Inputs: in(m23, v2)}, backends.ErrInvalidArgument},
		{"matmul 1-D weight", backends.TensorOpRequest{Op: backends.OpMatMul, Inputs: in(v3, v3)}, backends.ErrInvalidArgument},
		{"matmul 3-D x", backends.TensorOpRequest{Op: backends.OpMatMul, Inputs: in(m23, f32Ref([]int{3, 1, 1}, 1, 2, 3))}, backends.ErrInvalidArgument},
		{"get_rows no ids", backends.TensorOpRequest{Op: backends.OpGetRows, Inputs: in(m23)}, backends.ErrInvalidArgument},
		{"get_rows id range", backends.TensorOpRequest{Op: backends.OpGetRows, Inputs: in(m23), Params: backends.OpParams{IDs: []int32{2}}}, backends.ErrInvalidArgument},
		{"get_rows negative", backends.TensorOpRequest{Op: backends.OpGetRows, Inputs: in(m23), Params: backends.OpParams{IDs: []int32{-1}}}, backends.ErrInvalidArgument},
		{"rmsnorm weight", backends.TensorOpRequest{Op: backends.OpRMSNorm, Inputs: in(m23, v2)}, backends.ErrInvalidArgument},
		{"rmsnorm eps", backends.TensorOpRequest{Op: backends.OpRMSNorm, Inputs: in(m23, v3), Params: backends.OpParams{Eps: float32(math.NaN())}}, backends.ErrInvalidArgument},
		{"rope pos count", backends.TensorOpRequest{Op: backends.OpRoPE, Inputs: in(f32Ref([]int{2, 1, 1}, 1, 2)), Params: backends.OpParams{Pos: []int32{0, 1}, NDims: 2, Base: 1e4}}, backends.ErrInvalidArgument},
		{"rope 2-D", backends.TensorOpRequest{Op: backends.OpRoPE, Inputs: in(m23), Params: backends.OpParams{Pos: []int32{0, 1}, NDims: 2, Base: 1e4}}, backends.ErrInvalidArgument},
		{"rope odd dims", backends.TensorOpRequest{Op: backends.OpRoPE, Inputs: in(f32Ref([]int{2, 1, 1}, 1, 2)), Params: backends.OpParams{Pos: []int32{0}, NDims: 1, Base: 1e4}}, backends.ErrInvalidArgument},
		{"rope dims > head", backends.TensorOpRequest{Op: backends.OpRoPE, Inputs: in(f32Ref([]int{2, 1, 1}, 1, 2)), Params: backends.OpParams{Pos: []int32{0}, NDims: 4, Base: 1e4}}, backends.ErrInvalidArgument},
		{"rope base", backends.TensorOpRequest{Op: backends.OpRoPE, Inputs: in(f32Ref([]int{2, 1, 1}, 1, 2)), Params: backends.OpParams{Pos: []int32{0}, NDims: 2}}, backends.ErrInvalidArgument},
		{"rope negative pos", backends.TensorOpRequest{Op: backends.OpRoPE, Inputs: in(f32Ref([]int{2, 1, 1}, 1, 2)), Params: backends.OpParams{Pos: []int32{-3}, NDims: 2, Base: 1e4}}, backends.ErrInvalidArgument},
		{"add shapes", backends.TensorOpRequest{Op: backends.OpAdd, Inputs: in(v2, v3)}, backends.ErrInvalidArgument},
		{"mul shapes", backends.TensorOpRequest{Op: backends.OpMul, Inputs: in(m23, f32Ref([]int{2, 3}, 1, 2, 3, 4, 5, 6))}, backends.ErrInvalidArgument},
		{"silu_mul shapes", backends.TensorOpRequest{Op: backends.OpSiLUMul, Inputs: in(v3, v2)}, backends.ErrInvalidArgument},
		{"attention ok", backends.TensorOpRequest{Op: backends.OpAttention, Inputs: in(q, kv, kv), Params: att}, nil},
		{"attention heads", backends.TensorOpRequest{Op: backends.OpAttention, Inputs: in(q, kv, kv), Params: backends.OpParams{NHead: 2, NHeadKV: 3, HeadDim: 1}}, backends.ErrInvalidArgument},
		{"attention zero heads", backends.TensorOpRequest{Op: backends.OpAttention, Inputs: in(q, kv, kv), Params: backends.OpParams{HeadDim: 1}}, backends.ErrInvalidArgument},
		{"attention q shape", backends.TensorOpRequest{Op: backends.OpAttention, Inputs: in(kv, kv, kv), Params: att}, backends.ErrInvalidArgument},
		{"attention start", backends.TensorOpRequest{Op: backends.OpAttention, Inputs: in(q, kv, kv), Params: backends.OpParams{NHead: 2, NHeadKV: 1, HeadDim: 1, StartPos: 2}}, backends.ErrInvalidArgument},
		{"attention v shape", backends.TensorOpRequest{Op: backends.OpAttention, Inputs: in(q, kv, f32Ref([]int{1, 1, 3}, 1, 2, 3)), Params: att}, backends.ErrInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := b.TensorOp(ctx, tc.req)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
}

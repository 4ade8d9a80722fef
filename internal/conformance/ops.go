package conformance

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/gguf"
)

// Tolerances (normalized mean squared error against the reference).
const (
	// LimitDefault bounds ops computed in f32 on both sides.
	LimitDefault = 1e-7
	// LimitQuantized bounds matmuls whose backend may quantize the
	// activations (Q8_0/Q8_K, or f16 for F16/BF16 weights).
	LimitQuantized = 5e-4
	// LimitExact demands bit-identical results.
	LimitExact = 0
)

// OpCase is one tensor-op case.
type OpCase struct {
	Name  string
	Types string
	Shape string
	Limit float64
	Req   backends.TensorOpRequest
}

// WeightTypes are the weight types the op cases exercise: every type a
// model file can store (gguf.WeightTypes; TestWeightTypesComplete keeps
// the two equal), in the order the cases draw their random inputs —
// types added later go last so the inputs of the others stay the same.
func WeightTypes() []gguf.Type {
	return []gguf.Type{gguf.TypeF32, gguf.TypeF16, gguf.TypeBF16,
		gguf.TypeQ4_0, gguf.TypeQ4_1, gguf.TypeQ5_0, gguf.TypeQ5_1, gguf.TypeQ8_0,
		gguf.TypeQ2_K, gguf.TypeQ3_K, gguf.TypeQ4_K, gguf.TypeQ5_K, gguf.TypeQ6_K,
		gguf.TypeIQ4_NL, gguf.TypeIQ4_XS}
}

// OpCases returns every op case, with inputs drawn from a PCG seeded
// with seed (0: a fixed default), so a failure reproduces exactly.
func OpCases(seed uint64) []OpCase {
	if seed == 0 {
		seed = 0x5eed
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var cases []OpCase
	add := func(c OpCase) { cases = append(cases, c) }

	// matmul and get_rows over every weight type and odd shapes: column
	// counts are multiples of the block but not of vector widths, row
	// and batch counts are odd.
	for _, t := range WeightTypes() {
		be := t.BlockElems()
		var colsList []int
		switch be {
		case 1:
			colsList = []int{7, 33, 96, 300}
		case 32:
			colsList = []int{32, 96, 288, 800}
		default:
			colsList = []int{256, 768, 1280, 256}
		}
		shapes := []struct{ cols, rows, batch int }{
			{colsList[0], 1, 1}, {colsList[0], 3, 2}, {colsList[1], 17, 1},
			{colsList[1], 5, 5}, {colsList[2], 33, 7}, {colsList[3], 16, 4},
		}
		limit := LimitQuantized
		if t == gguf.TypeF32 {
			limit = LimitDefault
		}
		for _, s := range shapes {
			w := randomTensor(rng, t, s.cols, s.rows)
			x := randomF32(rng, s.cols*s.batch, 1)
			add(OpCase{
				Name:  fmt.Sprintf("matmul/%s/%dx%dx%d", t, s.rows, s.cols, s.batch),
				Types: t.String() + "×F32", Shape: fmt.Sprintf("w[%d,%d] x[%d,%d]", s.cols, s.rows, s.cols, s.batch),
				Limit: limit,
				Req: backends.TensorOpRequest{Op: backends.OpMatMul, Inputs: []backends.TensorRef{
					{Type: t, Shape: []int{s.cols, s.rows}, Data: w},
					{Type: gguf.TypeF32, Shape: []int{s.cols, s.batch}, Data: gguf.F32Bytes(x)},
				}},
			})
		}
		for _, s := range shapes[:3] {
			w := randomTensor(rng, t, s.cols, s.rows+2)
			ids := make([]int32, 2+s.batch)
			for i := range ids {
				ids[i] = int32(rng.IntN(s.rows + 2))
			}
			add(OpCase{
				Name:  fmt.Sprintf("get_rows/%s/%dx%d/%d", t, s.rows+2, s.cols, len(ids)),
				Types: t.String(), Shape: fmt.Sprintf("w[%d,%d] ids[%d]", s.cols, s.rows+2, len(ids)),
				Limit: LimitExact,
				Req: backends.TensorOpRequest{Op: backends.OpGetRows,
					Inputs: []backends.TensorRef{{Type: t, Shape: []int{s.cols, s.rows + 2}, Data: w}},
					Params: backends.OpParams{IDs: ids}},
			})
		}
	}

	// Element-wise and row ops on odd sizes.
	for _, s := range []struct{ n, rows int }{{1, 1}, {7, 3}, {64, 2}, {65, 1}, {300, 4}, {2048, 1}} {
		shape := fmt.Sprintf("[%d,%d]", s.n, s.rows)
		x := randomF32(rng, s.n*s.rows, 3)
		wt := randomF32(rng, s.n, 1)
		for _, eps := range []float32{1e-5, 1e-6} {
			add(OpCase{Name: fmt.Sprintf("rmsnorm/%dx%d/eps=%g", s.n, s.rows, eps), Types: "F32", Shape: shape, Limit: LimitDefault,
				Req: backends.TensorOpRequest{Op: backends.OpRMSNorm, Inputs: []backends.TensorRef{
					f32Ref(x, s.n, s.rows), f32Ref(wt, s.n)}, Params: backends.OpParams{Eps: eps}}})
		}
		add(OpCase{Name: fmt.Sprintf("softmax/%dx%d", s.n, s.rows), Types: "F32", Shape: shape, Limit: LimitDefault,
			Req: backends.TensorOpRequest{Op: backends.OpSoftmax, Inputs: []backends.TensorRef{f32Ref(x, s.n, s.rows)}}})
		y := randomF32(rng, s.n*s.rows, 3)
		for _, op := range []string{backends.OpAdd, backends.OpMul, backends.OpSiLUMul} {
			add(OpCase{Name: fmt.Sprintf("%s/%dx%d", op, s.n, s.rows), Types: "F32", Shape: shape, Limit: LimitDefault,
				Req: backends.TensorOpRequest{Op: op, Inputs: []backends.TensorRef{f32Ref(x, s.n, s.rows), f32Ref(y, s.n, s.rows)}}})
		}
		add(OpCase{Name: fmt.Sprintf("silu/%dx%d", s.n, s.rows), Types: "F32", Shape: shape, Limit: LimitDefault,
			Req: backends.TensorOpRequest{Op: backends.OpSiLU, Inputs: []backends.TensorRef{f32Ref(x, s.n, s.rows)}}})
	}
	// Softmax with masked (−inf) entries and large magnitudes, as
	// attention produces them; add with infinities (signs must match).
	{
		x := randomF32(rng, 3*40, 60)
		for i := 0; i < len(x); i += 3 {
			x[i] = float32(math.Inf(-1))
		}
		add(OpCase{Name: "softmax/masked/40x3", Types: "F32", Shape: "[40,3]", Limit: LimitDefault,
			Req: backends.TensorOpRequest{Op: backends.OpSoftmax, Inputs: []backends.TensorRef{f32Ref(x, 40, 3)}}})
		a, b := randomF32(rng, 37, 1), randomF32(rng, 37, 1)
		a[3], a[20], b[30] = float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.Inf(1))
		add(OpCase{Name: "add/inf/37", Types: "F32", Shape: "[37]", Limit: LimitDefault,
			Req: backends.TensorOpRequest{Op: backends.OpAdd, Inputs: []backends.TensorRef{f32Ref(a, 37), f32Ref(b, 37)}}})
	}

	// RoPE: full and partial rotation, several bases, positions far out.
	for _, s := range []struct {
		headDim, nHeads, nDims int
		base                   float32
		pos                    []int32
	}{
		{8, 1, 8, 10000, []int32{0}},
		{8, 8, 8, 10000, []int32{0, 1, 2, 3, 4}},
		{64, 4, 64, 10000, []int32{7, 100, 2047}},
		{64, 3, 32, 10000, []int32{5, 6}},
		{96, 2, 96, 500000, []int32{0, 4095, 65535}},
		{128, 2, 128, 1e6, []int32{12345}},
	} {
		x := randomF32(rng, s.headDim*s.nHeads*len(s.pos), 1)
		add(OpCase{
			Name:  fmt.Sprintf("rope/d%d/h%d/nd%d/base%g/p%d", s.headDim, s.nHeads, s.nDims, s.base, len(s.pos)),
			Types: "F32", Shape: fmt.Sprintf("[%d,%d,%d]", s.headDim, s.nHeads, len(s.pos)), Limit: LimitDefault,
			Req: backends.TensorOpRequest{Op: backends.OpRoPE,
				Inputs: []backends.TensorRef{f32Ref(x, s.headDim, s.nHeads, len(s.pos))},
				Params: backends.OpParams{Pos: s.pos, NDims: s.nDims, Base: s.base}},
		})
	}

	// Attention: GQA ratios, odd head sizes, prefill and decode, with
	// NaN in the cache rows a causal kernel must not read.
	for _, s := range []struct{ nHead, nHeadKV, headDim, batch, start int }{
		{8, 4, 8, 1, 0}, {8, 4, 8, 5, 0}, {8, 4, 8, 1, 9},
		{4, 4, 64, 3, 5}, {6, 2, 33, 2, 17}, {32, 4, 64, 1, 130},
	} {
		ctx := s.start + s.batch + 3
		q := randomF32(rng, s.headDim*s.nHead*s.batch, 1)
		k := randomF32(rng, s.headDim*s.nHeadKV*ctx, 1)
		v := randomF32(rng, s.headDim*s.nHeadKV*ctx, 1)
		for i := (s.start + s.batch) * s.headDim * s.nHeadKV; i < len(k); i++ {
			k[i], v[i] = float32(math.NaN()), float32(math.NaN())
		}
		add(OpCase{
			Name:  fmt.Sprintf("attention/h%d/kv%d/d%d/b%d/p%d", s.nHead, s.nHeadKV, s.headDim, s.batch, s.start),
			Types: "F32", Shape: fmt.Sprintf("q[%d,%d,%d] kv[%d,%d,%d]", s.headDim, s.nHead, s.batch, s.headDim, s.nHeadKV, ctx),
			Limit: LimitDefault,
			Req: backends.TensorOpRequest{Op: backends.OpAttention,
				Inputs: []backends.TensorRef{
					f32Ref(q, s.headDim, s.nHead, s.batch),
					f32Ref(k, s.headDim, s.nHeadKV, ctx),
					f32Ref(v, s.headDim, s.nHeadKV, ctx),
				},
				Params: backends.OpParams{NHead: s.nHead, NHeadKV: s.nHeadKV, HeadDim: s.headDim, StartPos: s.start,
					Scale: float32(1 / math.Sqrt(float64(s.headDim)))}},
		})
	}
	return cases
}

// randomF32 returns n values uniform in (−scale, scale).
func randomF32(rng *rand.Rand, n int, scale float64) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32((rng.Float64()*2 - 1) * scale)
	}
	return out
}

func f32Ref(x []float32, shape ...int) backends.TensorRef {
	return backends.TensorRef{Type: gguf.TypeF32, Shape: shape, Data: gguf.F32Bytes(x)}
}

// randomTensor returns rows×cols elements of type t: random bit patterns
// for the quants (every code appears) with block scales set to small,
// finite, positive f16 values so the weights stay in a realistic range.
func randomTensor(rng *rand.Rand, t gguf.Type, cols, rows int) []byte {
	rb, err := t.RowBytes(int64(cols))
	if err != nil {
		panic(fmt.Sprintf("conformance: bad case %v cols %d: %v", t, cols, err))
	}
	b := make([]byte, int(rb)*rows)
	switch t {
	case gguf.TypeF32:
		copy(b, gguf.F32Bytes(randomF32(rng, cols*rows, 1)))
		return b
	case gguf.TypeF16:
		for i := 0; i < cols*rows; i++ {
			binary.LittleEndian.PutUint16(b[2*i:], gguf.F32ToF16(float32(rng.Float64()*2-1)))
		}
		return b
	case gguf.TypeBF16:
		for i := 0; i < cols*rows; i++ {
			binary.LittleEndian.PutUint16(b[2*i:], uint16(math.Float32bits(float32(rng.Float64()*2-1))>>16))
		}
		return b
	}
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	bb := t.BlockBytes()
	scale := func(off int, lo, hi float64) {
		for blk := 0; blk+bb <= len(b); blk += bb {
			v := lo + rng.Float64()*(hi-lo)
			binary.LittleEndian.PutUint16(b[blk+off:], gguf.F32ToF16(float32(v)))
		}
	}
	// Offsets of the f16 scale fields (FORMATS.md).
	switch t {
	case gguf.TypeQ4_0, gguf.TypeQ5_0, gguf.TypeQ8_0:
		scale(0, 0.001, 0.05)
	case gguf.TypeQ4_1, gguf.TypeQ5_1:
		scale(0, 0.001, 0.05)
		scale(2, -0.2, 0.2)
	case gguf.TypeQ2_K:
		scale(80, 0.001, 0.05)
		scale(82, 0.001, 0.05)
	case gguf.TypeQ3_K:
		scale(108, 0.001, 0.05)
	case gguf.TypeQ4_K, gguf.TypeQ5_K:
		scale(0, 0.0005, 0.01)
		scale(2, 0.0005, 0.01)
	case gguf.TypeQ6_K:
		scale(208, 0.0005, 0.01)
	case gguf.TypeIQ4_NL:
		// Grid values reach ±127.
		scale(0, 0.0001, 0.004)
	case gguf.TypeIQ4_XS:
		// Grid values times 6-bit sub-block scales reach 127·32.
		scale(0, 0.000005, 0.0001)
	default:
		panic(fmt.Sprintf("conformance: no random generator for %v", t))
	}
	return b
}

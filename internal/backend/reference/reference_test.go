package reference

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/realmrt/realm/gguf"
	"github.com/realmrt/realm/internal/engine"
)

// f32Weight builds an F32 weight of rows×cols from row-major values.
func f32Weight(rows, cols int, vals ...float32) *engine.Weight {
	b := make([]byte, 4*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return &engine.Weight{Name: "w", Type: gguf.TypeF32, Rows: rows, Cols: cols, Data: b}
}

// close32 reports whether a and b agree to a relative/absolute tol.
func close32(a, b []float32, tol float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Abs(float64(a[i])-float64(b[i])) > tol*(1+math.Abs(float64(b[i]))) {
			return false
		}
	}
	return true
}

func TestMatMul(t *testing.T) {
	tests := []struct {
		name  string
		w     *engine.Weight
		x     []float32
		batch int
		want  []float32
	}{
		{"1x1", f32Weight(1, 1, 3), []float32{2}, 1, []float32{6}},
		{"2x3 batch 1", f32Weight(2, 3, 1, 2, 3, 4, 5, 6), []float32{1, 0, -1}, 1, []float32{-2, -2}},
		{"2x3 batch 2", f32Weight(2, 3, 1, 2, 3, 4, 5, 6), []float32{1, 0, -1, 1, 1, 1}, 2, []float32{-2, -2, 6, 15}},
		{"3x5 odd", f32Weight(3, 5, 1, 1, 1, 1, 1, 0, 1, 0, 1, 0, -1, 2, -3, 4, -5), []float32{1, 2, 3, 4, 5}, 1, []float32{15, 6, -15}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := make([]float32, tc.w.Rows*tc.batch)
			New().MatMul(out, tc.w, tc.x, tc.batch)
			if !close32(out, tc.want, 0) {
				t.Errorf("got %v, want %v", out, tc.want)
			}
		})
	}
}

func TestMatMulAccumulation(t *testing.T) {
	// 1e8 + 1 - 1e8 is 0 in float32 sequential accumulation, 1 in float64.
	w := f32Weight(1, 3, 1e8, 1, -1e8)
	out := make([]float32, 1)
	New().MatMul(out, w, []float32{1, 1, 1}, 1)
	if out[0] != 1 {
		t.Errorf("got %v, want 1 (float64 accumulation)", out[0])
	}
}

func TestGetRows(t *testing.T) {
	w := f32Weight(3, 2, 1, 2, 3, 4, 5, 6)
	out := make([]float32, 6)
	New().GetRows(out, w, []int32{2, 0, 2})
	want := []float32{5, 6, 1, 2, 5, 6}
	if !close32(out, want, 0) {
		t.Errorf("got %v, want %v", out, want)
	}
}

func TestRMSNorm(t *testing.T) {
	tests := []struct {
		name      string
		x, weight []float32
		n         int
		eps       float32
		want      []float32
	}{
		// mean(9,16)=12.5 → 1/sqrt(12.5)
		{"one row", []float32{3, 4}, []float32{1, 1}, 2, 0, []float32{3 / float32(math.Sqrt(12.5)), 4 / float32(math.Sqrt(12.5))}},
		{"weight", []float32{2, 2, 2}, []float32{1, 2, -1}, 3, 0, []float32{1, 2, -1}},
		// eps: mean(1)=1, +3 → 1/2
		{"eps", []float32{1, -1}, []float32{1, 1}, 2, 3, []float32{0.5, -0.5}},
		{"two rows odd", []float32{1, 1, 1, 0, 0, 3}, []float32{1, 1, 1}, 3, 0, []float32{1, 1, 1, 0, 0, float32(math.Sqrt(3))}},
		{"zero", []float32{0, 0}, []float32{1, 1}, 2, 1e-5, []float32{0, 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := make([]float32, len(tc.x))
			New().RMSNorm(out, tc.x, tc.weight, tc.n, tc.eps)
			if !close32(out, tc.want, 1e-6) {
				t.Errorf("got %v, want %v", out, tc.want)
			}
		})
	}
}

func TestRoPE(t *testing.T) {
	c1, s1 := float32(math.Cos(1)), float32(math.Sin(1))
	// second pair of a 4-dim rotation: theta = pos·10000^(-2/4) = pos/100
	c2, s2 := float32(math.Cos(0.01)), float32(math.Sin(0.01))
	tests := []struct {
		name                  string
		x                     []float32
		pos                   []int32
		nHeads, headDim, dims int
		want                  []float32
	}{
		{"pos 0 identity", []float32{1, 2, 3, 4}, []int32{0}, 1, 4, 4, []float32{1, 2, 3, 4}},
		{"pos 1 pair", []float32{1, 0}, []int32{1}, 1, 2, 2, []float32{c1, s1}},
		{"pos 1 four", []float32{1, 0, 0, 1}, []int32{1}, 1, 4, 4, []float32{c1, s1, -s2, c2}},
		// only the first 2 of 4 dims rotate
		{"partial", []float32{0, 1, 5, 6}, []int32{1}, 1, 4, 2, []float32{-s1, c1, 5, 6}},
		{"two heads two rows", []float32{1, 0, 0, 1, 1, 0, 0, 1}, []int32{0, 1}, 2, 2, 2,
			[]float32{1, 0, 0, 1, c1, s1, -s1, c1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := append([]float32(nil), tc.x...)
			New().RoPE(x, tc.pos, tc.nHeads, tc.headDim, tc.dims, 10000)
			if !close32(x, tc.want, 1e-7) {
				t.Errorf("got %v, want %v", x, tc.want)
			}
		})
	}
}

func TestSoftmax(t *testing.T) {
	e := math.E
	inf := float32(math.Inf(-1))
	tests := []struct {
		name string
		x    []float32
		n    int
		want []float32
	}{
		{"uniform", []float32{3, 3}, 2, []float32{.5, .5}},
		{"two", []float32{0, 1}, 2, []float32{float32(1 / (1 + e)), float32(e / (1 + e))}},
		{"large", []float32{1000, 1000, 1000, 1000}, 4, []float32{.25, .25, .25, .25}},
		{"masked", []float32{inf, 2, inf}, 3, []float32{0, 1, 0}},
		{"rows odd", []float32{1, 1, 1, 0, 0, 0}, 3, []float32{1. / 3, 1. / 3, 1. / 3, 1. / 3, 1. / 3, 1. / 3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := append([]float32(nil), tc.x...)
			New().Softmax(x, tc.n)
			if !close32(x, tc.want, 1e-7) {
				t.Errorf("got %v, want %v", x, tc.want)
			}
		})
	}
}

func TestElementwise(t *testing.T) {
	k := New()
	a := []float32{1, -2, 3}
	b := []float32{4, 5, -6}
	out := make([]float32, 3)
	k.Add(out, a, b)
	if !close32(out, []float32{5, 3, -3}, 0) {
		t.Errorf("Add = %v", out)
	}
	k.Mul(out, a, b)
	if !close32(out, []float32{4, -10, -18}, 0) {
		t.Errorf("Mul = %v", out)
	}
	// silu(0)=0, silu(1)=1/(1+1/e), silu(-1)=-1/(1+e)
	k.SiLUMul(out, []float32{0, 1, -1}, []float32{7, 2, 3})
	want := []float32{0, float32(2 / (1 + 1/math.E)), float32(-3 / (1 + math.E))}
	if !close32(out, want, 1e-7) {
		t.Errorf("SiLUMul = %v, want %v", out, want)
	}
}

func TestAttention(t *testing.T) {
	// HeadDim 1, one kv head, two query heads sharing it.
	// keys 0,ln2 → with q=1, scale 1: weights 1/3, 2/3.
	ln2 := float32(math.Ln2)
	tests := []struct {
		name    string
		q, k, v []float32
		p       engine.AttentionParams
		want    []float32
	}{
		{"single", []float32{5}, []float32{1}, []float32{7}, engine.AttentionParams{NHead: 1, NHeadKV: 1, HeadDim: 1, Batch: 1, Scale: 1}, []float32{7}},
		{"two keys", []float32{1}, []float32{0, ln2}, []float32{3, 6}, engine.AttentionParams{NHead: 1, NHeadKV: 1, HeadDim: 1, Batch: 1, StartPos: 1, Scale: 1}, []float32{5}},
		{"causal batch", []float32{1, 1}, []float32{0, ln2}, []float32{3, 6}, engine.AttentionParams{NHead: 1, NHeadKV: 1, HeadDim: 1, Batch: 2, Scale: 1}, []float32{3, 5}},
		{"gqa", []float32{1, 0}, []float32{0, ln2}, []float32{3, 6}, engine.AttentionParams{NHead: 2, NHeadKV: 1, HeadDim: 1, Batch: 1, StartPos: 1, Scale: 1}, []float32{5, 4.5}},
		// two kv heads, head h uses kv head h: head 1 sees keys (0, 0) → mean of values
		{"kv heads", []float32{1, 1}, []float32{0, 0, ln2, 0}, []float32{3, 10, 6, 20}, engine.AttentionParams{NHead: 2, NHeadKV: 2, HeadDim: 1, Batch: 1, StartPos: 1, Scale: 1}, []float32{5, 15}},
		// scale halves the scores: weights ∝ 1, 2^(1/2)·... use q=2, scale .5
		{"scale", []float32{2}, []float32{0, ln2}, []float32{3, 6}, engine.AttentionParams{NHead: 1, NHeadKV: 1, HeadDim: 1, Batch: 1, StartPos: 1, Scale: 0.5}, []float32{5}},
		// head dim 2: dot products
		{"dim 2", []float32{1, 1}, []float32{0, 0, ln2, 0}, []float32{3, 30, 6, 60}, engine.AttentionParams{NHead: 1, NHeadKV: 1, HeadDim: 2, Batch: 1, StartPos: 1, Scale: 1}, []float32{5, 50}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := make([]float32, len(tc.q))
			New().Attention(out, tc.q, tc.k, tc.v, tc.p)
			if !close32(out, tc.want, 1e-6) {
				t.Errorf("got %v, want %v", out, tc.want)
			}
		})
	}
}

func TestMatMulQuantized(t *testing.T) {
	// One 32-element row per type; x = 1 everywhere except x[0] = 2.
	x := make([]float32, 32)
	for i := range x {
		x[i] = 1
	}
	x[0] = 2
	half := func(v float32) [2]byte {
		var b [2]byte
		binary.LittleEndian.PutUint16(b[:], gguf.F32ToF16(v))
		return b
	}
	// Q8_0: d = 0.5, q[j] = j-16 → w[j] = (j-16)/2.
	q8 := make([]byte, 34)
	d := half(0.5)
	copy(q8, d[:])
	var want8 float64
	for j := 0; j < 32; j++ {
		q8[2+j] = byte(int8(j - 16))
		want8 += float64(j-16) / 2 * float64(x[j])
	}
	// Q4_0: d = 0.25; byte j holds element j (low) and j+16 (high);
	// element value = d·(nibble−8). Low nibble j%16, high nibble 15−j%16.
	q4 := make([]byte, 18)
	d = half(0.25)
	copy(q4, d[:])
	var want4 float64
	for j := 0; j < 16; j++ {
		lo, hi := j, 15-j
		q4[2+j] = byte(lo | hi<<4)
		want4 += 0.25 * float64(lo-8) * float64(x[j])
		want4 += 0.25 * float64(hi-8) * float64(x[j+16])
	}
	// F16: w[j] = j/8 (exact in f16).
	f16 := make([]byte, 64)
	var want16 float64
	for j := 0; j < 32; j++ {
		h := half(float32(j) / 8)
		copy(f16[2*j:], h[:])
		want16 += float64(j) / 8 * float64(x[j])
	}
	tests := []struct {
		name string
		w    *engine.Weight
		want float64
	}{
		{"Q8_0", &engine.Weight{Type: gguf.TypeQ8_0, Rows: 1, Cols: 32, Data: q8}, want8},
		{"Q4_0", &engine.Weight{Type: gguf.TypeQ4_0, Rows: 1, Cols: 32, Data: q4}, want4},
		{"F16", &engine.Weight{Type: gguf.TypeF16, Rows: 1, Cols: 32, Data: f16}, want16},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := make([]float32, 2)
			// batch 2: the second row of x is all ones except x[0] = 2 too.
			New().MatMul(out, tc.w, append(append([]float32(nil), x...), x...), 2)
			if out[0] != float32(tc.want) || out[1] != float32(tc.want) {
				t.Errorf("got %v, want %v", out, tc.want)
			}
			rows := make([]float32, 32)
			New().GetRows(rows, tc.w, []int32{0})
			if got := dot(rows, x); got != float32(tc.want) {
				t.Errorf("GetRows row · x = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestTypes(t *testing.T) {
	types := Kernels{}.Types()
	has := map[gguf.Type]bool{}
	for _, ty := range types {
		has[ty] = true
	}
	for _, ty := range []gguf.Type{gguf.TypeF32, gguf.TypeF16, gguf.TypeBF16, gguf.TypeQ4_0, gguf.TypeQ8_0, gguf.TypeQ4_K, gguf.TypeQ6_K} {
		if !has[ty] {
			t.Errorf("Types() = %v lacks %v", types, ty)
		}
	}
	if has[gguf.TypeQ8_K] {
		t.Errorf("Types() lists Q8_K")
	}
}

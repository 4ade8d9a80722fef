//go:build amd64

package cpuavx2

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/realmrt/realm/gguf"
	"github.com/realmrt/realm/internal/backend/reference"
	"github.com/realmrt/realm/internal/engine"
	"github.com/realmrt/realm/internal/refdata"
)

// variants returns the kernel variants this CPU can run: AVX2 always,
// VNNI (AVX-512) and AMX tiles where available.
func variants(t testing.TB, threads int) map[string]*Kernels {
	t.Helper()
	if !Supported() {
		t.Fatalf("CPU lacks AVX2/FMA/F16C")
	}
	out := map[string]*Kernels{}
	for _, v := range []struct {
		name string
		off  bool
		amx  bool
	}{{"avx2", true, false}, {"vnni", false, false}, {"amx", false, true}} {
		ki, err := NewWithOptions(Options{Threads: threads, DisableVNNI: v.off, DisableAMX: !v.amx})
		if err != nil {
			t.Fatal(err)
		}
		k := ki.(*Kernels)
		t.Cleanup(func() { k.Close() })
		if (v.name == "vnni" && !k.UsesVNNI()) || (v.amx && !k.UsesAMX()) {
			continue
		}
		out[v.name] = k
	}
	return out
}

func putF16(b []byte, f float32) { binary.LittleEndian.PutUint16(b, gguf.F32ToF16(f)) }

// randWeight builds a rows×cols weight of type t with random blocks:
// random quant bytes and small positive f16 scales.
func randWeight(rng *rand.Rand, t gguf.Type, rows, cols int) *engine.Weight {
	rb, err := t.RowBytes(int64(cols))
	if err != nil {
		panic(err)
	}
	data := make([]byte, int(rb)*rows)
	for i := range data {
		data[i] = byte(rng.UintN(256))
	}
	scale := func() float32 { return 0.002 + 0.02*rng.Float32() }
	bb := t.BlockBytes()
	for off := 0; off < len(data); off += bb {
		blk := data[off : off+bb]
		switch t {
		case gguf.TypeF32:
			binary.LittleEndian.PutUint32(blk, math.Float32bits(float32(rng.NormFloat64())))
		case gguf.TypeF16, gguf.TypeBF16:
			v := float32(rng.NormFloat64())
			if t == gguf.TypeF16 {
				putF16(blk, v)
			} else {
				binary.LittleEndian.PutUint16(blk, uint16(math.Float32bits(v)>>16))
			}
		case gguf.TypeQ4_0, gguf.TypeQ8_0, gguf.TypeQ5_0:
			putF16(blk, scale())
		case gguf.TypeQ4_1, gguf.TypeQ5_1:
			putF16(blk, scale())
			putF16(blk[2:], -8*scale())
		case gguf.TypeQ4_K, gguf.TypeQ5_K:
			putF16(blk, scale()/8)
			putF16(blk[2:], scale()/8)
		case gguf.TypeQ6_K:
			putF16(blk[208:], scale()/16)
		case gguf.TypeIQ4_NL:
			putF16(blk, scale()/16)
		case gguf.TypeIQ4_XS:
			putF16(blk, scale()/256)
		}
	}
	return &engine.Weight{Name: t.String(), Type: t, Rows: rows, Cols: cols, Data: data}
}

func randVec(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

func TestMatMul(t *testing.T) {
	ref := reference.New()
	ks := variants(t, 2)
	rng := rand.New(rand.NewPCG(1, 2))
	types := []struct {
		t    gguf.Type
		tol  float64
		cols []int
	}{
		{gguf.TypeF32, 1e-7, []int{1, 7, 32, 96, 2816}},
		{gguf.TypeF16, 5e-4, []int{1, 7, 32, 96, 2816}},
		{gguf.TypeQ4_0, 5e-4, []int{32, 96, 256, 768, 2816}},
		{gguf.TypeQ8_0, 5e-4, []int{32, 96, 256, 768, 2816}},
		{gguf.TypeQ4_K, 5e-4, []int{256, 768, 2816}},
		{gguf.TypeQ6_K, 5e-4, []int{256, 768, 2816}},
		{gguf.TypeQ4_1, 1e-7, []int{32, 96}},
		{gguf.TypeQ5_0, 1e-7, []int{32, 96}},
		{gguf.TypeQ5_1, 1e-7, []int{32, 96}},
		// Q5_K's random blocks have large mins relative to the scales,
		// so Q8_K activation rounding shows more than for Q4_K (the
		// integer arithmetic itself is checked exactly below).
		{gguf.TypeQ5_K, 1e-3, []int{256, 768, 2816}},
		{gguf.TypeIQ4_NL, 5e-4, []int{32, 96, 256, 768, 2816}},
		{gguf.TypeIQ4_XS, 5e-4, []int{256, 768, 2816}},
		{gguf.TypeBF16, 1e-7, []int{7, 96}},
	}
	for _, tc := range types {
		for _, cols := range tc.cols {
			// A single output near zero has a large relative error by
			// chance, so small cases are also judged together.
			all := map[string][2][]float32{}
			for _, rows := range []int{1, 3, 17, 33} {
				w := randWeight(rng, tc.t, rows, cols)
				for _, batch := range []int{1, 2, 5, 7} {
					x := randVec(rng, batch*cols)
					want := make([]float32, batch*rows)
					ref.MatMul(want, w, x, batch)
					for name, k := range ks {
						got := make([]float32, batch*rows+1)
						got[batch*rows] = 42
						k.MatMul(got, w, x, batch)
						if got[batch*rows] != 42 {
							t.Fatalf("%s %v: wrote past the output", name, tc.t)
						}
						acc := all[name]
						all[name] = [2][]float32{append(acc[0], got[:batch*rows]...), append(acc[1], want...)}
						if batch*rows < 16 {
							continue
						}
						if e := refdata.NMSE(got[:batch*rows], want); !(e <= tc.tol) {
							t.Errorf("%s %v rows=%d cols=%d batch=%d: NMSE %.3g > %g", name, tc.t, rows, cols, batch, e, tc.tol)
						}
					}
				}
			}
			for name, gw := range all {
				if e := refdata.NMSE(gw[0], gw[1]); !(e <= tc.tol) {
					t.Errorf("%s %v cols=%d, all shapes: NMSE %.3g > %g", name, tc.t, cols, e, tc.tol)
				}
			}
		}
	}
}

// TestMatMulLargeBatch covers the tiled paths across several row chunks
// and both threads, including the AMX tiles (rows a multiple of 16,
// batches of ≥ 16 with and without a remainder, odd block counts).
func TestMatMulLargeBatch(t *testing.T) {
	ref := reference.New()
	ks := variants(t, 2)
	rng := rand.New(rand.NewPCG(3, 4))
	for _, c := range []struct {
		typ               gguf.Type
		rows, cols, batch int
	}{
		{gguf.TypeQ4_0, 67, 512, 13},
		{gguf.TypeQ8_0, 67, 512, 13},
		{gguf.TypeQ4_K, 67, 512, 13},
		{gguf.TypeQ6_K, 67, 512, 13},
		{gguf.TypeF16, 67, 512, 13},
		{gguf.TypeQ8_0, 48, 96, 37},
		{gguf.TypeQ8_0, 32, 2816, 16},
		{gguf.TypeQ8_0, 64, 512, 40},
		{gguf.TypeQ4_0, 48, 96, 37},
		{gguf.TypeQ4_0, 32, 2816, 16},
		{gguf.TypeQ4_K, 48, 768, 37},
		{gguf.TypeQ4_K, 32, 2816, 16},
		{gguf.TypeQ5_K, 67, 512, 13},
		{gguf.TypeIQ4_NL, 67, 512, 13},
		{gguf.TypeIQ4_XS, 67, 512, 13},
		{gguf.TypeIQ4_XS, 48, 768, 37},
		{gguf.TypeIQ4_NL, 48, 768, 37},
		{gguf.TypeIQ4_NL, 32, 2816, 16},
		{gguf.TypeIQ4_NL, 16, 288, 9},
		{gguf.TypeIQ4_XS, 32, 2816, 16},
		{gguf.TypeQ6_K, 32, 512, 20},
	} {
		typ, rows, cols, batch := c.typ, c.rows, c.cols, c.batch
		w := randWeight(rng, typ, rows, cols)
		x := randVec(rng, batch*cols)
		want := make([]float32, batch*rows)
		ref.MatMul(want, w, x, batch)
		for name, k := range ks {
			got := make([]float32, batch*rows)
			k.MatMul(got, w, x, batch)
			if e := refdata.NMSE(got, want); !(e <= 5e-4) {
				t.Errorf("%s %v %d×%d batch %d: NMSE %.3g", name, typ, rows, cols, batch, e)
			}
		}
	}
}

// TestQuantizedActivationsMatchScalar checks the assembly integer dot
// products exactly (up to f32 summation order) against a scalar model of
// the same arithmetic: dequantized weights times dequantized
// activations, in float64.
func TestQuantizedActivationsMatchScalar(t *testing.T) {
	ks := variants(t, 1)
	rng := rand.New(rand.NewPCG(5, 6))
	for _, c := range []struct {
		typ   gguf.Type
		batch int
	}{{gguf.TypeQ4_0, 6}, {gguf.TypeQ4_0, 13}, {gguf.TypeQ8_0, 6}, {gguf.TypeQ8_0, 13}, {gguf.TypeQ4_K, 6}, {gguf.TypeQ4_K, 13}, {gguf.TypeQ6_K, 6},
		{gguf.TypeQ5_K, 3}, {gguf.TypeQ5_K, 6}, {gguf.TypeIQ4_NL, 6}, {gguf.TypeIQ4_XS, 6},
		{gguf.TypeIQ4_XS, 8}, {gguf.TypeIQ4_XS, 21}, {gguf.TypeIQ4_NL, 8}, {gguf.TypeIQ4_NL, 21}} {
		typ, batch := c.typ, c.batch
		cols, rows := 768, 5
		w := randWeight(rng, typ, rows, cols)
		x := randVec(rng, batch*cols)
		// scalar model
		xq := make([]float32, batch*cols)
		if typ == gguf.TypeQ4_0 || typ == gguf.TypeQ8_0 || typ == gguf.TypeIQ4_NL {
			var a q8Acts
			a.reset(cols, batch)
			for b := 0; b < batch; b++ {
				a.quantizeRow(b, x[b*cols:(b+1)*cols])
			}
			for i := range xq {
				xq[i] = float32(a.qs[i]) * a.d[i/32]
			}
		} else {
			var a q8KActs
			a.reset(cols, batch)
			for b := 0; b < batch; b++ {
				a.quantizeRow(b, x[b*cols:(b+1)*cols])
			}
			for i := range xq {
				xq[i] = float32(a.qs[i]) * a.d[i/256]
			}
		}
		want := make([]float32, batch*rows)
		reference.New().MatMul(want, w, xq, batch)
		for name, k := range ks {
			got := make([]float32, batch*rows)
			k.MatMul(got, w, x, batch)
			if e := refdata.NMSE(got, want); !(e <= 1e-9) {
				t.Errorf("%s %v batch %d: NMSE vs scalar model %.3g", name, typ, batch, e)
			}
		}
	}
}

func TestGetRows(t *testing.T) {
	ref := reference.New()
	ks := variants(t, 2)
	rng := rand.New(rand.NewPCG(7, 8))
	for _, typ := range gguf.WeightTypes() {
		cols := 256
		w := randWeight(rng, typ, 9, cols)
		ids := []int32{0, 8, 3, 3}
		want := make([]float32, len(ids)*cols)
		ref.GetRows(want, w, ids)
		for name, k := range ks {
			got := make([]float32, len(ids)*cols)
			k.GetRows(got, w, ids)
			if e := refdata.NMSE(got, want); e != 0 {
				t.Errorf("%s %v: NMSE %.3g, want exact", name, typ, e)
			}
		}
	}
}

func checkClose(t *testing.T, what string, got, want []float32, tol float64) {
	t.Helper()
	if e := refdata.NMSE(got, want); !(e <= tol) {
		t.Errorf("%s: NMSE %.3g > %g", what, e, tol)
	}
}

func TestElementwise(t *testing.T) {
	ref := reference.New()
	ks := variants(t, 2)
	rng := rand.New(rand.NewPCG(9, 10))
	for _, n := range []int{1, 7, 8, 33, 100, 2048, 40000} {
		a, b := randVec(rng, n), randVec(rng, n)
		for i := range a {
			a[i] *= 4 // exercise the exp range
		}
		for name, k := range ks {
			tag := fmt.Sprintf("%s n=%d", name, n)
			want, got := make([]float32, n), make([]float32, n)
			ref.Add(want, a, b)
			k.Add(got, a, b)
			checkClose(t, tag+" add", got, want, 0)
			ref.Mul(want, a, b)
			k.Mul(got, a, b)
			checkClose(t, tag+" mul", got, want, 0)
			ref.SiLUMul(want, a, b)
			k.SiLUMul(got, a, b)
			checkClose(t, tag+" silu_mul", got, want, 1e-7)
		}
	}
}

func TestRows(t *testing.T) {
	ref := reference.New()
	ks := variants(t, 2)
	rng := rand.New(rand.NewPCG(11, 12))
	for _, n := range []int{1, 7, 33, 100, 2048} {
		for _, rows := range []int{1, 3, 17} {
			x := randVec(rng, n*rows)
			wt := randVec(rng, n)
			for i := range x {
				x[i] *= 3
			}
			for name, k := range ks {
				tag := fmt.Sprintf("%s n=%d rows=%d", name, n, rows)
				want, got := make([]float32, n*rows), make([]float32, n*rows)
				ref.RMSNorm(want, x, wt, n, 1e-5)
				k.RMSNorm(got, x, wt, n, 1e-5)
				checkClose(t, tag+" rmsnorm", got, want, 1e-7)
				copy(want, x)
				copy(got, x)
				ref.Softmax(want, n)
				k.Softmax(got, n)
				checkClose(t, tag+" softmax", got, want, 1e-7)
			}
		}
	}
	// a row of −∞ except one element, and an all −∞ row
	for name, k := range ks {
		inf := float32(math.Inf(-1))
		x := []float32{inf, 3, inf, inf, inf, inf, inf, inf, inf, inf, inf, inf, inf, inf, inf, inf, inf, inf}
		want := append([]float32(nil), x...)
		ref.Softmax(want, 9)
		k.Softmax(x, 9)
		checkClose(t, name+" softmax -inf", x, want, 1e-7)
	}
}

func TestRoPE(t *testing.T) {
	ref := reference.New()
	ks := variants(t, 2)
	rng := rand.New(rand.NewPCG(13, 14))
	for _, c := range []struct{ nPos, nHeads, headDim, nDims int }{
		{1, 1, 2, 2}, {3, 2, 8, 8}, {5, 3, 64, 64}, {7, 4, 24, 16}, {2, 2, 10, 10}, {17, 32, 64, 64},
	} {
		pos := make([]int32, c.nPos)
		for i := range pos {
			pos[i] = int32(rng.IntN(4096))
		}
		x := randVec(rng, c.nPos*c.nHeads*c.headDim)
		for name, k := range ks {
			want, got := append([]float32(nil), x...), append([]float32(nil), x...)
			ref.RoPE(want, pos, c.nHeads, c.headDim, c.nDims, 10000)
			k.RoPE(got, pos, c.nHeads, c.headDim, c.nDims, 10000)
			checkClose(t, fmt.Sprintf("%s %+v", name, c), got, want, 1e-7)
		}
	}
}

func TestAttention(t *testing.T) {
	ref := reference.New()
	ks := variants(t, 2)
	rng := rand.New(rand.NewPCG(15, 16))
	for _, p := range []engine.AttentionParams{
		{NHead: 1, NHeadKV: 1, HeadDim: 8, Batch: 1, StartPos: 0},
		{NHead: 4, NHeadKV: 2, HeadDim: 8, Batch: 3, StartPos: 5},
		{NHead: 8, NHeadKV: 4, HeadDim: 7, Batch: 5, StartPos: 2},
		{NHead: 32, NHeadKV: 4, HeadDim: 64, Batch: 1, StartPos: 37},
		{NHead: 6, NHeadKV: 3, HeadDim: 64, Batch: 17, StartPos: 0},
	} {
		p.Scale = float32(1 / math.Sqrt(float64(p.HeadDim)))
		ctx := p.StartPos + p.Batch + 2
		q := randVec(rng, p.Batch*p.NHead*p.HeadDim)
		kc := randVec(rng, ctx*p.NHeadKV*p.HeadDim)
		vc := randVec(rng, ctx*p.NHeadKV*p.HeadDim)
		want := make([]float32, len(q))
		ref.Attention(want, q, kc, vc, p)
		for name, k := range ks {
			got := make([]float32, len(q))
			k.Attention(got, q, kc, vc, p)
			checkClose(t, fmt.Sprintf("%s %+v", name, p), got, want, 1e-7)
		}
	}
}

func TestThreadsDefaultAndClose(t *testing.T) {
	ki, err := New(0)
	if err != nil {
		t.Fatal(err)
	}
	k := ki.(*Kernels)
	if k.Threads() < 1 {
		t.Fatalf("threads = %d", k.Threads())
	}
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	// still usable, single-threaded, after Close
	rng := rand.New(rand.NewPCG(1, 1))
	w := randWeight(rng, gguf.TypeQ4_0, 300, 64)
	x := randVec(rng, 64)
	got, want := make([]float32, 300), make([]float32, 300)
	k.MatMul(got, w, x, 1)
	reference.New().MatMul(want, w, x, 1)
	checkClose(t, "after close", got, want, 5e-4)
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestF16Conversion(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 18))
	for i := 0; i < 100000; i++ {
		f := math.Float32frombits(rng.Uint32())
		h := gguf.F32ToF16(f)
		// compare with the hardware conversion
		src := []float32{f, 0, 0, 0, 0, 0, 0, 0}
		dst := make([]float32, 8)
		roundF16(&dst[0], &src[0], 8)
		back := gguf.F16ToF32(h)
		if f != f {
			if back == back {
				t.Fatalf("NaN %08x -> %04x not NaN", math.Float32bits(f), h)
			}
			continue
		}
		if math.Float32bits(back) != math.Float32bits(dst[0]) {
			t.Fatalf("%g (%08x): soft %g, hard %g", f, math.Float32bits(f), back, dst[0])
		}
	}
}

// TestQuantQ8_0Asm checks the assembly activation quantizer bit for bit
// against the scalar one, including all-zero blocks and ties.
func TestQuantQ8_0Asm(t *testing.T) {
	rng := rand.New(rand.NewPCG(19, 20))
	cols, batch := 32*37, 3
	x := randVec(rng, cols*batch)
	clear(x[32:64]) // a zero block
	for i := 64; i < 96; i++ {
		x[i] = float32(i%5) * 0.5 // exact ties after scaling
	}
	x[96] = 127
	var a, g q8Acts
	a.reset(cols, batch)
	g.reset(cols, batch)
	for b := 0; b < batch; b++ {
		a.quantizeRow(b, x[b*cols:(b+1)*cols])
		quantQ8_0(&x[b*cols], &g.qs[b*cols], &g.d[b*g.nb], &g.s[b*g.nb], g.nb)
	}
	for i := range a.qs {
		if a.qs[i] != g.qs[i] {
			t.Fatalf("qs[%d] = %d, want %d (x=%g)", i, g.qs[i], a.qs[i], x[i])
		}
	}
	for i := range a.d {
		if a.d[i] != g.d[i] || a.s[i] != g.s[i] {
			t.Fatalf("block %d: d,s = %g,%d want %g,%d", i, g.d[i], g.s[i], a.d[i], a.s[i])
		}
	}
}

// TestQuantQ8KAsm checks the assembly Q8_K quantizer bit for bit
// against the scalar one (zero blocks, negative maxima, ties).
func TestQuantQ8KAsm(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	cols, batch := 256*5, 3
	x := randVec(rng, cols*batch)
	clear(x[256:512])
	x[600] = -50 // negative maximum
	x[700] = 50  // tie in magnitude, later: the first one wins
	for i := 768; i < 1024; i++ {
		x[i] = float32(i%7) - 3
	}
	var a, g q8KActs
	a.reset(cols, batch)
	g.reset(cols, batch)
	for b := 0; b < batch; b++ {
		a.quantizeRow(b, x[b*cols:(b+1)*cols])
		quantQ8K(&x[b*cols], &g.qs[b*cols], &g.d[b*g.nb], &g.bsums[b*g.nb*16], g.nb)
	}
	for i := range a.qs {
		if a.qs[i] != g.qs[i] {
			t.Fatalf("qs[%d] = %d, want %d (x=%g)", i, g.qs[i], a.qs[i], x[i])
		}
	}
	for i := range a.d {
		if a.d[i] != g.d[i] {
			t.Fatalf("d[%d] = %g, want %g", i, g.d[i], a.d[i])
		}
	}
	for i := range a.bsums {
		if a.bsums[i] != g.bsums[i] {
			t.Fatalf("bsums[%d] = %d, want %d", i, g.bsums[i], a.bsums[i])
		}
	}
}

package cpuneon

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/realmrt/realm/gguf"
	"github.com/realmrt/realm/internal/backend/reference"
	"github.com/realmrt/realm/internal/engine"
	"github.com/realmrt/realm/internal/refdata"
)

// config is one way of running the kernels in this process.
type config struct {
	name string
	dot  bool
}

// configs lists the code paths this CPU can run: both integer paths when
// it has the dot-product instructions, the plain one otherwise.
func configs() []config {
	if hasDotProd() {
		return []config{{"sdot", true}, {"smull", false}}
	}
	return []config{{"plain", false}}
}

func newTestKernels(t *testing.T, threads int, dot bool) *Kernels {
	t.Helper()
	k, err := newKernels(threads, dot)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

func randVec(rng *rand.Rand, n int, scale float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64() * scale)
	}
	return v
}

// quantWeight builds a rows×cols weight of type ty from random values.
func quantWeight(t testing.TB, rng *rand.Rand, ty gguf.Type, rows, cols int) *engine.Weight {
	t.Helper()
	rb, err := ty.RowBytes(int64(cols))
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, int(rb)*rows)
	src := randVec(rng, rows*cols, 0.5)
	if err := gguf.Quantize(data, src, ty); err != nil {
		t.Fatal(err)
	}
	return &engine.Weight{Name: "w", Type: ty, Rows: rows, Cols: cols, Data: data}
}

func checkNMSE(t *testing.T, what string, got, want []float32, limit float64) {
	t.Helper()
	if e := refdata.NMSE(got, want); !(e <= limit) {
		t.Errorf("%s: NMSE %.3g > %.3g", what, e, limit)
	}
}

// actType is the encoding llama.cpp gives the activations of a matmul
// with weights of type ty (F32 for none).
func actType(ty gguf.Type) gguf.Type {
	switch ty {
	case gguf.TypeQ4_0, gguf.TypeQ8_0, gguf.TypeIQ4_NL, gguf.TypeIQ4_XS:
		return gguf.TypeQ8_0
	case gguf.TypeQ4_K, gguf.TypeQ5_K, gguf.TypeQ6_K:
		return gguf.TypeQ8_K
	case gguf.TypeF16:
		return gguf.TypeF16
	}
	return gguf.TypeF32
}

// roundTrip encodes x as type ty with the gguf package and decodes it.
func roundTrip(t *testing.T, x []float32, ty gguf.Type) []float32 {
	t.Helper()
	if ty == gguf.TypeF32 {
		return x
	}
	rb, err := ty.RowBytes(int64(len(x)))
	if err != nil {
		t.Fatal(err)
	}
	enc := make([]byte, rb)
	if err := gguf.Quantize(enc, x, ty); err != nil {
		t.Fatal(err)
	}
	out := make([]float32, len(x))
	if ty == gguf.TypeQ8_K { // not decodable by gguf.Dequantize: d·q
		for b := 0; b < len(x)/256; b++ {
			blk := enc[b*292:]
			d := math.Float32frombits(uint32(blk[0]) | uint32(blk[1])<<8 | uint32(blk[2])<<16 | uint32(blk[3])<<24)
			for j := 0; j < 256; j++ {
				out[b*256+j] = d * float32(int8(blk[4+j]))
			}
		}
		return out
	}
	if err := gguf.Dequantize(out, enc, ty); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestMatMul compares MatMul with the reference kernels on odd shapes in
// two ways: per case against the reference applied to the activations as
// llama.cpp encodes them (checks the kernel itself, tight), and pooled
// over all shapes of a type against the reference on the exact
// activations (checks the activation quantization error).
func TestMatMul(t *testing.T) {
	ref := reference.New()
	types := []struct {
		ty    gguf.Type
		cols  []int
		limit float64 // pooled NMSE against exact activations
	}{
		{gguf.TypeF32, []int{32, 96, 256, 768, 33}, 1e-7},
		{gguf.TypeF16, []int{32, 96, 256, 768, 7}, 5e-4},
		{gguf.TypeQ8_0, []int{32, 96, 256, 768}, 5e-4},
		{gguf.TypeQ4_0, []int{32, 96, 256, 768}, 5e-4},
		{gguf.TypeQ4_K, []int{256, 768}, 5e-4},
		{gguf.TypeQ6_K, []int{256, 768}, 5e-4},
		{gguf.TypeQ5_K, []int{256, 768}, 5e-4},
		{gguf.TypeIQ4_NL, []int{32, 96, 256}, 5e-4},
		{gguf.TypeIQ4_XS, []int{256, 768}, 5e-4},
		{gguf.TypeQ5_0, []int{32, 96}, 1e-7}, // dequantize fallback, exact activations
		{gguf.TypeBF16, []int{32, 40}, 1e-7},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, cfg := range configs() {
		k := newTestKernels(t, 3, cfg.dot)
		for _, tc := range types {
			var allGot, allWant []float32
			for _, cols := range tc.cols {
				for _, rows := range []int{1, 3, 17} {
					w := quantWeight(t, rng, tc.ty, rows, cols)
					for _, batch := range []int{1, 2, 5} {
						x := randVec(rng, batch*cols, 1)
						want := make([]float32, batch*rows)
						ref.MatMul(want, w, x, batch)
						wantQ := make([]float32, batch*rows)
						ref.MatMul(wantQ, w, roundTrip(t, x, actType(tc.ty)), batch)
						got := make([]float32, batch*rows+1)
						got[len(got)-1] = 42
						k.MatMul(got, w, x, batch)
						name := fmt.Sprintf("%s/%s rows=%d cols=%d batch=%d", cfg.name, tc.ty, rows, cols, batch)
						checkNMSE(t, name, got[:len(want)], wantQ, 1e-7)
						if got[len(got)-1] != 42 {
							t.Errorf("%s: wrote past the output", name)
						}
						allGot = append(allGot, got[:len(want)]...)
						allWant = append(allWant, want...)
					}
				}
			}
			checkNMSE(t, fmt.Sprintf("%s/%s pooled vs exact activations", cfg.name, tc.ty), allGot, allWant, tc.limit)
			t.Logf("%s/%s: NMSE vs exact activations %.2g (%d outputs)", cfg.name, tc.ty, refdata.NMSE(allGot, allWant), len(allGot))
		}
	}
}

// TestIntegerPathsAgree checks that the SDOT and the SMULL paths give
// bit-identical results (both are exact integer dot products).
func TestIntegerPathsAgree(t *testing.T) {
	if !hasDotProd() {
		t.Skip("no ASIMDDP on this CPU: only the plain path can run (covered by TestMatMul)")
	}
	kd := newTestKernels(t, 2, true)
	kp := newTestKernels(t, 2, false)
	rng := rand.New(rand.NewPCG(3, 4))
	for _, ty := range []gguf.Type{gguf.TypeQ8_0, gguf.TypeQ4_0, gguf.TypeQ4_K, gguf.TypeQ6_K} {
		w := quantWeight(t, rng, ty, 9, 512)
		x := randVec(rng, 3*512, 1)
		a, b := make([]float32, 27), make([]float32, 27)
		kd.MatMul(a, w, x, 3)
		kp.MatMul(b, w, x, 3)
		if !slices.Equal(a, b) {
			t.Errorf("%s: sdot %v\nsmull %v", ty, a[:4], b[:4])
		}
	}
	if kd.Stats().Get(PathSDOT) == 0 || kp.Stats().Get(PathSMULL) == 0 || kd.Stats().Get(PathSMULL) != 0 {
		t.Errorf("path counters: sdot kernels %v, smull kernels %v", kd.Stats(), kp.Stats())
	}
}

// TestActivationQuantization checks the activation encodings against the
// gguf package's Q8_0 and Q8_K quantizers (both follow ggml's reference
// rounding, which is what llama.cpp's arm64 code does too).
func TestActivationQuantization(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	x := randVec(rng, 512, 2)
	x[7] = 0
	clear(x[256+32 : 256+64]) // an all-zero Q8_0 block
	q := make([]int8, 512)
	d := make([]float32, 16)
	quantizeQ8_0(q, d, x)
	enc := make([]byte, 16*34)
	if err := gguf.Quantize(enc, x, gguf.TypeQ8_0); err != nil {
		t.Fatal(err)
	}
	for b := 0; b < 16; b++ {
		if dd := gguf.F16ToF32(le16(enc[b*34:])); dd != d[b] {
			t.Errorf("Q8_0 block %d: d %v, gguf %v", b, d[b], dd)
		}
		for j := 0; j < 32; j++ {
			if int8(enc[b*34+2+j]) != q[b*32+j] {
				t.Fatalf("Q8_0 block %d elem %d: %d, gguf %d", b, j, q[b*32+j], int8(enc[b*34+2+j]))
			}
		}
	}
	ds := make([]float32, 2)
	bs := make([]int32, 32)
	quantizeQ8_K(q, ds, bs, x)
	enc = make([]byte, 2*292)
	if err := gguf.Quantize(enc, x, gguf.TypeQ8_K); err != nil {
		t.Fatal(err)
	}
	for b := 0; b < 2; b++ {
		blk := enc[b*292:]
		if dd := math.Float32frombits(uint32(blk[0]) | uint32(blk[1])<<8 | uint32(blk[2])<<16 | uint32(blk[3])<<24); dd != ds[b] {
			t.Errorf("Q8_K block %d: d %v, gguf %v", b, ds[b], dd)
		}
		for j := 0; j < 256; j++ {
			if int8(blk[4+j]) != q[b*256+j] {
				t.Fatalf("Q8_K block %d elem %d: %d, gguf %d", b, j, q[b*256+j], int8(blk[4+j]))
			}
		}
		for j := 0; j < 16; j++ {
			if s := int32(int16(le16(blk[260+2*j:]))); s != bs[b*16+j] {
				t.Errorf("Q8_K block %d bsum %d: %d, gguf %d", b, j, bs[b*16+j], s)
			}
		}
	}
}

// TestDequantRow compares this package's row decoders with the gguf
// package's on random block contents (every bit pattern of the quants and
// scales, with finite f16 scale fields).
func TestDequantRow(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, ty := range gguf.AllTypes() {
		if ty == gguf.TypeQ8_K {
			continue
		}
		n := 512
		rb, _ := ty.RowBytes(int64(n))
		src := make([]byte, rb)
		for i := range src {
			src[i] = byte(rng.Uint32())
		}
		// Make every 16-bit field finite for the float types and the f16
		// scales of the block types.
		switch ty {
		case gguf.TypeF32:
			for i := 0; i < n; i++ {
				putF32(src[4*i:], float32(rng.NormFloat64()))
			}
		case gguf.TypeF16, gguf.TypeBF16:
			for i := 0; i < n; i++ {
				src[2*i+1] &= 0x3f
			}
		default:
			bb := ty.BlockBytes()
			for b := 0; b < len(src)/bb; b++ {
				blk := src[b*bb : (b+1)*bb]
				switch ty {
				case gguf.TypeQ6_K:
					blk[209] &= 0x3f
				case gguf.TypeQ2_K, gguf.TypeQ3_K:
					blk[bb-1] &= 0x3f
					blk[bb-3] &= 0x3f
				default:
					blk[1] &= 0x3f
					blk[3] &= 0x3f
				}
			}
		}
		want := make([]float32, n)
		if err := gguf.Dequantize(want, src, ty); err != nil {
			t.Errorf("%s: gguf: %v", ty, err)
			continue
		}
		got := make([]float32, n)
		if err := dequantRow(got, src, ty); err != nil {
			t.Errorf("%s: %v", ty, err)
			continue
		}
		for i := range got {
			if got[i] != want[i] && !(math.IsNaN(float64(got[i])) && math.IsNaN(float64(want[i]))) {
				t.Errorf("%s elem %d: %v, gguf %v", ty, i, got[i], want[i])
				break
			}
		}
	}
}

func putF32(b []byte, v float32) {
	u := math.Float32bits(v)
	b[0], b[1], b[2], b[3] = byte(u), byte(u>>8), byte(u>>16), byte(u>>24)
}

func TestGetRows(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	k := newTestKernels(t, 2, false)
	ref := reference.New()
	for _, ty := range []gguf.Type{gguf.TypeF32, gguf.TypeF16, gguf.TypeQ8_0, gguf.TypeQ4_0, gguf.TypeQ4_K, gguf.TypeQ6_K, gguf.TypeQ5_1,
		gguf.TypeQ5_K, gguf.TypeIQ4_NL, gguf.TypeIQ4_XS} {
		w := quantWeight(t, rng, ty, 7, 256)
		ids := []int32{6, 0, 3, 3}
		got, want := make([]float32, 4*256), make([]float32, 4*256)
		k.GetRows(got, w, ids)
		ref.GetRows(want, w, ids)
		if !slices.Equal(got, want) {
			t.Errorf("%s: rows differ from the reference", ty)
		}
	}
}

func TestOps(t *testing.T) {
	ref := reference.New()
	rng := rand.New(rand.NewPCG(11, 12))
	for _, cfg := range configs() {
		k := newTestKernels(t, 3, cfg.dot)
		for _, n := range []int{1, 7, 16, 33, 96, 768, 40000} {
			rows := 3
			if n > 1000 {
				rows = 1
			}
			x := randVec(rng, rows*n, 2)
			y := randVec(rng, rows*n, 2)
			wt := randVec(rng, n, 1)
			name := func(op string) string { return fmt.Sprintf("%s/%s n=%d", cfg.name, op, n) }
			run := func(op string, limit float64, f func(k engine.Kernels, out []float32)) {
				got, want := make([]float32, rows*n+1), make([]float32, rows*n)
				got[rows*n] = 42
				f(k, got[:rows*n])
				f(ref, want)
				checkNMSE(t, name(op), got[:rows*n], want, limit)
				if got[rows*n] != 42 {
					t.Errorf("%s: wrote past the output", name(op))
				}
			}
			run("rmsnorm", 1e-7, func(k engine.Kernels, out []float32) { k.RMSNorm(out, x, wt, n, 1e-5) })
			run("silumul", 1e-7, func(k engine.Kernels, out []float32) { k.SiLUMul(out, x, y) })
			run("add", 0, func(k engine.Kernels, out []float32) { k.Add(out, x, y) })
			run("mul", 0, func(k engine.Kernels, out []float32) { k.Mul(out, x, y) })
			run("softmax", 1e-7, func(k engine.Kernels, out []float32) {
				copy(out, x)
				k.Softmax(out, n)
			})
			run("inplace-add", 0, func(k engine.Kernels, out []float32) {
				copy(out, x)
				k.Add(out, out, y)
			})
		}
		for _, sh := range []struct{ rows, heads, hd, nd int }{{1, 1, 2, 2}, {3, 4, 16, 16}, {5, 2, 48, 32}, {2, 3, 64, 64}} {
			x := randVec(rng, sh.rows*sh.heads*sh.hd, 1)
			pos := make([]int32, sh.rows)
			for i := range pos {
				pos[i] = int32(rng.IntN(3000))
			}
			got, want := slices.Clone(x), slices.Clone(x)
			k.RoPE(got, pos, sh.heads, sh.hd, sh.nd, 10000)
			ref.RoPE(want, pos, sh.heads, sh.hd, sh.nd, 10000)
			checkNMSE(t, fmt.Sprintf("%s/rope %+v", cfg.name, sh), got, want, 1e-7)
		}
		for _, p := range []engine.AttentionParams{
			{NHead: 1, NHeadKV: 1, HeadDim: 8, Batch: 1, StartPos: 0},
			{NHead: 4, NHeadKV: 2, HeadDim: 16, Batch: 3, StartPos: 5},
			{NHead: 6, NHeadKV: 6, HeadDim: 48, Batch: 5, StartPos: 0},
			{NHead: 8, NHeadKV: 1, HeadDim: 33, Batch: 2, StartPos: 17},
		} {
			p.Scale = float32(1 / math.Sqrt(float64(p.HeadDim)))
			ctx := p.StartPos + p.Batch + 2
			q := randVec(rng, p.Batch*p.NHead*p.HeadDim, 1)
			kc := randVec(rng, ctx*p.NHeadKV*p.HeadDim, 1)
			vc := randVec(rng, ctx*p.NHeadKV*p.HeadDim, 1)
			got, want := make([]float32, len(q)), make([]float32, len(q))
			k.Attention(got, q, kc, vc, p)
			ref.Attention(want, q, kc, vc, p)
			checkNMSE(t, fmt.Sprintf("%s/attention %+v", cfg.name, p), got, want, 1e-7)
		}
	}
}

func TestPool(t *testing.T) {
	p := newPool(4)
	defer p.close()
	for _, n := range []int{0, 1, 3, 100, 1001} {
		for _, chunk := range []int{1, 7, 2000} {
			hits := make([]int32, n)
			p.parallel(n, chunk, func(w, lo, hi int) {
				if w < 0 || w >= 4 {
					t.Errorf("worker index %d", w)
				}
				for i := lo; i < hi; i++ {
					hits[i]++
				}
			})
			for i, h := range hits {
				if h != 1 {
					t.Fatalf("n=%d chunk=%d: item %d done %d times", n, chunk, i, h)
				}
			}
		}
	}
	// A panic in a helper reaches the caller, and the pool keeps working.
	for i := 0; i < 3; i++ {
		func() {
			defer func() {
				if r := recover(); r != "boom" {
					t.Errorf("recovered %v, want boom", r)
				}
			}()
			p.parallel(100, 1, func(w, lo, hi int) {
				if lo == 57 {
					panic("boom")
				}
			})
		}()
	}
	var sum atomic.Int64
	p.parallel(100, 3, func(_, lo, hi int) { sum.Add(int64(hi - lo)) })
	if sum.Load() != 100 {
		t.Errorf("after panics the pool covered %d of 100 items", sum.Load())
	}
	p.close()
	p.close() // idempotent
}

func TestNew(t *testing.T) {
	k, err := New(0)
	if err != nil {
		t.Fatal(err)
	}
	defer k.(engine.Closer).Close()
	if got := k.(*Kernels).Threads(); got != runtime.NumCPU() {
		t.Errorf("New(0) threads = %d, want %d", got, runtime.NumCPU())
	}
	if _, err := New(100000); err == nil {
		t.Error("New(100000) succeeded")
	}
}

// TestConcurrentUse runs kernels from several goroutines at once (two
// sessions decoding concurrently) and checks each result against a
// sequential run.
func TestConcurrentUse(t *testing.T) {
	k := newTestKernels(t, 3, hasDotProd())
	rng := rand.New(rand.NewPCG(41, 42))
	types := []gguf.Type{gguf.TypeF32, gguf.TypeQ8_0, gguf.TypeQ4_K, gguf.TypeF16}
	ws := make([]*engine.Weight, len(types))
	xs := make([][]float32, len(types))
	want := make([][]float32, len(types))
	for i, ty := range types {
		ws[i] = quantWeight(t, rng, ty, 33, 256)
		xs[i] = randVec(rng, 3*256, 1)
		want[i] = make([]float32, 3*33)
		k.MatMul(want[i], ws[i], xs[i], 3)
	}
	done := make(chan error, len(types))
	for i := range types {
		go func(i int) {
			got := make([]float32, 3*33)
			for it := 0; it < 20; it++ {
				k.MatMul(got, ws[i], xs[i], 3)
				if !slices.Equal(got, want[i]) {
					done <- fmt.Errorf("%s: concurrent result differs", types[i])
					return
				}
				sm := slices.Clone(xs[i])
				k.Softmax(sm, 256)
			}
			done <- nil
		}(i)
	}
	for range types {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// TestQuantizeVariants checks the (vector) activation quantizers against
// their scalar Go versions bit for bit, on blocks with a negative or a
// positive extreme, an all-zero block and tiny values.
func TestQuantizeVariants(t *testing.T) {
	rng := rand.New(rand.NewPCG(37, 38))
	x := randVec(rng, 5*256, 1)
	x[10] = -9                    // block 0: negative extreme
	x[256+77] = 9                 // block 1: positive extreme
	clear(x[512:768])             // block 2: all zero
	for i := 768; i < 1024; i++ { // block 3: tiny
		x[i] *= 1e-30
	}
	q1, q2 := make([]int8, len(x)), make([]int8, len(x))
	d1, d2 := make([]float32, 5), make([]float32, 5)
	b1, b2 := make([]int32, 80), make([]int32, 80)
	for i := range b1 {
		b1[i], b2[i] = -1, -1
	}
	quantizeQ8_K(q1, d1, b1, x)
	quantizeQ8_KGo(q2, d2, b2, x)
	if !slices.Equal(q1, q2) || !sameBits(d1, d2) || !slices.Equal(b1, b2) {
		t.Errorf("Q8_K: vector and scalar quantizers differ\nd %v\n  %v\nbsums %v\n      %v", d1, d2, b1, b2)
	}
	e1, e2 := make([]float32, 40), make([]float32, 40)
	quantizeQ8_0(q1, e1, x)
	quantizeQ8_0Go(q2, e2, x)
	if !slices.Equal(q1, q2) || !sameBits(e1, e2) {
		t.Errorf("Q8_0: vector and scalar quantizers differ")
	}
}

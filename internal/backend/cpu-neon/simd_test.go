package cpuneon

import (
	"bufio"
	"math"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"strconv"
	"testing"

	"github.com/realmrt/realm/gguf"
)

// TestSDOTEncoding checks every SDOT emitted as a WORD in simd_arm64.s
// against the encoding in the Arm ARM (SDOT Vd.4S, Vn.16B, Vm.16B, vector
// form): 0x4E809400 | Rm<<16 | Rn<<5 | Rd. The assembler-generated file
// must agree with the hand encoding; TestDotI8 then runs it against a
// scalar result.
func TestSDOTEncoding(t *testing.T) {
	f, err := os.Open("simd_arm64.s")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	re := regexp.MustCompile(`WORD \$0x([0-9a-f]{8}) // sdot v(\d+)\.4s, v(\d+)\.16b, v(\d+)\.16b`)
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := re.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		word, _ := strconv.ParseUint(m[1], 16, 32)
		rd, _ := strconv.Atoi(m[2])
		rn, _ := strconv.Atoi(m[3])
		rm, _ := strconv.Atoi(m[4])
		want := uint32(0x4E809400) | uint32(rm)<<16 | uint32(rn)<<5 | uint32(rd)
		if uint32(word) != want {
			t.Errorf("%s: encoded %#08x, Arm ARM gives %#08x", m[0], word, want)
		}
		n++
	}
	if n == 0 {
		t.Fatal("no SDOT instruction found in simd_arm64.s")
	}
	t.Logf("%d SDOT encodings match the Arm ARM formula", n)
}

func TestDotI8(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	for _, cfg := range configs() {
		for _, n := range []int{16, 32, 48, 64, 80, 128, 256 + 48, 1024} {
			w, x := make([]int8, n), make([]int8, n)
			for i := range w {
				w[i], x[i] = int8(rng.Uint32()), int8(rng.Uint32())
			}
			// Extremes: −128·−128 products overflow int16 pairs if summed wrongly.
			w[0], x[0], w[1], x[1] = -128, -128, -128, -128
			got, want := make([]int32, n/16+1), make([]int32, n/16+1)
			got[n/16], want[n/16] = 7, 7
			dotI8x16(w, x, got[:n/16], cfg.dot)
			dotI8x16Go(w, x, want[:n/16])
			if !slices.Equal(got, want) {
				t.Errorf("%s n=%d: %v, want %v", cfg.name, n, got, want)
			}
		}
	}
}

func TestDotF32(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	for n := 0; n < 70; n++ {
		a, b := randVec(rng, n, 1), randVec(rng, 4*n+3, 1)
		var want [4]float64
		for r := 0; r < 4; r++ {
			for i := 0; i < n; i++ {
				want[r] += float64(a[i]) * float64(b[r*(n+1)+i])
			}
		}
		tol := 1e-5 * float64(n+1)
		if got := dotF32(a, b[:n]); math.Abs(float64(got)-want[0]) > tol {
			t.Errorf("dotF32 n=%d: %v, want %v", n, got, want[0])
		}
		if n == 0 {
			continue
		}
		var o [4]float32
		dotF32x4(&o, a, b, n+1)
		for r := range o {
			if math.Abs(float64(o[r])-want[r]) > tol {
				t.Errorf("dotF32x4 n=%d row %d: %v, want %v", n, r, o[r], want[r])
			}
		}
	}
}

func TestF16Row(t *testing.T) {
	src := make([]byte, 2*65536)
	for i := 0; i < 65536; i++ {
		src[2*i], src[2*i+1] = byte(i), byte(i>>8)
	}
	got := make([]float32, 65536)
	f16RowToF32(got[:65533], src) // odd length: vector body and tail
	got[65533] = gguf.F16ToF32(0xfffd)
	got[65534] = gguf.F16ToF32(0xfffe)
	got[65535] = gguf.F16ToF32(0xffff)
	for i, v := range got {
		want := gguf.F16ToF32(uint16(i))
		if math.Float32bits(v) != math.Float32bits(want) && !(v != v && want != want) {
			t.Fatalf("f16 %#04x: %v, want %v", i, v, want)
		}
		if i < 0x7c00 || (i >= 0x8000 && i < 0xfc00) {
			if back := gguf.F32ToF16(v); back != uint16(i) {
				t.Fatalf("gguf.F32ToF16(%v) = %#04x, want %#04x", v, back, i)
			}
		}
	}
}

func TestUnpack(t *testing.T) {
	rng := rand.New(rand.NewPCG(25, 26))
	rnd := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	for _, nb := range []int{1, 3} {
		src := rnd(18 * nb)
		q1, q2 := make([]int8, 32*nb), make([]int8, 32*nb)
		d1, d2 := make([]float32, nb), make([]float32, nb)
		unpackQ4_0(q1, d1, src)
		unpackQ4_0Go(q2, d2, src)
		if !slices.Equal(q1, q2) || !sameBits(d1, d2) {
			t.Errorf("Q4_0 nb=%d differs", nb)
		}
		src = rnd(34 * nb)
		unpackQ8_0(q1, d1, src)
		unpackQ8_0Go(q2, d2, src)
		if !slices.Equal(q1, q2) || !sameBits(d1, d2) {
			t.Errorf("Q8_0 nb=%d differs", nb)
		}
		src = rnd(144 * nb)
		q1, q2 = make([]int8, 256*nb), make([]int8, 256*nb)
		unpackQ4K(q1, src)
		for b := 0; b < nb; b++ {
			unpackQ4KGo(q2[256*b:], src[144*b+16:])
		}
		if !slices.Equal(q1, q2) {
			t.Errorf("Q4_K nb=%d differs", nb)
		}
		src = rnd(210 * nb)
		unpackQ6K(q1, src)
		for b := 0; b < nb; b++ {
			unpackQ6KGo(q2[256*b:], src[210*b:])
		}
		if !slices.Equal(q1, q2) {
			t.Errorf("Q6_K nb=%d differs", nb)
		}
	}
}

func sameBits(a, b []float32) bool {
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return len(a) == len(b)
}

func TestElementwise(t *testing.T) {
	rng := rand.New(rand.NewPCG(27, 28))
	for _, n := range []int{1, 15, 16, 17, 64, 100} {
		a, b := randVec(rng, n, 3), randVec(rng, n, 3)
		type op struct {
			name      string
			simd, go_ func(out []float32)
		}
		ops := []op{
			{"add", func(o []float32) { vadd(o, a, b) }, func(o []float32) { addGo(o, a, b) }},
			{"mul", func(o []float32) { vmul(o, a, b) }, func(o []float32) { mulGo(o, a, b) }},
			{"scale", func(o []float32) { vscale(o, a, 0.37) }, func(o []float32) { scaleGo(o, a, 0.37) }},
			{"scalemul", func(o []float32) { scaleMul(o, a, b, 0.37) }, func(o []float32) { scaleMulGo(o, a, b, 0.37) }},
			{"axpy", func(o []float32) { copy(o, b); axpy(o, 1.7, a) }, func(o []float32) {
				copy(o, b)
				for i := range o {
					o[i] = float32(math.FMA(1.7, float64(a[i]), float64(o[i]))) // FMLA is fused
				}
			}},
		}
		for _, o := range ops {
			got, want := make([]float32, n+1), make([]float32, n+1)
			o.simd(got[:n])
			o.go_(want[:n])
			for i := range want {
				if d := math.Abs(float64(got[i] - want[i])); d > 1e-6*(math.Abs(float64(want[i]))+10) {
					t.Errorf("%s n=%d elem %d: %v, want %v", o.name, n, i, got[i], want[i])
					break
				}
			}
		}
		a[n/2] = -50
		if got := absMaxF32(a); got != 50 {
			t.Errorf("absMax n=%d: %v, want 50", n, got)
		}
		a[n-1] = 60
		if got := maxF32(a); got != 60 {
			t.Errorf("max n=%d: %v, want 60", n, got)
		}
	}
	if got := maxF32([]float32{-3, -2, -5}); got != -2 {
		t.Errorf("max of negatives: %v", got)
	}
}

// TestExp checks the vector exponential (softmax) and SiLU against
// float64 math over a wide range, including the clamped ends.
func TestExp(t *testing.T) {
	var xs []float32
	for v := -100.0; v <= 80; v += 0.0137 {
		xs = append(xs, float32(v))
	}
	xs = append(xs, float32(math.Inf(-1)), -1e30, 0, float32(math.Copysign(0, -1)), 1e-30) // Go folds the constant -0.0 to +0
	got := make([]float32, len(xs))
	sum := expSub(got, xs, 0.5)
	var wantSum, worst float64
	for i, x := range xs {
		want := math.Exp(float64(x - 0.5)) // the kernel subtracts in float32
		wantSum += want
		d := math.Abs(float64(got[i]) - want)
		if d > 4e-7*want+1e-37 { // about 3 ulp
			t.Errorf("exp(%v − 0.5) = %v, want %v", x, got[i], want)
		}
		if want > 1e-30 {
			worst = max(worst, d/want)
		}
	}
	if math.Abs(float64(sum)-wantSum) > 1e-5*wantSum {
		t.Errorf("Σ exp = %v, want %v", sum, wantSum)
	}
	t.Logf("worst relative error of exp: %.3g", worst)
	g := []float32{-200, -90, -20, -1, -1e-3, 0, 1e-3, 1, 20, 90, 200, float32(math.Inf(1)), 3}
	up := make([]float32, len(g))
	for i := range up {
		up[i] = 1.5
	}
	out := make([]float32, len(g))
	siluMul(out, g, up)
	for i, v := range g {
		want := float64(v) / (1 + math.Exp(-float64(v))) * 1.5
		if math.IsInf(float64(v), 1) {
			want = math.Inf(1)
		}
		if d := math.Abs(float64(out[i]) - want); !(d <= 3e-7*math.Abs(want)+1e-30) && out[i] != float32(want) {
			t.Errorf("silu(%v)·1.5 = %v, want %v", v, out[i], want)
		}
	}
}

// TestTiles checks the 1×4 integer tiles against four one-row calls (bit
// for bit) and the fused Q8_0 block dot against the Go version.
func TestTiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(29, 30))
	for _, cfg := range configs() {
		for _, nb := range []int{1, 2, 3, 8, 24} {
			n := 32 * nb
			w, x := make([]int8, n), make([]int8, 4*n)
			for i := range w {
				w[i] = int8(rng.Uint32())
			}
			for i := range x {
				x[i] = int8(rng.Uint32())
			}
			wd, xd := randVec(rng, nb, 0.01), randVec(rng, 4*nb, 0.01)
			var o4 [4]float32
			dotQ8Blocks4(&o4, w, wd, x, xd, cfg.dot)
			for r := 0; r < 4; r++ {
				one := dotQ8Blocks(w, wd, x[r*n:(r+1)*n], xd[r*nb:(r+1)*nb], cfg.dot)
				if math.Float32bits(one) != math.Float32bits(o4[r]) {
					t.Errorf("%s nb=%d row %d: tile %v, one row %v", cfg.name, nb, r, o4[r], one)
				}
				g := dotQ8BlocksGo(w, wd, x[r*n:(r+1)*n], xd[r*nb:(r+1)*nb])
				if math.Abs(float64(g-one)) > 1e-5*(math.Abs(float64(g))+1e-3) {
					t.Errorf("%s nb=%d row %d: %v, Go %v", cfg.name, nb, r, one, g)
				}
			}
			got := make([]int32, 4*(n/16))
			dotI8x16x4(w, x, got, cfg.dot)
			want := make([]int32, 4*(n/16))
			for r := 0; r < 4; r++ {
				dotI8x16Go(w, x[r*n:(r+1)*n], want[r*n/16:(r+1)*n/16])
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s n=%d: dotI8x16x4 %v\nwant %v", cfg.name, n, got, want)
			}
		}
	}
}

// TestRoundF16 checks the FCVTN rounding against the Go conversion,
// including exact ties, overflow to infinity and subnormals.
func TestRoundF16(t *testing.T) {
	rng := rand.New(rand.NewPCG(33, 34))
	var src []float32
	for i := 0; i < 4000; i++ {
		src = append(src, float32(rng.NormFloat64()*math.Pow(2, float64(rng.IntN(40)-25))))
	}
	for h := 0; h < 0x7c00; h += 37 { // halfway between neighbours: ties
		a, b := gguf.F16ToF32(uint16(h)), gguf.F16ToF32(uint16(h+1))
		src = append(src, (a+b)/2, -(a+b)/2)
	}
	src = append(src, 65520, 65519, 1e6, float32(math.Inf(-1)), 0, 1e-9)
	got, want := make([]float32, len(src)), make([]float32, len(src))
	roundF16(got, src)
	roundF16Go(want, src)
	for i := range src {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("roundF16(%v) = %v, want %v", src[i], got[i], want[i])
		}
	}
}

// TestFusedKQuant checks the fused one-row Q4_K/Q6_K kernels against
// their Go mirrors.
func TestFusedKQuant(t *testing.T) {
	rng := rand.New(rand.NewPCG(35, 36))
	for _, cfg := range configs() {
		for _, nb := range []int{1, 3} {
			wq, xq := make([]int8, 256*nb), make([]int8, 256*nb)
			for i := range wq {
				wq[i], xq[i] = int8(rng.IntN(64)-32), int8(rng.Uint32())
			}
			sc, bs := make([]int32, 16*nb), make([]int32, 16*nb)
			for i := range sc {
				sc[i] = int32(rng.IntN(128) - 64)
				for _, v := range xq[16*i : 16*i+16] {
					bs[i] += int32(v)
				}
			}
			wd, xd := randVec(rng, 2*nb, 0.01), randVec(rng, nb, 0.01)
			for _, c := range []struct {
				name      string
				got, want float32
			}{
				{"Q4_K", dotQ4K(wq, xq, sc, wd, xd, bs, cfg.dot), dotQ4KGo(wq, xq, sc, wd, xd, bs)},
				{"Q6_K", dotQ6K(wq, xq, sc, wd[:nb], xd, cfg.dot), dotQ6KGo(wq, xq, sc, wd[:nb], xd)},
			} {
				if math.Abs(float64(c.got-c.want)) > 1e-5*(math.Abs(float64(c.want))+1e-2) {
					t.Errorf("%s %s nb=%d: %v, Go %v", cfg.name, c.name, nb, c.got, c.want)
				}
			}
		}
	}
}

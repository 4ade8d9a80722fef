package gguf

import (
	"math"
	"math/rand/v2"
	"testing"
)

// refF32ToF16 rounds x to binary16 by brute force: it picks the nearest
// of all finite halves (ties to the even bit pattern), or Inf beyond the
// rounding limit 65520.
func refF32ToF16(x float32) uint16 {
	if math.IsNaN(float64(x)) {
		return 0x7e00
	}
	sign := uint16(0)
	v := float64(x)
	if math.Signbit(v) {
		sign = 0x8000
		v = -v
	}
	if v >= 65520 {
		return sign | 0x7c00
	}
	// Binary search over the monotone positive half patterns 0..0x7bff.
	lo, hi := uint16(0), uint16(0x7bff)
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if float64(F16ToF32(mid)) <= v {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	if lo == 0x7bff {
		return sign | lo
	}
	a, b := float64(F16ToF32(lo)), float64(F16ToF32(lo+1))
	switch {
	case v-a < b-v:
		return sign | lo
	case v-a > b-v:
		return sign | (lo + 1)
	case lo&1 == 0:
		return sign | lo
	}
	return sign | (lo + 1)
}

func TestF16RoundTripAll(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		f := F16ToF32(uint16(h))
		back := F32ToF16(f)
		if math.IsNaN(float64(f)) {
			if back&0x7c00 != 0x7c00 || back&0x3ff == 0 {
				t.Fatalf("NaN %#04x -> %#04x", h, back)
			}
			continue
		}
		if back != uint16(h) {
			t.Fatalf("%#04x -> %g -> %#04x", h, f, back)
		}
	}
}

func TestF16KnownValues(t *testing.T) {
	for _, tc := range []struct {
		h uint16
		f float32
	}{
		{0x3c00, 1}, {0xc000, -2}, {0x7bff, 65504}, {0x0400, 6.103515625e-05},
		{0x0001, 5.960464477539063e-08}, {0x03ff, 6.097555160522461e-05}, {0x3555, 0.333251953125},
		{0x7c00, float32(math.Inf(1))}, {0xfc00, float32(math.Inf(-1))}, {0x8000, float32(math.Copysign(0, -1))},
	} {
		if got := F16ToF32(tc.h); got != tc.f || math.Signbit(float64(got)) != math.Signbit(float64(tc.f)) {
			t.Errorf("F16ToF32(%#04x) = %g, want %g", tc.h, got, tc.f)
		}
		if got := F32ToF16(tc.f); got != tc.h {
			t.Errorf("F32ToF16(%g) = %#04x, want %#04x", tc.f, got, tc.h)
		}
	}
	// Rounding edge cases: ties to even, overflow, underflow.
	for _, tc := range []struct {
		f float32
		h uint16
	}{
		{65519, 0x7bff}, {65520, 0x7c00}, {1e10, 0x7c00}, {-1e10, 0xfc00},
		{2.9802322387695312e-08, 0x0000}, // exactly half the smallest subnormal: tie to even (0)
		{2.98023259e-08, 0x0001},         // just above half
		{8.940696716308594e-08, 0x0002},  // 1.5 ulp: tie to even (2)
		{1 + 1.0/2048, 0x3c00},           // tie between 1 and 1+2^-10: even is 1
		{1 + 3.0/2048, 0x3c02},           // tie: even is 1+2^-9
	} {
		if got := F32ToF16(tc.f); got != tc.h {
			t.Errorf("F32ToF16(%g) = %#04x, want %#04x", tc.f, got, tc.h)
		}
	}
	if h := F32ToF16(float32(math.NaN())); h&0x7c00 != 0x7c00 || h&0x3ff == 0 {
		t.Errorf("F32ToF16(NaN) = %#04x", h)
	}
}

func TestF32ToF16Random(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200000; i++ {
		var x float32
		switch i % 3 {
		case 0:
			x = math.Float32frombits(r.Uint32())
		case 1: // around the half range, subnormals included
			x = float32(r.NormFloat64() * math.Pow(2, float64(r.IntN(44)-30)))
		default:
			x = float32(r.NormFloat64())
		}
		if math.IsNaN(float64(x)) {
			continue
		}
		if got, want := F32ToF16(x), refF32ToF16(x); got != want {
			t.Fatalf("F32ToF16(%g [%#08x]) = %#04x, want %#04x", x, math.Float32bits(x), got, want)
		}
	}
}

func TestBF16(t *testing.T) {
	for _, tc := range []struct {
		f float32
		h uint16
	}{
		{1, 0x3f80}, {-2, 0xc000}, {float32(math.Inf(1)), 0x7f80},
		{math.Float32frombits(0x3f808000), 0x3f80}, // tie, even stays
		{math.Float32frombits(0x3f818000), 0x3f82}, // tie, rounds to even
		{math.Float32frombits(0x3f808001), 0x3f81},
		{math.Float32frombits(0x7f7fffff), 0x7f80}, // rounds to Inf
	} {
		if got := F32ToBF16(tc.f); got != tc.h {
			t.Errorf("F32ToBF16(%#08x) = %#04x, want %#04x", math.Float32bits(tc.f), got, tc.h)
		}
	}
	for h := 0; h < 1<<16; h++ {
		f := BF16ToF32(uint16(h))
		if math.IsNaN(float64(f)) {
			if !math.IsNaN(float64(BF16ToF32(F32ToBF16(f)))) {
				t.Fatalf("NaN %#04x lost", h)
			}
			continue
		}
		if F32ToBF16(f) != uint16(h) {
			t.Fatalf("bf16 %#04x does not round-trip", h)
		}
	}
}

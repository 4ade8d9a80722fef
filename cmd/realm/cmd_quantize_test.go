package main

import (
	"testing"

	"github.com/realmrt/realm/gguf"
)

// TestFallbackType checks llama.cpp's fallbacks for rows that do not fit
// a type's block: 256-element types drop to a 32-element relative, and
// to F16 when even that does not fit.
func TestFallbackType(t *testing.T) {
	for _, tc := range []struct {
		nx   int64
		t    gguf.Type
		want gguf.Type
	}{
		{512, gguf.TypeQ5_K, gguf.TypeQ5_K},
		{288, gguf.TypeQ5_K, gguf.TypeQ5_1},
		{288, gguf.TypeIQ4_XS, gguf.TypeIQ4_NL},
		{288, gguf.TypeIQ4_NL, gguf.TypeIQ4_NL},
		{100, gguf.TypeIQ4_XS, gguf.TypeF16},
		{100, gguf.TypeIQ4_NL, gguf.TypeF16},
		{288, gguf.TypeQ4_K, gguf.TypeQ5_0},
		{288, gguf.TypeQ6_K, gguf.TypeQ8_0},
	} {
		if got := fallbackType(tc.nx, tc.t); got != tc.want {
			t.Errorf("fallbackType(%d, %v) = %v, want %v", tc.nx, tc.t, got, tc.want)
		}
	}
}

// TestPlanMixIQ4 checks the IQ4 and Q5_K_M rules of planMix on a model
// of 8 layers: ffn_down of the first eighth gets Q5_K with IQ4_*, attn_v
// gets Q5_K with IQ4_* only at 4+ heads per KV head, and Q5_K_M gives
// Q6_K to attn_v/ffn_down on useMoreBits layers.
func TestPlanMixIQ4(t *testing.T) {
	var ts []gguf.TensorInfo
	for l := 0; l < 8; l++ {
		for _, n := range []string{"attn_v", "ffn_down", "attn_q"} {
			ts = append(ts, gguf.TensorInfo{Name: "blk." + string(rune('0'+l)) + "." + n + ".weight", Type: gguf.TypeF32, Dims: []int64{256, 256}})
		}
	}
	order := llamaTensorOrder(ts)
	ft := func(name string) quantFtype {
		f, err := parseFtype(name)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	typeOf := func(types []gguf.Type, name string) gguf.Type {
		for i := range ts {
			if ts[i].Name == name {
				return types[i]
			}
		}
		t.Fatalf("no tensor %s", name)
		return 0
	}
	iq := planMix(ts, order, ft("iq4_xs"), mixParams{nLayer: 8, nGQA: 4})
	for name, want := range map[string]gguf.Type{
		"blk.0.ffn_down.weight": gguf.TypeQ5_K, "blk.1.ffn_down.weight": gguf.TypeIQ4_XS,
		"blk.3.attn_v.weight": gguf.TypeQ5_K, "blk.3.attn_q.weight": gguf.TypeIQ4_XS,
	} {
		if got := typeOf(iq, name); got != want {
			t.Errorf("iq4_xs gqa 4: %s = %v, want %v", name, got, want)
		}
	}
	if got := typeOf(planMix(ts, order, ft("iq4_nl"), mixParams{nLayer: 8, nGQA: 2}), "blk.3.attn_v.weight"); got != gguf.TypeIQ4_NL {
		t.Errorf("iq4_nl gqa 2: attn_v = %v, want IQ4_NL", got)
	}
	k := planMix(ts, order, ft("q5_k_m"), mixParams{nLayer: 8, nGQA: 4})
	for l, more := range []bool{true, false, false, true, false, false, true, true} {
		want := gguf.TypeQ5_K
		if more {
			want = gguf.TypeQ6_K
		}
		for _, n := range []string{"attn_v", "ffn_down"} {
			name := "blk." + string(rune('0'+l)) + "." + n + ".weight"
			if got := typeOf(k, name); got != want {
				t.Errorf("q5_k_m: %s = %v, want %v", name, got, want)
			}
		}
	}
}

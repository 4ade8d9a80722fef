package sample

import (
	"math"
	"testing"

	"github.com/realmrt/realm/backends"
)

func TestGreedy(t *testing.T) {
	nan := float32(math.NaN())
	tests := []struct {
		name   string
		logits []float32
		want   int32
	}{
		{"single", []float32{1}, 0},
		{"max last", []float32{1, 2, 3}, 2},
		{"tie lowest id", []float32{1, 5, 5, 2}, 1},
		{"negative", []float32{-3, -1, -2}, 1},
		{"nan skipped", []float32{nan, 1, nan, 0}, 1},
		{"all nan", []float32{nan, nan}, 0},
		{"empty", nil, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Greedy(tc.logits); got != tc.want {
				t.Errorf("Greedy(%v) = %d, want %d", tc.logits, got, tc.want)
			}
			if len(tc.logits) == 0 {
				return
			}
			got, err := New(backends.SampleParams{}).Sample(tc.logits, nil)
			if err != nil || got != tc.want {
				t.Errorf("Sample greedy = %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}

func TestSampleNoLogits(t *testing.T) {
	if _, err := New(backends.SampleParams{Temperature: 1}).Sample(nil, nil); err == nil {
		t.Fatal("Sample(nil) succeeded")
	}
}

func TestRepeatPenalty(t *testing.T) {
	tests := []struct {
		name    string
		logits  []float32
		history []int32
		p       backends.SampleParams
		want    int32
	}{
		// 4/2 = 2 < 3: token 1 wins after penalty.
		{"positive divided", []float32{0, 4, 3}, []int32{1}, backends.SampleParams{RepeatPenalty: 2}, 2},
		// -1*2 = -2 < -1.5: token 2 wins.
		{"negative multiplied", []float32{-5, -1, -1.5}, []int32{1}, backends.SampleParams{RepeatPenalty: 2}, 2},
		// Token 1 outside the window of 1: not penalized.
		{"window", []float32{0, 4, 3}, []int32{1, 2}, backends.SampleParams{RepeatPenalty: 2, RepeatLastN: 1}, 1},
		// Repeated ids are penalized once.
		{"distinct", []float32{0, 4, 2.5}, []int32{1, 1, 1}, backends.SampleParams{RepeatPenalty: 1.5}, 1},
		{"disabled", []float32{0, 4, 3}, []int32{1}, backends.SampleParams{RepeatPenalty: 1}, 1},
		{"bad ids ignored", []float32{0, 4, 3}, []int32{-1, 99}, backends.SampleParams{RepeatPenalty: 2}, 1},
		// 0·NaN and 0·Inf are NaN: a non-finite penalty must not turn
		// the zero logit of token 0 into a winner.
		{"NaN disabled", []float32{0, 4, 3}, []int32{0}, backends.SampleParams{RepeatPenalty: float32(math.NaN())}, 1},
		{"Inf disabled", []float32{0, 4, 3}, []int32{0}, backends.SampleParams{RepeatPenalty: float32(math.Inf(1))}, 1},
		{"negative disabled", []float32{0, 4, 3}, []int32{1}, backends.SampleParams{RepeatPenalty: -2}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := New(tc.p).Sample(tc.logits, tc.history)
			if err != nil || got != tc.want {
				t.Errorf("got %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}

func TestSampleDoesNotModifyLogits(t *testing.T) {
	logits := []float32{1, 2, 3}
	s := New(backends.SampleParams{Temperature: 0.7, RepeatPenalty: 2, TopK: 2})
	if _, err := s.Sample(logits, []int32{2}); err != nil {
		t.Fatal(err)
	}
	if logits[0] != 1 || logits[1] != 2 || logits[2] != 3 {
		t.Errorf("logits modified: %v", logits)
	}
}

// draw samples n tokens with p and returns the count per id.
func draw(t *testing.T, p backends.SampleParams, logits []float32, n int) []int {
	t.Helper()
	s := New(p)
	counts := make([]int, len(logits))
	for range n {
		id, err := s.Sample(logits, nil)
		if err != nil {
			t.Fatal(err)
		}
		counts[id]++
	}
	return counts
}

func TestFilters(t *testing.T) {
	// probabilities at T=1: softmax(ln(.5), ln(.25), ln(.15), ln(.1))
	logits := []float32{float32(math.Log(.5)), float32(math.Log(.25)), float32(math.Log(.15)), float32(math.Log(.1))}
	tests := []struct {
		name    string
		p       backends.SampleParams
		allowed []bool
	}{
		{"top-k 1", backends.SampleParams{Temperature: 1, TopK: 1}, []bool{true, false, false, false}},
		{"top-k 2", backends.SampleParams{Temperature: 1, TopK: 2}, []bool{true, true, false, false}},
		{"top-p 0.7", backends.SampleParams{Temperature: 1, TopP: 0.7}, []bool{true, true, false, false}},
		{"top-p 0.8", backends.SampleParams{Temperature: 1, TopP: 0.8}, []bool{true, true, true, false}},
		{"min-p 0.25", backends.SampleParams{Temperature: 1, MinP: 0.25}, []bool{true, true, true, false}},
		{"min-p 0.4", backends.SampleParams{Temperature: 1, MinP: 0.4}, []bool{true, true, false, false}},
		{"none", backends.SampleParams{Temperature: 1}, []bool{true, true, true, true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.p.Seed = 7
			counts := draw(t, tc.p, logits, 2000)
			for id, ok := range tc.allowed {
				if ok && counts[id] == 0 {
					t.Errorf("token %d never drawn: %v", id, counts)
				}
				if !ok && counts[id] != 0 {
					t.Errorf("token %d drawn %d times but filtered: %v", id, counts[id], counts)
				}
			}
		})
	}
}

func TestDistribution(t *testing.T) {
	logits := []float32{2, 1, 0, -1, 0.5}
	for _, temp := range []float32{0.5, 1, 2} {
		const n = 50000
		counts := draw(t, backends.SampleParams{Temperature: temp, Seed: 42}, logits, n)
		var sum float64
		for _, l := range logits {
			sum += math.Exp(float64(l) / float64(temp))
		}
		for id, l := range logits {
			p := math.Exp(float64(l)/float64(temp)) / sum
			got := float64(counts[id]) / n
			sd := math.Sqrt(p * (1 - p) / n)
			if math.Abs(got-p) > 5*sd+1e-4 {
				t.Errorf("T=%g token %d: frequency %.4f, want %.4f ± %.4f", temp, id, got, p, 5*sd)
			}
		}
	}
}

func TestDeterminism(t *testing.T) {
	logits := make([]float32, 100)
	for i := range logits {
		logits[i] = float32(math.Sin(float64(i)))
	}
	p := backends.SampleParams{Temperature: 1.3, TopK: 40, TopP: 0.95, MinP: 0.01, Seed: 1234}
	seq := func(p backends.SampleParams) []int32 {
		s := New(p)
		var out []int32
		for range 50 {
			id, err := s.Sample(logits, out)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, id)
		}
		return out
	}
	a, b := seq(p), seq(p)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("same seed, different streams at %d: %v vs %v", i, a, b)
		}
	}
	p.Seed = 1235
	c := seq(p)
	same := true
	for i := range a {
		same = same && a[i] == c[i]
	}
	if same {
		t.Error("different seeds gave identical streams")
	}
}

func TestSetParamsReseed(t *testing.T) {
	logits := []float32{0, 0, 0, 0, 0, 0, 0, 0}
	p := backends.SampleParams{Temperature: 1, Seed: 5}
	ref := New(p)
	a1, _ := ref.Sample(logits, nil)
	a2, _ := ref.Sample(logits, nil)

	s := New(p)
	b1, _ := s.Sample(logits, nil)
	s.SetParams(backends.SampleParams{Temperature: 2, Seed: 5}) // same seed: stream continues
	b2, _ := s.Sample(logits, nil)
	if a1 != b1 || a2 != b2 {
		t.Errorf("stream changed without a new seed: %d %d vs %d %d", a1, a2, b1, b2)
	}
	s.SetParams(backends.SampleParams{Temperature: 1, Seed: 9})
	s.SetParams(backends.SampleParams{Temperature: 1, Seed: 5}) // back to 5: reseeded from the start
	c1, _ := s.Sample(logits, nil)
	if c1 != a1 {
		t.Errorf("reseed did not restart the stream: %d vs %d", c1, a1)
	}
}

func TestRNGKnownValues(t *testing.T) {
	// SplitMix64 reference values for seed 0.
	r := NewRNG(0)
	want := []uint64{0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4, 0x06c45d188009454f}
	for i, w := range want {
		if got := r.Uint64(); got != w {
			t.Errorf("value %d = %#x, want %#x", i, got, w)
		}
	}
	for range 1000 {
		if f := r.Float64(); f < 0 || f >= 1 {
			t.Fatalf("Float64 = %g out of [0,1)", f)
		}
	}
}

package gen_test

import (
	"context"
	"math"
	"slices"
	"sort"
	"testing"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/internal/gen"
)

// TestHostSamplingMatchesBackend: asking for logprobs moves sampling to
// the host (the logits come back, package sample draws), which must not
// change the tokens a seed gives.
func TestHostSamplingMatchesBackend(t *testing.T) {
	b, id, tok := stories(t)
	for _, sp := range []backends.SampleParams{
		{},
		{Temperature: 0.8, TopK: 40, TopP: 0.9, Seed: 7},
		{Temperature: 1.2, MinP: 0.05, RepeatPenalty: 1.3, Seed: 12345},
	} {
		run := func(logprobs bool) *gen.Result {
			res, err := gen.Run(context.Background(), b, id, tok, gen.Request{
				Prompt: "Once upon a time", AddBOS: true, MaxTokens: 48, NCtx: 256, Sample: sp, Logprobs: logprobs,
			}, nil)
			if err != nil {
				t.Fatal(err)
			}
			return res
		}
		dev, host := run(false), run(true)
		if !slices.Equal(dev.IDs, host.IDs) || dev.Text != host.Text || len(host.Logprobs) != len(host.IDs) || dev.Logprobs != nil {
			t.Errorf("%+v: backend sampled %v, host sampled %v (%d logprobs)", sp, dev.IDs, host.IDs, len(host.Logprobs))
		}
	}
}

// TestLogprobsAndPenalties checks every reported log-probability and
// top alternative against the log-softmax of the logits the backend
// returns for the same prefix, computed here directly, and every greedy
// token against the argmax of those logits lowered by the presence and
// frequency penalties of the tokens generated before it.
func TestLogprobsAndPenalties(t *testing.T) {
	b, id, tok := stories(t)
	ctx := context.Background()
	const presence, frequency, k = 0.7, 1.1, 5
	for _, pen := range []bool{false, true} {
		req := gen.Request{Prompt: "Once upon a time", AddBOS: true, MaxTokens: 40, NCtx: 256, Logprobs: true, TopLogprobs: k}
		if pen {
			req.PresencePenalty, req.FrequencyPenalty = presence, frequency
		}
		res, err := gen.Run(ctx, b, id, tok, req, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Logprobs) != len(res.IDs) || len(res.IDs) == 0 {
			t.Fatalf("%d logprobs for %d tokens", len(res.Logprobs), len(res.IDs))
		}
		sid, err := b.OpenSession(ctx, id, 256)
		if err != nil {
			t.Fatal(err)
		}
		counts := map[int32]int{}
		feed := res.PromptIDs
		for i, want := range res.IDs {
			d, err := b.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: feed, Want: backends.WantLogits})
			if err != nil {
				t.Fatal(err)
			}
			// log_softmax, directly.
			var sum float64
			for _, x := range d.Logits {
				sum += math.Exp(float64(x))
			}
			lsm := func(id int32) float64 { return float64(d.Logits[id]) - math.Log(sum) }
			// The greedy choice under the penalties.
			best, bestV := int32(-1), math.Inf(-1)
			for j, x := range d.Logits {
				v := float64(x)
				if pen && counts[int32(j)] > 0 {
					v -= float64(counts[int32(j)])*frequency + presence
				}
				if v > bestV {
					best, bestV = int32(j), v
				}
			}
			if best != want {
				t.Fatalf("penalties %v, token %d: generated %d, the penalized argmax is %d", pen, i, want, best)
			}
			lp := res.Logprobs[i]
			if lp.ID != want || math.Abs(float64(lp.Logprob)-lsm(want)) > 1e-4 || string(lp.Bytes) != string(tok.Piece(want)) {
				t.Fatalf("token %d: %+v, want id %d logprob %g", i, lp, want, lsm(want))
			}
			order := make([]int32, len(d.Logits))
			for j := range order {
				order[j] = int32(j)
			}
			sort.SliceStable(order, func(a, b int) bool { return d.Logits[order[a]] > d.Logits[order[b]] })
			if len(lp.Top) != k {
				t.Fatalf("token %d: %d alternatives", i, len(lp.Top))
			}
			for j, alt := range lp.Top {
				if alt.ID != order[j] || math.Abs(float64(alt.Logprob)-lsm(order[j])) > 1e-4 {
					t.Fatalf("token %d, alternative %d: %+v, want id %d logprob %g", i, j, alt, order[j], lsm(order[j]))
				}
			}
			if !pen && lp.Top[0].ID != want {
				t.Fatalf("greedy token %d is not the most likely", i)
			}
			counts[want]++
			feed = []int32{want}
		}
		b.CloseSession(ctx, sid)
		t.Logf("penalties %v: %q", pen, res.Text)
	}
}

// onLogprobWriter records, at each write, how many logprobs had been
// reported and the bytes of their tokens.
type onLogprobWriter struct {
	reported []gen.TokenLogprob
	text     []byte
	bad      int // writes whose text went past the reported tokens' bytes
}

func (w *onLogprobWriter) Write(p []byte) (int, error) {
	w.text = append(w.text, p...)
	n := 0
	for _, lp := range w.reported {
		n += len(lp.Bytes)
	}
	if len(w.text) > n {
		w.bad++
	}
	return len(p), nil
}

// TestOnLogprob: the live callback gets every entry of Result.Logprobs,
// in order, each before its token's text is written (a streaming server
// sends them together), also with a stop string holding text back.
func TestOnLogprob(t *testing.T) {
	b, id, tok := stories(t)
	for _, stop := range [][]string{nil, {"Lily"}} {
		w := &onLogprobWriter{}
		res, err := gen.Run(context.Background(), b, id, tok, gen.Request{
			Prompt: "Once upon a time", AddBOS: true, MaxTokens: 30, NCtx: 256, Logprobs: true, TopLogprobs: 1, Stop: stop,
			OnLogprob: func(lp gen.TokenLogprob) { w.reported = append(w.reported, lp) },
		}, w)
		if err != nil {
			t.Fatal(err)
		}
		if len(w.reported) != len(res.Logprobs) || len(w.reported) == 0 {
			t.Fatalf("stop %q: %d reported, %d in the result", stop, len(w.reported), len(res.Logprobs))
		}
		for i := range w.reported {
			if w.reported[i].ID != res.Logprobs[i].ID || w.reported[i].Logprob != res.Logprobs[i].Logprob {
				t.Errorf("entry %d: reported %+v, result %+v", i, w.reported[i], res.Logprobs[i])
			}
		}
		if w.bad != 0 || string(w.text) != res.Text {
			t.Errorf("stop %q: %d writes ahead of their logprobs; text %q, result %q", stop, w.bad, w.text, res.Text)
		}
	}
}

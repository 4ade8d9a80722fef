//go:build linux && amd64

package cpuavx2

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/internal/engine"
)

// TestPrefixReuseTTFT measures a two-turn chat on the model named by
// -model (skipped without): turn 1 decodes a 500-token conversation and
// generates 32 tokens; turn 2, in a new session as a server opens one
// per request, sends the whole conversation again plus 20 new tokens.
// Turn 2's time to first token (its prompt Decode with the first token
// sampled) is measured with prefix reuse (the same model, whose pool
// holds turn 1's blocks) and without (a second load of the file, whose
// pool is empty), alternating, ROUNDS times; the medians are logged.
func TestPrefixReuseTTFT(t *testing.T) {
	if *benchModel == "" {
		t.Skip("no -model given")
	}
	ctx := context.Background()
	k, err := NewWithOptions(Options{Threads: *benchThreads})
	if err != nil {
		t.Fatal(err)
	}
	be := engine.NewBackend(k, engine.Options{Name: Name, Threads: *benchThreads})
	load := func() backends.ModelID {
		mi, err := be.LoadModel(ctx, backends.LoadRequest{Path: *benchModel})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { be.UnloadModel(ctx, mi.ID) })
		return mi.ID
	}
	warm, cold := load(), load()
	decode := func(sid backends.SessionID, toks []int32, want backends.Want) *backends.DecodeResult {
		res, err := be.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: toks, Want: want})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	// turn2 runs turn 2 of conversation c on model id and returns its
	// time to first token and that token.
	turn2 := func(id backends.ModelID, prompt []int32) (time.Duration, int32) {
		sid, err := be.OpenSession(ctx, id, 2048)
		if err != nil {
			t.Fatal(err)
		}
		defer be.CloseSession(ctx, sid)
		t0 := time.Now()
		res := decode(sid, prompt, backends.WantSample)
		return time.Since(t0), res.Token
	}
	var with, without []time.Duration
	for r := 0; r < 3; r++ {
		conv := make([]int32, 500)
		for i := range conv {
			conv[i] = int32(100 + (r*131+i*17)%20000)
		}
		// Turn 1 on the warm model: the conversation, then 32 tokens.
		sid, err := be.OpenSession(ctx, warm, 2048)
		if err != nil {
			t.Fatal(err)
		}
		tok := decode(sid, conv, backends.WantSample).Token
		hist := slices.Clone(conv)
		for range 32 {
			hist = append(hist, tok)
			tok = decode(sid, []int32{tok}, backends.WantSample).Token
		}
		be.CloseSession(ctx, sid)
		prompt := slices.Clone(hist)
		for i := range 20 {
			prompt = append(prompt, int32(300+i))
		}
		dw, tw := turn2(warm, prompt)
		dc, tc := turn2(cold, prompt)
		if tw != tc {
			t.Errorf("round %d: turn 2's first token %d with reuse, %d without", r, tw, tc)
		}
		// The cold model must stay cold: forget what turn 2 left there.
		be.UnloadModel(ctx, cold)
		cold = load()
		with, without = append(with, dw), append(without, dc)
	}
	slices.Sort(with)
	slices.Sort(without)
	info, _ := be.Info(ctx)
	t.Logf("turn 2 (%d-token prompt: turn 1's 532 and 20 new): TTFT with prefix reuse %v, without %v (medians of %d: %v / %v): %.1f× shorter; pools %+v",
		552, with[1], without[1], len(with), with, without, float64(without[1])/float64(with[1]), info.KVPools)
}

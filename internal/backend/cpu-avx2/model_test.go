//go:build amd64

package cpuavx2

import (
	"context"
	"testing"
	"time"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/internal/backend/reference"
	"github.com/realmrt/realm/internal/engine"
	"github.com/realmrt/realm/internal/refdata"
)

// greedy runs the prompt through b as one batch and then generates n
// tokens greedily; it returns the ids and the logits of the prompt's
// last position.
func greedy(t *testing.T, b backends.Backend, path string, prompt []int32, n int) ([]int32, []float32) {
	t.Helper()
	ctx := context.Background()
	mi, err := b.LoadModel(ctx, backends.LoadRequest{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer b.UnloadModel(ctx, mi.ID)
	waitPrepared(t, b)
	sid, err := b.OpenSession(ctx, mi.ID, len(prompt)+n+1)
	if err != nil {
		t.Fatal(err)
	}
	res, err := b.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: prompt, Want: backends.WantLogits})
	if err != nil {
		t.Fatal(err)
	}
	logits := res.Logits
	tok := argmax(logits)
	ids := []int32{tok}
	for len(ids) < n {
		r, err := b.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: []int32{tok}, Want: backends.WantSample})
		if err != nil {
			t.Fatal(err)
		}
		tok = r.Token
		ids = append(ids, tok)
	}
	return ids, logits
}

// waitPrepared waits until b has placed the weights of every loaded
// model (the background weight copy is done), so that what follows runs
// on the copy.
func waitPrepared(t *testing.T, b backends.Backend) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		info, err := b.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(info.Preparing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("weights of models %v still being prepared after a minute", info.Preparing)
		}
		time.Sleep(time.Millisecond)
	}
}

func argmax(v []float32) int32 {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return int32(best)
}

// TestStoriesGreedy runs the real stories260K models through the engine
// on these kernels: on the F32 file the greedy ids must equal
// llama.cpp's; on the quantized files they must equal the reference
// backend's, and the first logits must stay close to llama.cpp's.
func TestStoriesGreedy(t *testing.T) {
	for _, name := range []string{"stories260K", "stories260K-Q8_0", "stories260K-Q4_0"} {
		t.Run(name, func(t *testing.T) {
			out, err := refdata.LoadOutput(name + ".once-upon")
			if err != nil {
				t.Fatal(err)
			}
			path, err := refdata.Path("models", name+".gguf")
			if err != nil {
				t.Fatal(err)
			}
			ref, err := refdata.LoadLogits(name+".once-upon", out.NVocab)
			if err != nil {
				t.Fatal(err)
			}
			for _, threads := range []int{1, 2} {
				for _, noVNNI := range []bool{true, false} {
					k, err := NewWithOptions(Options{Threads: threads, DisableVNNI: noVNNI})
					if err != nil {
						t.Fatal(err)
					}
					be := engine.NewBackend(k, engine.Options{Name: Name, Threads: threads})
					ids, logits := greedy(t, be, path, out.PromptIDs, len(out.GenIDs))
					k.(*Kernels).Close()
					want := out.GenIDs
					if name != "stories260K" {
						rb := engine.NewBackend(reference.New(), engine.Options{Name: "reference", Threads: 1})
						want, _ = greedy(t, rb, path, out.PromptIDs, len(out.GenIDs))
					}
					for i := range want {
						if ids[i] != want[i] {
							t.Fatalf("threads=%d noVNNI=%v: token %d = %d, want %d\ngot  %v\nwant %v", threads, noVNNI, i, ids[i], want[i], ids, want)
						}
					}
					if e := refdata.NMSE(logits, ref[0]); e > 5e-3 {
						t.Errorf("threads=%d noVNNI=%v: first logits NMSE vs llama.cpp %.3g", threads, noVNNI, e)
					} else {
						t.Logf("threads=%d noVNNI=%v: first logits NMSE vs llama.cpp %.3g", threads, noVNNI, e)
					}
				}
			}
		})
	}
}

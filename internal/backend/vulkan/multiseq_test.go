//go:build cgo && vulkan_headers

package vulkan

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/internal/refdata"
)

// TestDecodeBatchMatchesSolo decodes three sessions' prompts (of
// different lengths) and then token-by-token steps as merged batches
// (one graph, one command buffer per micro-batch) and checks every
// session's logits against the same session decoded alone: the dense
// path, sliding windows with soft caps, and expert routing, with whole
// and split micro-batches (a sequence cut between two command buffers).
// The bound, NMSE ≤ 1e-7 (100× below the conformance bound), allows
// for the batch choosing another matmul shader (tiled at ≥ 8 rows),
// which sums in another order; greedy ids must be equal.
func TestDecodeBatchMatchesSolo(t *testing.T) {
	b := testBackend(t)
	ctx := context.Background()
	root, err := refdata.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, arch := range []string{"llama", "gemma2", "qwen3moe"} {
		for _, ub := range []int{0, 4} {
			t.Run(fmt.Sprintf("%s/ub%d", arch, ub), func(t *testing.T) {
				mi, err := b.LoadModel(ctx, backends.LoadRequest{Path: filepath.Join(root, "testdata", "arch", arch+".gguf")})
				if err != nil {
					t.Fatal(err)
				}
				defer b.UnloadModel(ctx, mi.ID)
				if ub > 0 {
					lm, release, err := b.reg.Model(mi.ID)
					if err != nil {
						t.Fatal(err)
					}
					b.dev.mu.Lock()
					lm.x.ub = ub
					b.dev.mu.Unlock()
					release()
				}
				prompts := [][]int32{{1, 5, 9, 13, 17, 21, 25}, {2, 4}, {3, 6, 9, 12, 15, 18, 21, 24, 27, 30}}
				var solo, merged []backends.SessionID
				for range prompts {
					for _, dst := range []*[]backends.SessionID{&solo, &merged} {
						s, err := b.OpenSession(ctx, mi.ID, 64)
						if err != nil {
							t.Fatal(err)
						}
						defer b.CloseSession(ctx, s)
						*dst = append(*dst, s)
					}
				}
				feed := prompts
				for step := 0; step < 8; step++ {
					items := make([]BatchItem, len(feed))
					for i := range feed {
						items[i] = BatchItem{Session: merged[i], Tokens: feed[i]}
					}
					got, err := b.DecodeBatch(ctx, items)
					if err != nil {
						t.Fatalf("step %d: %v", step, err)
					}
					next := make([][]int32, len(feed))
					for i := range feed {
						want, err := b.Decode(ctx, backends.DecodeRequest{Session: solo[i], Tokens: feed[i], Want: backends.WantLogits})
						if err != nil {
							t.Fatal(err)
						}
						if n := refdata.NMSE(got[i], want.Logits); !(n <= 1e-7) {
							t.Errorf("step %d sequence %d: merged vs solo logits NMSE %.3g", step, i, n)
						}
						g, w := argmax(got[i]), argmax(want.Logits)
						if g != w {
							t.Errorf("step %d sequence %d: greedy %d merged, %d solo", step, i, g, w)
						}
						next[i] = []int32{int32(w)}
					}
					feed = next
				}
			})
		}
	}
	// Errors: the same session twice, an empty item, a context overflow;
	// no session changes.
	mi, err := b.LoadModel(ctx, backends.LoadRequest{Path: filepath.Join(root, "testdata", "arch", "llama.gguf")})
	if err != nil {
		t.Fatal(err)
	}
	defer b.UnloadModel(ctx, mi.ID)
	s, err := b.OpenSession(ctx, mi.ID, 8)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.DecodeBatch(ctx, []BatchItem{{s, []int32{1}}, {s, []int32{2}}}); err == nil {
		t.Error("a session twice in one batch was accepted")
	}
	if _, err := b.DecodeBatch(ctx, []BatchItem{{s, nil}}); !errors.Is(err, backends.ErrInvalidArgument) {
		t.Errorf("empty item: %v", err)
	}
	if _, err := b.DecodeBatch(ctx, []BatchItem{{s, make([]int32, 9)}}); !errors.Is(err, backends.ErrContextFull) {
		t.Errorf("overfull item: %v", err)
	}
	// Two batches over the same sessions in opposite orders, at once,
	// must not wait on each other.
	s2, err := b.OpenSession(ctx, mi.ID, 64)
	if err != nil {
		t.Fatal(err)
	}
	s3, err := b.OpenSession(ctx, mi.ID, 64)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, items := range [][]BatchItem{{{s2, []int32{1}}, {s3, []int32{2}}}, {{s3, []int32{3}}, {s2, []int32{4}}}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				if _, err := b.DecodeBatch(ctx, items); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// argmax returns the index of the largest element.
func argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

// TestConcurrentDecodesMerge has 8 sessions prompt and generate at the
// same time through Decode (the plugin's path): calls that wait for the
// device together run as one pass, and every session's greedy ids and
// logits equal its run alone (NMSE ≤ 1e-7, see above).
func TestConcurrentDecodesMerge(t *testing.T) {
	b := testBackend(t)
	ctx := context.Background()
	root, err := refdata.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, arch := range []string{"llama", "qwen3moe"} {
		t.Run(arch, func(t *testing.T) {
			mi, err := b.LoadModel(ctx, backends.LoadRequest{Path: filepath.Join(root, "testdata", "arch", arch+".gguf")})
			if err != nil {
				t.Fatal(err)
			}
			defer b.UnloadModel(ctx, mi.ID)
			const nSess, nGen = 8, 8
			prompt := func(i int) []int32 {
				p := make([]int32, 3+5*i)
				for j := range p {
					p[j] = int32(1 + (i*31+j*7)%(mi.NVocab-1))
				}
				return p
			}
			// run generates nGen greedy tokens after session i's prompt and
			// returns every step's logits.
			run := func(i int) ([][]float32, error) {
				sid, err := b.OpenSession(ctx, mi.ID, 128)
				if err != nil {
					return nil, err
				}
				defer b.CloseSession(ctx, sid)
				var out [][]float32
				feed := prompt(i)
				for range nGen {
					r, err := b.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: feed, Want: backends.WantLogits})
					if err != nil {
						return nil, err
					}
					out = append(out, r.Logits)
					feed = []int32{int32(argmax(r.Logits))}
				}
				return out, nil
			}
			solo := make([][][]float32, nSess)
			for i := range nSess {
				if solo[i], err = run(i); err != nil {
					t.Fatal(err)
				}
			}
			lm, release, err := b.reg.Model(mi.ID)
			if err != nil {
				t.Fatal(err)
			}
			merged0 := lm.q.merged.Load()
			release()
			got := make([][][]float32, nSess)
			errs := make([]error, nSess)
			var wg sync.WaitGroup
			for i := range nSess {
				wg.Add(1)
				go func() {
					defer wg.Done()
					got[i], errs[i] = run(i)
				}()
			}
			wg.Wait()
			for i := range nSess {
				if errs[i] != nil {
					t.Fatalf("session %d: %v", i, errs[i])
				}
				for step := range nGen {
					if n := refdata.NMSE(got[i][step], solo[i][step]); !(n <= 1e-7) {
						t.Errorf("session %d step %d: NMSE %.3g against its solo run", i, step, n)
					}
					if g, w := argmax(got[i][step]), argmax(solo[i][step]); g != w {
						t.Errorf("session %d step %d: greedy %d, alone %d", i, step, g, w)
					}
				}
			}
			merged := lm.q.merged.Load() - merged0
			t.Logf("%d passes held more than one session", merged)
			if merged == 0 {
				t.Error("no pass merged two sessions")
			}
		})
	}
}

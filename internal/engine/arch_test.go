package engine_test

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/internal/backend/reference"
	"github.com/realmrt/realm/internal/engine"
	"github.com/realmrt/realm/internal/refdata"
)

// archCase is a synthetic model of testdata/arch and llama.cpp's greedy
// run on it (see testdata/arch/README.md).
type archCase struct {
	PromptIDs []int32     `json:"prompt_ids"`
	IDs       []int32     `json:"ids"`
	Logits    [][]float32 `json:"logits"`
}

// ArchNames are the synthetic models of testdata/arch.
var archNames = []string{"llama", "llama3", "mixtral", "qwen2", "qwen3", "qwen3moe", "gemma2", "gemma3", "phi3"}

func loadArchCase(t testing.TB, name string) (string, *archCase) {
	t.Helper()
	root, err := refdata.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "testdata", "arch")
	b, err := os.ReadFile(filepath.Join(dir, name+".llamacpp.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c archCase
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, name+".gguf"), &c
}

// nmse is Σ(a−b)²/Σb².
func nmse(a, b []float32) float64 {
	var num, den float64
	for i := range b {
		d := float64(a[i]) - float64(b[i])
		num += d * d
		den += float64(b[i]) * float64(b[i])
	}
	return num / den
}

// top2 returns the argmax of x and its margin over the runner-up.
func top2(x []float32) (int32, float32) {
	best, second := -1, -1
	for i, v := range x {
		if best < 0 || v > x[best] {
			best, second = i, best
		} else if second < 0 || v > x[second] {
			second = i
		}
	}
	return int32(best), x[best] - x[second]
}

// CheckArchRun decodes the case's prompt and its greedy ids on session
// sid of b and compares every step's logits with llama.cpp's.
func checkArchRun(t *testing.T, b backends.Backend, sid backends.SessionID, c *archCase) {
	t.Helper()
	ctx := context.Background()
	feed := c.PromptIDs
	var worst float64
	for step, want := range c.Logits {
		res, err := b.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: feed, Want: backends.WantLogits})
		if err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		e := nmse(res.Logits, want)
		worst = max(worst, e)
		if e > 1e-5 {
			t.Errorf("step %d: NMSE %.3g > 1e-5", step, e)
		}
		got, _ := top2(res.Logits)
		wantID, margin := top2(want)
		if wantID != c.IDs[step] {
			t.Fatalf("step %d: llama.cpp's logits pick %d but it generated %d", step, wantID, c.IDs[step])
		}
		if margin > 0.02 && got != wantID {
			t.Errorf("step %d: greedy id %d, llama.cpp %d (margin %.3g)", step, got, wantID, margin)
		}
		feed = []int32{c.IDs[step]}
	}
	t.Logf("%d steps, worst NMSE %.3g", len(c.Logits), worst)
}

// TestArchitecturesMatchLlamaCpp runs every synthetic architecture on
// the reference kernels in process.
func TestArchitecturesMatchLlamaCpp(t *testing.T) {
	for _, name := range archNames {
		t.Run(name, func(t *testing.T) {
			path, c := loadArchCase(t, name)
			b := engine.NewBackend(reference.New(), engine.Options{Name: "reference"})
			ctx := context.Background()
			mi, err := b.LoadModel(ctx, backends.LoadRequest{Path: path})
			if err != nil {
				t.Fatal(err)
			}
			sid, err := b.OpenSession(ctx, mi.ID, 256)
			if err != nil {
				t.Fatal(err)
			}
			checkArchRun(t, b, sid, c)
		})
	}
}

var _ = math.Abs

package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/gguf"
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
	return loadArchRun(t, name, name)
}

// loadArchRun returns testdata/arch/MODEL.gguf and RUN.llamacpp.json.
func loadArchRun(t testing.TB, model, run string) (string, *archCase) {
	t.Helper()
	root, err := refdata.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "testdata", "arch")
	name := model
	b, err := os.ReadFile(filepath.Join(dir, run+".llamacpp.json"))
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
// the reference kernels in process; phi3-ctx2048 runs phi3 in a context
// beyond its original one, where LongRoPE switches to the long factors
// (llama.cpp ran with --ctx 2048).
func TestArchitecturesMatchLlamaCpp(t *testing.T) {
	for _, name := range append(slices.Clone(archNames), "phi3-ctx2048") {
		t.Run(name, func(t *testing.T) {
			model, nCtx := name, 256
			if name == "phi3-ctx2048" {
				model, nCtx = "phi3", 2048
			}
			path, c := loadArchRun(t, model, name)
			b := engine.NewBackend(reference.New(), engine.Options{Name: "reference"})
			ctx := context.Background()
			mi, err := b.LoadModel(ctx, backends.LoadRequest{Path: path})
			if err != nil {
				t.Fatal(err)
			}
			sid, err := b.OpenSession(ctx, mi.ID, nCtx)
			if err != nil {
				t.Fatal(err)
			}
			checkArchRun(t, b, sid, c)
		})
	}
}

// TestArchBadInput edits every architecture key and tensor of the
// synthetic models (removed, zero, huge, wrong type) and checks that
// loading fails cleanly or succeeds, never panics, that a removed norm
// is an error and that an extra tensor is an error naming it.
func TestArchBadInput(t *testing.T) {
	for _, name := range archNames {
		t.Run(name, func(t *testing.T) {
			path, _ := loadArchCase(t, name)
			f, err := gguf.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			arch, _ := f.String("general.architecture")
			load := func(edit func(*gguf.File)) (err error) {
				c := *f.File
				c.Metadata = slices.Clone(f.Metadata)
				c.Tensors = slices.Clone(f.Tensors)
				edit(&c)
				defer func() {
					if r := recover(); r != nil {
						err = fmt.Errorf("panic: %v", r)
						t.Error(err)
					}
				}()
				_, err = engine.NewModel(&c, f.TensorData, reference.New(), nil)
				return err
			}
			for i, kv := range f.Metadata {
				if !strings.HasPrefix(kv.Key, arch+".") {
					continue
				}
				for _, v := range []gguf.Value{gguf.NewUint32(0), gguf.NewUint64(1 << 40), gguf.NewString("x"), gguf.NewFloat32(-1)} {
					load(func(c *gguf.File) { c.Metadata[i].Value = v })
				}
				load(func(c *gguf.File) { c.Metadata = slices.Delete(c.Metadata, i, i+1) })
			}
			for i, ti := range f.Tensors {
				// Optional tensors (biases, output.weight, rope factors)
				// may go; anything else must be refused with a model error.
				err := load(func(c *gguf.File) { c.Tensors = slices.Delete(c.Tensors, i, i+1) })
				if err != nil && !errors.Is(err, backends.ErrInvalidModel) && !errors.Is(err, backends.ErrUnsupported) {
					t.Errorf("without %s: %v", ti.Name, err)
				}
				if strings.HasSuffix(ti.Name, "norm.weight") && err == nil {
					t.Errorf("without %s: loaded", ti.Name)
				}
			}
			err = load(func(c *gguf.File) {
				x := c.Tensors[1]
				x.Name = "blk.0.attn_sinks.weight"
				c.Tensors = append(c.Tensors, x)
			})
			if !errors.Is(err, backends.ErrUnsupported) || !strings.Contains(err.Error(), "attn_sinks") {
				t.Errorf("extra tensor: %v", err)
			}
		})
	}
}

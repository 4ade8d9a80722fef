//go:build cgo && vulkan_headers

package vulkan

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/gguf"
	"github.com/realmrt/realm/internal/backend/reference"
	"github.com/realmrt/realm/internal/conformance"
	"github.com/realmrt/realm/internal/engine"
	"github.com/realmrt/realm/internal/refdata"
)

// archDir returns testdata/arch.
func archDir(t *testing.T) string {
	t.Helper()
	root, err := refdata.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "testdata", "arch")
}

// TestCheckGraph checks that every architecture's graph uses only ops
// the device records, and that a graph op the backend lacks is refused
// by name.
func TestCheckGraph(t *testing.T) {
	for _, name := range []string{"llama", "llama3", "mixtral", "qwen2", "qwen2yarn", "qwen3", "qwen3moe", "gemma2", "gemma3", "phi3"} {
		t.Run(name, func(t *testing.T) {
			f, err := gguf.Open(filepath.Join(archDir(t), name+".gguf"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			m, err := engine.NewModel(f.File, f.TensorData, reference.New(), supportedType)
			if err != nil {
				t.Fatal(err)
			}
			if err := checkGraph(m); err != nil {
				t.Fatalf("refused: %v", err)
			}
		})
	}
}

// TestArchConformance runs every testdata/arch case (llama.cpp's logits
// for a greedy run) on the device through the graph executor, with the
// bounds of `realm conformance`: NMSE ≤ 1e-5 per step for F32 (and the
// greedy ids wherever llama.cpp's top-2 margin exceeds 0.02), ≤ 1e-3
// for Q8_0/Q4_0.
func TestArchConformance(t *testing.T) {
	b := testBackend(t)
	dir := archDir(t)
	ctx := context.Background()
	for _, name := range conformance.ArchCases() {
		t.Run(name, func(t *testing.T) {
			limit := 1e-5
			if strings.Contains(name, "-") {
				limit = 1e-3
			}
			res, err := conformance.RunArchCase(ctx, b, dir, name)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("max NMSE %.3g, mean %.3g, greedy prefix %d/%d", res.MaxNMSE, res.MeanNMSE, res.Prefix, res.Steps)
			if !(res.MaxNMSE <= limit) || math.IsNaN(res.MaxNMSE) {
				t.Errorf("max NMSE %.3g exceeds %.3g", res.MaxNMSE, limit)
			}
		})
	}
}

// TestCheckGraphRefusesMissingOp checks the error for a graph op the
// backend does not record.
func TestCheckGraphRefusesMissingOp(t *testing.T) {
	f, err := gguf.Open(filepath.Join(archDir(t), "gemma2.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := engine.NewModel(f.File, f.TensorData, reference.New(), supportedType)
	if err != nil {
		t.Fatal(err)
	}
	err = checkOps(m, func(op string) bool { return op != engine.GOpAttnSoftCap })
	if !errors.Is(err, backends.ErrUnsupported) || !strings.Contains(err.Error(), engine.GOpAttnSoftCap) {
		t.Fatalf("got %v, want ErrUnsupported naming %s", err, engine.GOpAttnSoftCap)
	}
}

// TestLongRoPEContext runs phi3 in a 2048-position session, beyond its
// original context, where LongRoPE switches to the long factors
// (llama.cpp ran with --ctx 2048): NMSE ≤ 1e-5 per step and greedy ids
// equal wherever llama.cpp's top-2 margin exceeds 0.02.
func TestLongRoPEContext(t *testing.T) {
	b := testBackend(t)
	dir := archDir(t)
	raw, err := os.ReadFile(filepath.Join(dir, "phi3-ctx2048.llamacpp.json"))
	if err != nil {
		t.Fatal(err)
	}
	var run struct {
		PromptIDs []int32     `json:"prompt_ids"`
		IDs       []int32     `json:"ids"`
		Logits    [][]float32 `json:"logits"`
	}
	if err := json.Unmarshal(raw, &run); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	mi, err := b.LoadModel(ctx, backends.LoadRequest{Path: filepath.Join(dir, "phi3.gguf")})
	if err != nil {
		t.Fatal(err)
	}
	defer b.UnloadModel(ctx, mi.ID)
	sid, err := b.OpenSession(ctx, mi.ID, 2048)
	if err != nil {
		t.Fatal(err)
	}
	defer b.CloseSession(ctx, sid)
	feed := run.PromptIDs
	worst := 0.0
	for step, want := range run.Logits {
		r, err := b.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: feed, Want: backends.WantLogits})
		if err != nil {
			t.Fatal(err)
		}
		n := refdata.NMSE(r.Logits, want)
		if !(n <= 1e-5) {
			t.Fatalf("step %d: NMSE %.3g", step, n)
		}
		worst = math.Max(worst, n)
		w, second := 0, -1
		for i := 1; i < len(want); i++ {
			if v := want[i]; v > want[w] {
				w, second = i, w
			} else if second < 0 || v > want[second] {
				second = i
			}
		}
		if g := argmax(r.Logits); want[w]-want[second] > 0.02 && g != w {
			t.Fatalf("step %d: greedy %d, llama.cpp %d", step, g, w)
		}
		feed = []int32{run.IDs[step]}
	}
	t.Logf("%d steps, worst NMSE %.3g", len(run.Logits), worst)
}

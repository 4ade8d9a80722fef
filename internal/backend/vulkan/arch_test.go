//go:build cgo && vulkan_headers

package vulkan

import (
	"context"
	"errors"
	"math"
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

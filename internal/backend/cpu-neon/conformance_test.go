package cpuneon

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/realmrt/realm/internal/backend/reference"
	"github.com/realmrt/realm/internal/conformance"
	"github.com/realmrt/realm/internal/engine"
	"github.com/realmrt/realm/internal/refdata"
)

// TestConformance runs the shared conformance suite (op cases against the
// reference backend, model cases against llama.cpp's logits) on cpu-neon
// in-process: under QEMU this is the suite on arm64, once per CPU model
// (scripts/neon-test.sh), so both the SDOT and the plain path pass it.
func TestConformance(t *testing.T) {
	dir := t.TempDir()
	if err := refdata.Extract(dir); err != nil {
		t.Fatal(err)
	}
	k, err := New(2)
	if err != nil {
		t.Fatal(err)
	}
	defer k.(engine.Closer).Close()
	sut := engine.NewBackend(k, engine.Options{Name: "cpu-neon", Version: "test", Features: Features()})
	ref := engine.NewBackend(reference.New(), engine.Options{Name: "reference", Version: "test"})
	root, err := refdata.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	rep := conformance.Run(context.Background(), "cpu-neon", sut, ref,
		conformance.Options{ReferenceDir: dir, ArchDir: filepath.Join(root, "testdata", "arch")})
	for _, r := range rep.Results {
		if r.Status == conformance.Fail {
			t.Errorf("%s: %s", r.Case, r.Detail)
		}
		if r.Kind == "model" {
			t.Logf("%s: NMSE %.3g (limit %.3g) %s", r.Case, r.NMSE, r.Limit, r.Detail)
		}
	}
	if rep.Failed != 0 || rep.Passed < 150 {
		t.Errorf("summary %s: want ≥150 passed, none failed", rep.Summary())
	}
	t.Logf("conformance %s in %.1fs; path counters: %v", rep.Summary(), rep.Duration, k.(*Kernels).Stats())
}

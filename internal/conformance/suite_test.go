package conformance

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unsafe"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/gguf"
	"github.com/realmrt/realm/internal/backend/reference"
	"github.com/realmrt/realm/internal/engine"
	"github.com/realmrt/realm/internal/refdata"
	"github.com/realmrt/realm/loader"
)

func refBackend(k engine.Kernels) backends.Backend {
	return engine.NewBackend(k, engine.Options{Name: "reference", Version: "test"})
}

// TestReferenceAgainstItself runs the whole suite in-process with the
// reference kernels on both sides: every op case must pass (exactly,
// since both sides compute the same thing) and the model cases must meet
// their llama.cpp bounds.
func TestReferenceAgainstItself(t *testing.T) {
	dir := t.TempDir()
	if err := refdata.Extract(dir); err != nil {
		t.Fatal(err)
	}
	root, err := refdata.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rep := Run(ctx, "reference", refBackend(reference.New()), refBackend(reference.New()),
		Options{ReferenceDir: dir, ArchDir: filepath.Join(root, "testdata", "arch")})
	for _, r := range rep.Results {
		if r.Status == Fail {
			t.Errorf("%s: %s", r.Case, r.Detail)
		}
		if r.Kind == "op" && r.NMSE > 0 {
			t.Errorf("%s: reference against itself has NMSE %g", r.Case, r.NMSE)
		}
	}
	if rep.Passed < 150 || rep.Skipped != 0 {
		t.Errorf("summary %s: want ≥150 cases passed and none skipped", rep.Summary())
	}
	t.Log(rep.Summary())
}

// perturbed wraps the reference kernels with one seeded defect.
type perturbed struct {
	engine.Kernels
	defect string
}

func (p perturbed) GetRows(out []float32, w *engine.Weight, ids []int32) {
	p.Kernels.GetRows(out, w, ids)
	if p.defect == "ulp" && len(out) > 0 {
		i := len(out) / 2
		out[i] = math.Nextafter32(out[i], float32(math.Inf(1)))
	}
}

func (p perturbed) Add(out, a, b []float32) {
	p.Kernels.Add(out, a, b)
	if p.defect == "oob" && len(out) > 0 {
		// An off-by-one loop bound: one element written past the end,
		// as an assembly kernel would (no bounds check).
		past := unsafe.Slice(&out[0], len(out)+1)
		past[len(out)] = out[len(out)-1]
	}
}

func (p perturbed) RMSNorm(out, x, weight []float32, n int, eps float32) {
	p.Kernels.RMSNorm(out, x, weight, n, eps)
	if p.defect == "scale" && len(out) > 0 {
		for i := range out {
			out[i] *= 1 + 1e-3
		}
	}
}

// TestSuiteCatchesSeededDefects proves the suite fails on small defects:
// a one-ulp error in an exact op, an out-of-bounds write, and a 0.1%
// scale error in a float op.
func TestSuiteCatchesSeededDefects(t *testing.T) {
	tests := []struct {
		defect string
		filter string
		want   string // a case name prefix that must fail
	}{
		{"ulp", "^get_rows/", "get_rows/"},
		{"oob", "^add/", "add/"},
		{"scale", "^rmsnorm/", "rmsnorm/"},
	}
	ctx := context.Background()
	for _, tc := range tests {
		t.Run(tc.defect, func(t *testing.T) {
			sut := refBackend(perturbed{Kernels: reference.New(), defect: tc.defect})
			rep := Run(ctx, "perturbed-"+tc.defect, sut, refBackend(reference.New()),
				Options{Filter: regexp.MustCompile(tc.filter), SkipModels: true})
			if rep.Failed == 0 {
				t.Fatalf("suite missed the %s defect: %s", tc.defect, rep.Summary())
			}
			for _, r := range rep.Results {
				if r.Status != Fail && strings.HasPrefix(r.Case, tc.want) {
					t.Errorf("%s: %s with defect %s, want fail", r.Case, r.Status, tc.defect)
				}
			}
		})
	}
}

func TestCompare(t *testing.T) {
	inf, nan := float32(math.Inf(1)), float32(math.NaN())
	tests := []struct {
		name      string
		got, want []float32
		limit     float64
		ok        bool
	}{
		{"equal exact", []float32{1, 2}, []float32{1, 2}, 0, true},
		{"one ulp exact", []float32{1, math.Nextafter32(2, 3)}, []float32{1, 2}, 0, false},
		{"one ulp nmse", []float32{1, math.Nextafter32(2, 3)}, []float32{1, 2}, 1e-7, true},
		{"nan", []float32{nan, 2}, []float32{1, 2}, 1, false},
		{"inf match", []float32{inf, 2}, []float32{inf, 2}, 1e-7, true},
		{"inf sign", []float32{-inf, 2}, []float32{inf, 2}, 1e-7, false},
		{"inf vs finite", []float32{inf, 2}, []float32{1, 2}, 1, false},
		{"length", []float32{1}, []float32{1, 2}, 1, false},
		{"over limit", []float32{1.1, 2}, []float32{1, 2}, 1e-4, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, detail := Compare(tc.got, tc.want, tc.limit)
			if (detail == "") != tc.ok {
				t.Fatalf("Compare ok=%v (%q), want %v", detail == "", detail, tc.ok)
			}
		})
	}
}

// TestTargetsSkipReasons: every backend comes back, with a reason when
// it cannot run, and NotBuilt only when a build would fix it.
func TestTargetsSkipReasons(t *testing.T) {
	self := os.Args[0] // a file that exists
	cfg := &loader.Config{Backends: []loader.BackendConfig{
		{Name: "ok", Arch: loader.ArchAny, Binary: self},
		{Name: "unbuilt", Arch: loader.ArchAny, Binary: filepath.Join(t.TempDir(), "missing")},
		{Name: "other-arch", Arch: "s390x", Binary: filepath.Join(t.TempDir(), "missing")},
		{Name: "no-feature", Arch: loader.ArchAny, Binary: self, Requires: []string{"AVX512F"}},
	}}
	got, err := Targets(cfg, loader.Machine{Arch: "amd64", Features: []string{"AVX2"}}, "all")
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name     string
		skip     string
		notBuilt bool
	}{
		{"ok", "", false},
		{"unbuilt", "binary not built", true},
		{"other-arch", "needs s390x", false},
		{"no-feature", "CPU lacks AVX512F", false},
	}
	if len(got) != len(want) {
		t.Fatalf("%d targets, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Name != w.name || (w.skip == "") != (g.Skip == "") || !strings.Contains(g.Skip, w.skip) || g.NotBuilt != w.notBuilt {
			t.Errorf("target %d = %q skip %q notBuilt %v, want %q %q %v", i, g.Name, g.Skip, g.NotBuilt, w.name, w.skip, w.notBuilt)
		}
	}
}

// TestWeightTypesComplete checks that the op cases cover exactly the
// weight types a model file can store.
func TestWeightTypesComplete(t *testing.T) {
	got := map[gguf.Type]bool{}
	for _, ty := range WeightTypes() {
		if got[ty] {
			t.Errorf("%v listed twice", ty)
		}
		got[ty] = true
	}
	for _, ty := range gguf.WeightTypes() {
		if !got[ty] {
			t.Errorf("no op cases for weight type %v", ty)
		}
		delete(got, ty)
	}
	for ty := range got {
		t.Errorf("%v is not a gguf weight type", ty)
	}
}

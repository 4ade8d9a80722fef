package conformance

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/realmrt/realm/internal/backend/reference"
	"github.com/realmrt/realm/internal/engine"
	"github.com/realmrt/realm/internal/refdata"
	"github.com/realmrt/realm/loader"
)

// TestBackends runs the suite once per backend declared in the
// repository's plugins.hcl, each through a real plugin process built
// from this tree. A backend this machine cannot run is reported as
// skipped with the reason.
func TestBackends(t *testing.T) {
	root, err := refdata.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	refDir := t.TempDir()
	if err := refdata.Extract(refDir); err != nil {
		t.Fatal(err)
	}
	cfg, err := loader.LoadConfig(filepath.Join(root, "plugins.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	targets, err := Targets(cfg, loader.Detect(), "all")
	if err != nil {
		t.Fatal(err)
	}
	binDir := t.TempDir()
	guest := filepath.Join(binDir, "abiguest.wasm")
	build := exec.Command("go", "build", "-o", guest, "./internal/conformance/abiguest")
	build.Dir, build.Env = root, append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the ABI guest: %v\n%s", err, out)
	}
	abiWasm, err := os.ReadFile(guest)
	if err != nil {
		t.Fatal(err)
	}
	ref := engine.NewBackend(reference.New(), engine.Options{Name: "reference"})
	log := hclog.New(&hclog.LoggerOptions{Name: "conformance", Output: os.Stderr, Level: hclog.Error})
	for _, tg := range targets {
		t.Run(tg.Name, func(t *testing.T) {
			if tg.Skip != "" && !tg.NotBuilt {
				t.Skip(tg.Skip)
			}
			pkg := "./cmd/realm-backend-" + tg.Name
			if _, err := os.Stat(filepath.Join(root, pkg)); err != nil {
				t.Fatalf("backend %s of plugins.hcl has no plugin in this tree (%s)", tg.Name, pkg)
			}
			bin := filepath.Join(binDir, "realm-backend-"+tg.Name)
			// The plugin gets this test binary's build tags (make passes
			// vulkan_headers when the Vulkan headers are installed).
			args := []string{"build", "-o", bin}
			if tags := buildTags(); tags != "" {
				args = append(args, "-tags", tags)
			}
			cmd := exec.Command("go", append(args, pkg)...)
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("build %s: %v\n%s", pkg, err, out)
			}
			tg.Spec.Binary, tg.Skip, tg.NotBuilt = bin, "", false
			rep := RunTarget(context.Background(), tg, ref, Options{ReferenceDir: refDir, ArchDir: filepath.Join(root, "testdata", "arch"), ABIGuest: abiWasm}, log)
			for _, r := range rep.Results {
				if r.Status == Fail {
					t.Errorf("%s [%s %s]: %s", r.Case, r.Types, r.Shape, r.Detail)
				}
			}
			if rep.Reason != "" {
				t.Skip(rep.Reason)
			}
			if rep.Passed == 0 {
				t.Errorf("no case passed: %s", rep.Summary())
			}
			t.Log(rep.Summary())
		})
	}
	t.Run("plugin-boundary", func(t *testing.T) {
		rep := RunPluginBoundary(context.Background(), log)
		for _, r := range rep.Results {
			if r.Status != Pass {
				t.Errorf("%s: %s %s", r.Case, r.Status, r.Detail)
			}
		}
	})
}

// buildTags returns the -tags this test binary was built with.
func buildTags() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-tags" {
				return s.Value
			}
		}
	}
	return ""
}

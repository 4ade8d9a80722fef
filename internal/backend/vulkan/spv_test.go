package vulkan

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestSPIRVUpToDate recompiles every shader with glslc (when installed)
// and checks that the committed SPIR-V matches.
func TestSPIRVUpToDate(t *testing.T) {
	if _, err := exec.LookPath("glslc"); err != nil {
		t.Skip("glslc not installed: cannot check the committed SPIR-V against the GLSL sources")
	}
	dir := t.TempDir()
	cmd := exec.Command("./gen.sh")
	cmd.Env = append(os.Environ(), "OUT="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gen.sh: %v\n%s", err, out)
	}
	fresh, err := filepath.Glob(filepath.Join(dir, "*.spv"))
	if err != nil || len(fresh) == 0 {
		t.Fatalf("no SPIR-V compiled: %v", err)
	}
	committed, _ := filepath.Glob("spv/*.spv")
	if len(committed) != len(fresh) {
		t.Errorf("%d committed .spv files, %d compiled: run go generate ./internal/backend/vulkan", len(committed), len(fresh))
	}
	for _, f := range fresh {
		want, _ := os.ReadFile(f)
		got, err := os.ReadFile(filepath.Join("spv", filepath.Base(f)))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("spv/%s is stale or missing: run go generate ./internal/backend/vulkan", filepath.Base(f))
		}
	}
}

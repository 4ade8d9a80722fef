package loader

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/realmrt/realm/internal/refdata"
)

// buildReferencePlugin builds the reference plugin into dir/bin.
func buildReferencePlugin(t *testing.T, dir string) string {
	t.Helper()
	root, err := refdata.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "bin", "realm-backend-reference")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/realm-backend-reference")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the reference plugin: %v\n%s", err, b)
	}
	return out
}

func TestOpen(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts a plugin")
	}
	dir := t.TempDir()
	bin := buildReferencePlugin(t, dir)
	src := storiesPath(t)
	cfgPath := filepath.Join(dir, "plugins.hcl")
	// "vulkan" is the reference binary: it starts, reports no device and
	// is vetoed by the real probe.
	conf := fmt.Sprintf(`
models_dir = %q
backend "vulkan" {
  binary = %q
  gpu = true
  probe = true
  priority = 100
}
backend "reference" { priority = 10 }
backend "cpu-x" { priority = 50 }
model "stories260k" {
  path = "stories260K.gguf"
  sha256 = %q
}
`, filepath.Dir(src), bin, storiesSHA256)
	if err := os.WriteFile(cfgPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	rt, err := Open(ctx, Options{ConfigPath: cfgPath})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	d := rt.Decision
	if d.Chosen != "reference" || strings.Join(d.Order, ",") != "reference" {
		t.Errorf("decision: chosen %q order %v", d.Chosen, d.Order)
	}
	if c, _ := d.Candidate("vulkan"); c.Reason != "vetoed by probe: no device found" || c.Probe == nil || c.Probe.Info == nil {
		t.Errorf("vulkan = %+v", c)
	}
	if c, _ := d.Candidate("cpu-x"); !strings.Contains(c.Reason, "binary not built: run make (bin/realm-backend-cpu-x)") {
		t.Errorf("cpu-x = %+v", c)
	}
	if rt.Supervisor.Active() != "reference" {
		t.Errorf("active = %q", rt.Supervisor.Active())
	}
	m, err := rt.Models.Acquire(ctx, "stories260k")
	if err != nil {
		t.Fatal(err)
	}
	if m.Info.NVocab != 512 || m.BackendName != "reference" || m.Tokenizer == nil {
		t.Errorf("model = %+v", m.Info)
	}
	sid, err := rt.Supervisor.OpenSession(ctx, m.Info.ID, 32)
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Supervisor.CloseSession(ctx, sid); err != nil {
		t.Fatal(err)
	}
	rt.Models.Release(m)
	if err := rt.Close(); err != nil {
		t.Fatal(err)
	}

	// Options.Threads overrides the configured thread count all the way
	// into the plugin.
	rt3, err := Open(ctx, Options{ConfigPath: cfgPath, Threads: 3})
	if err != nil {
		t.Fatal(err)
	}
	info, err := rt3.Supervisor.Info(ctx)
	if err != nil || info.Threads != 3 {
		t.Errorf("Threads: 3 gave Info %+v, %v", info, err)
	}
	rt3.Close()

	for pin, want := range map[string]string{
		"vulkan": "vetoed by probe: no device found",
		"cpu-x":  "binary not built: run make",
		"cuda":   "not declared",
	} {
		_, err := Open(ctx, Options{ConfigPath: cfgPath, Pin: pin})
		if !errors.Is(err, ErrPin) || !strings.Contains(err.Error(), want) {
			t.Errorf("pin %s: %v, want %q", pin, err, want)
		}
	}
	if _, err := Open(ctx, Options{ConfigPath: filepath.Join(dir, "absent.hcl")}); err == nil {
		t.Error("missing config accepted")
	}
}

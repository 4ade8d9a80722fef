package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/realmrt/realm/internal/refdata"
)

// TestGenerateThroughPlugin runs `realm generate --config` against a
// configuration whose only backend is the reference plugin, built here,
// and checks llama.cpp's greedy tokens; a configuration naming a missing
// plugin binary must fail, which shows the plugin path is the one used.
func TestGenerateThroughPlugin(t *testing.T) {
	ref, err := refdata.LoadOutput("stories260K.once-upon")
	if err != nil {
		t.Fatal(err)
	}
	model, err := refdata.Path("models", "stories260K.gguf")
	if err != nil {
		t.Fatal(err)
	}
	root, err := refdata.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "realm-backend-reference")
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		if goBin, err = exec.LookPath("go"); err != nil {
			t.Fatal("no go command to build the plugin:", err)
		}
	}
	build := exec.Command(goBin, "build", "-o", bin, "./cmd/realm-backend-reference")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the reference plugin: %v\n%s", err, out)
	}
	writeConfig := func(name, binary string) string {
		p := filepath.Join(dir, name)
		src := fmt.Sprintf("models_dir = %q\nbackend \"reference\" {\n  binary = %q\n  arch = \"any\"\n}\n", dir, binary)
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}

	cfg := writeConfig("plugins.hcl", bin)
	code, stdout, stderr := runCLI(t, "generate", "--config", cfg, "-m", model, "-p", ref.Prompt, "-n", "64", "--temp", "0", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var out struct {
		IDs []int32 `json:"ids"`
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("output %q: %v", stdout, err)
	}
	if !slices.Equal(out.IDs, ref.GenIDs) {
		t.Errorf("ids %v\nwant %v", out.IDs, ref.GenIDs)
	}

	// By name: the registry resolves <models_dir>/<name>.gguf; names that
	// would leave models_dir are refused before anything is opened.
	data, err := os.ReadFile(model)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tiny-stories.gguf"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = runCLI(t, "generate", "--config", cfg, "-m", "tiny-stories", "-p", ref.Prompt, "-n", "8", "--temp", "0", "--json")
	if code != 0 {
		t.Fatalf("by name: exit %d: %s", code, stderr)
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil || !slices.Equal(out.IDs, ref.GenIDs[:8]) {
		t.Errorf("by name: ids %v (%v), want %v", out.IDs, err, ref.GenIDs[:8])
	}
	for _, name := range []string{"../tiny-stories", "no-such-model"} {
		if code, _, stderr := runCLI(t, "generate", "--config", cfg, "-m", name, "-p", "x", "-n", "1"); code == 0 || !strings.Contains(stderr, name) {
			t.Errorf("-m %q: exit %d, stderr %q", name, code, stderr)
		}
	}

	bad := writeConfig("missing.hcl", filepath.Join(dir, "no-such-plugin"))
	code, _, stderr = runCLI(t, "generate", "--config", bad, "-m", model, "-p", ref.Prompt, "-n", "4", "--temp", "0", "--json")
	if code == 0 || !strings.Contains(stderr, "no-such-plugin") {
		t.Fatalf("a missing plugin binary: exit %d, stderr %q", code, stderr)
	}
}

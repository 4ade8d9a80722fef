package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/realmrt/realm/internal/refdata"
)

// runFixture builds the reference plugin and the generate guest and
// writes a plugins.hcl with an app block for the guest.
func runFixture(t *testing.T) (cfgPath, wasm string) {
	t.Helper()
	root, err := refdata.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, b := range []struct {
		pkg, out string
		wasm     bool
	}{{"./cmd/realm-backend-reference", "realm-backend-reference", false}, {"./examples/generate", "generate.wasm", true}} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, b.out), b.pkg)
		cmd.Dir = root
		cmd.Env = os.Environ()
		if b.wasm {
			cmd.Env = append(cmd.Env, "GOOS=wasip1", "GOARCH=wasm")
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", b.pkg, err, out)
		}
	}
	models := filepath.Join(dir, "models")
	if err := os.Mkdir(models, 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := refdata.Path("models", "stories260K.gguf")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(models, "stories260k.gguf"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	wasm = filepath.Join(dir, "generate.wasm")
	cfgPath = filepath.Join(dir, "plugins.hcl")
	hcl := fmt.Sprintf(`
models_dir = "models"
backend "reference" {
  binary = "realm-backend-reference"
  arch   = "any"
}
app "demo" {
  wasm       = %q
  models     = ["stories*"]
  max_tokens = 3
  timeout    = "30s"
}
`, wasm)
	if err := os.WriteFile(cfgPath, []byte(hcl), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfgPath, wasm
}

func runRunCLI(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	env := &cliEnv{Stdout: &stdout, Stderr: &stderr, Stdin: strings.NewReader(""), Getenv: func(string) string { return "" }}
	code := realMain(context.Background(), env, append([]string{"run"}, args...))
	return code, stdout.String(), stderr.String()
}

func TestRunCommand(t *testing.T) {
	cfg, wasm := runFixture(t)
	cache := t.TempDir()

	// The app block matching the wasm applies: max_tokens 3.
	code, stdout, stderr := runRunCLI("--config", cfg, "--cache-dir", cache, "--json", wasm, "--", "stories260k", "Once upon a time", "20")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if stdout != ", there was\n" {
		t.Errorf("stdout = %q", stdout)
	}
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	var sum runSummary
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil {
		t.Fatalf("summary %q: %v", stderr, err)
	}
	if sum.App != "demo" || sum.Backend != "reference" || sum.ExitCode != 0 || sum.TokensGenerated != 3 || sum.DurationMS <= 0 {
		t.Errorf("summary = %+v", sum)
	}

	// A guest's failure is its exit status.
	code, _, stderr = runRunCLI("--config", cfg, "--cache-dir", cache, wasm, "--", "../etc", "x")
	if code != 1 || !strings.Contains(stderr, "EINVAL") {
		t.Errorf("bad model name: exit %d %q", code, stderr)
	}

	// Usage errors.
	if code, _, _ := runRunCLI("--config", cfg, "--app", "nosuch", wasm); code != 1 {
		t.Errorf("unknown app: exit %d", code)
	}
	if code, _, _ := runRunCLI("--config", cfg); code != 2 {
		t.Errorf("no wasm: exit %d", code)
	}
}

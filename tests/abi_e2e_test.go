package tests

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/realmrt/realm/core"
	"github.com/realmrt/realm/internal/loaderhost"
	"github.com/realmrt/realm/internal/refdata"
	"github.com/realmrt/realm/loader"
)

// abiGoBuild builds packages (relative to the repository root) into dir,
// for the host or, with wasm set, for GOOS=wasip1 GOARCH=wasm.
func abiGoBuild(t *testing.T, dir string, wasm bool, pkgs ...string) {
	t.Helper()
	root, err := refdata.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", append([]string{"build", "-o", dir + string(filepath.Separator)}, pkgs...)...)
	cmd.Dir = root
	cmd.Env = os.Environ()
	if wasm {
		cmd.Env = append(cmd.Env, "GOOS=wasip1", "GOARCH=wasm")
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %v: %v\n%s", pkgs, err, b)
	}
}

// TestABIThroughPlugin runs guests through the whole stack: plugins.hcl,
// loader.Open, the reference plugin process over gRPC, the model cache
// and registry, core and the WASM guest.
func TestABIThroughPlugin(t *testing.T) {
	ref, err := refdata.LoadOutput("stories260K.once-upon")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "bin")
	abiGoBuild(t, bin, false, "./cmd/realm-backend-reference")
	abiGoBuild(t, bin, true, "./examples/sampler", "./examples/generate")

	models := filepath.Join(tmp, "models")
	if err := os.MkdirAll(models, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, file := range map[string]string{"stories260k": "stories260K.gguf", "stories260k-q8": "stories260K-Q8_0.gguf"} {
		src, err := refdata.Path("models", file)
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatalf("reference model: %v", err)
		}
		if err := os.WriteFile(filepath.Join(models, name+".gguf"), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	outside := filepath.Join(tmp, "outside.gguf")
	if err := os.WriteFile(outside, []byte("GGUF outside models_dir"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(models, "escape.gguf")); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(tmp, "plugins.hcl")
	hcl := fmt.Sprintf(`
models_dir = %q
backend "reference" {
  binary   = %q
  arch     = "any"
  priority = 10
}
app "tight" {
  wasm       = %q
  models     = ["stories260k"]
  max_tokens = 5
  timeout    = "20s"
  memory     = "64MiB"
  max_output = "1MiB"
}
`, models, filepath.Join(bin, "realm-backend-reference"), filepath.Join(bin, "generate"))
	if err := os.WriteFile(cfgPath, []byte(hcl), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	log := hclog.New(&hclog.LoggerOptions{Name: "e2e", Output: os.Stderr, Level: hclog.Warn})
	rt, err := loader.Open(ctx, loader.Options{ConfigPath: cfgPath, Pin: "reference", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	host, err := core.NewHost(ctx, core.Config{Models: loaderhost.Models(rt.Models), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close(ctx)
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(bin, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	run := func(wasm []byte, p core.Policy, args ...string) (*core.RunResult, string, string) {
		t.Helper()
		var out, errb bytes.Buffer
		if p.Timeout == 0 {
			p.Timeout = 30 * time.Second
		}
		res, err := host.Run(ctx, core.RunRequest{Wasm: wasm, Args: args, Stdout: &out, Stderr: &errb, Policy: p})
		if err != nil {
			t.Fatalf("run %v: %v\n%s", args, err, errb.String())
		}
		return res, out.String(), errb.String()
	}

	// Greedy decoding owned by the guest reproduces llama.cpp exactly.
	sampler := read("sampler")
	res, out, errs := run(sampler, core.Policy{}, "-greedy", "-ids", "-n", fmt.Sprint(len(ref.GenIDs)), "stories260k", ref.Prompt)
	var ids []string
	for _, id := range ref.GenIDs {
		ids = append(ids, fmt.Sprint(id))
	}
	if res.ExitCode != 0 || !strings.Contains(errs, "ids: "+strings.Join(ids, " ")+"\n") {
		t.Errorf("sampler ids: exit %d\n%s\nwant ids: %s", res.ExitCode, errs, strings.Join(ids, " "))
	}
	if !strings.HasPrefix(out, ref.GenText) {
		t.Errorf("sampler text %q does not start with %q", out, ref.GenText)
	}

	// A symlink escaping models_dir is refused by the registry: EACCES.
	gen := read("generate")
	res, _, errs = run(gen, core.Policy{}, "escape", "x")
	if res.ExitCode != 1 || !strings.Contains(errs, "EACCES") {
		t.Errorf("escape: exit %d %q", res.ExitCode, errs)
	}

	// The app policy of plugins.hcl: only stories260k, at most 5 tokens.
	var tight *loader.AppConfig
	for i := range rt.Config.Apps {
		if rt.Config.Apps[i].Name == "tight" {
			tight = &rt.Config.Apps[i]
		}
	}
	if tight == nil {
		t.Fatal("app tight not parsed")
	}
	p := loaderhost.Policy(tight)
	res, _, errs = run(gen, p, "stories260k-q8", "Once upon a time")
	if res.ExitCode != 1 || !strings.Contains(errs, "EACCES") {
		t.Errorf("policy: exit %d %q", res.ExitCode, errs)
	}
	res, out, _ = run(gen, p, "stories260k", "Once upon a time", "50")
	if res.ExitCode != 0 || res.TokensGenerated != 5 || out != ", there was a little\n" {
		t.Errorf("max_tokens: %+v %q", res, out)
	}
}

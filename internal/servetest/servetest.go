// Package servetest builds what the end-to-end tests of realm serve
// (tests/server, tests/hostile/serve) start from: the backend plugin,
// guest apps and the realm binary, built from this checkout, and a
// models directory holding the reference model.
package servetest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/realmrt/realm/internal/refdata"
)

// Target is one binary to build: package Pkg (relative to the
// repository root) into Out; WASM builds it for wasip1/wasm.
type Target struct {
	Out, Pkg string
	WASM     bool
}

// Common targets.
var (
	Reference = Target{Out: "realm-backend-reference", Pkg: "./cmd/realm-backend-reference"}
	Realm     = Target{Out: "realm", Pkg: "./cmd/realm"}
	Chat      = Target{Out: "chat.wasm", Pkg: "./examples/chat", WASM: true}
	LongGen   = Target{Out: "longgen.wasm", Pkg: "./tests/server/testdata/longgen", WASM: true}
)

// Build builds the targets into bin.
func Build(bin string, targets ...Target) error {
	root, err := refdata.RepoRoot()
	if err != nil {
		return err
	}
	for _, t := range targets {
		cmd := exec.Command("go", "build", "-o", filepath.Join(bin, t.Out), t.Pkg)
		cmd.Dir = root
		cmd.Env = os.Environ()
		if t.WASM {
			cmd.Env = append(cmd.Env, "GOOS=wasip1", "GOARCH=wasm")
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", t.Pkg, err, out)
		}
	}
	return nil
}

// Models creates dir and writes the reference model (stories260K)
// into it under each name (+ ".gguf"). It returns the model's bytes.
func Models(dir string, names ...string) ([]byte, error) {
	src, err := refdata.Path("models", "stories260K.gguf")
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return nil, fmt.Errorf("reference model: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n+".gguf"), data, 0o644); err != nil {
			return nil, err
		}
	}
	return data, nil
}

package main

import (
	"bytes"
	"context"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/internal/backend/reference"
	"github.com/realmrt/realm/internal/engine"
	"github.com/realmrt/realm/internal/refdata"
)

func TestBenchFlagErrors(t *testing.T) {
	model := filepath.Join(t.TempDir(), "m.gguf")
	if err := os.WriteFile(model, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "-m MODEL is required"},
		{[]string{"-m", model, "-r", "0"}, "-r ≥ 1"},
		{[]string{"-m", model, "-p", "0", "-n", "0"}, "nothing to run"},
		{[]string{"-m", filepath.Join(t.TempDir(), "missing.gguf")}, "no such file"},
	} {
		var out bytes.Buffer
		env := &cliEnv{Stdout: &out, Stderr: &out, Getenv: func(string) string { return "" }}
		err := runBench(context.Background(), env, c.args)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("bench %v: error %v, want it to mention %q", c.args, err, c.want)
		}
	}
}

func TestMeanStddev(t *testing.T) {
	m, sd := meanStddev([]float64{2, 4, 4, 4, 5, 5, 7, 9})
	if m != 5 || math.Abs(sd-2.138) > 1e-3 {
		t.Errorf("mean, sd = %v, %v; want 5, 2.138", m, sd)
	}
	if m, sd := meanStddev([]float64{3}); m != 3 || sd != 0 {
		t.Errorf("one sample: %v, %v", m, sd)
	}
}

func TestModelType(t *testing.T) {
	mi := &backends.ModelInfo{Arch: "llama", NVocab: 32000, NEmbd: 2048, NLayer: 22, NHead: 32, NHeadKV: 4, NFF: 5632,
		TensorTypes: map[string]int{"F32": 45, "Q4_0": 155, "Q6_K": 1}}
	if got := modelType(mi); got != "llama 1.1B Q4_0" {
		t.Errorf("modelType = %q, want llama 1.1B Q4_0", got)
	}
	small := &backends.ModelInfo{Arch: "llama", NVocab: 512, NEmbd: 64, NLayer: 5, NHead: 8, NHeadKV: 4, NFF: 172,
		TensorTypes: map[string]int{"F32": 11, "Q8_0": 30}}
	if got := modelType(small); got != "llama 292K Q8_0" {
		t.Errorf("modelType = %q, want llama 292K Q8_0", got)
	}
}

func TestProcessRSS(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc")
	}
	if rss := processRSS(os.Getpid()); rss <= 0 {
		t.Errorf("processRSS(self) = %d", rss)
	}
	if cpu := processCPU(os.Getpid()); cpu < 0 {
		t.Errorf("processCPU(self) = %v", cpu)
	}
	if rss := processRSS(0); rss != 0 {
		t.Errorf("processRSS(0) = %d", rss)
	}
}

// TestBenchViaWasm runs the bench guest (built here) against the
// in-process reference engine on stories260K, served from a file whose
// name is not a valid model name (a space, capitals).
func TestBenchViaWasm(t *testing.T) {
	root, err := refdata.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	wasm := filepath.Join(dir, "bench.wasm")
	cmd := exec.Command("go", "build", "-o", wasm, "./examples/bench")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./examples/bench: %v\n%s", err, out)
	}
	src, err := refdata.Path("models", "stories260K.gguf")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	model := filepath.Join(dir, "My Model ${x}.gguf")
	if err := os.WriteFile(model, data, 0o644); err != nil {
		t.Fatal(err)
	}
	be := engine.NewBackend(reference.New(), engine.Options{Name: "reference"})
	var stderr bytes.Buffer
	env := &cliEnv{Stdout: io.Discard, Stderr: &stderr, Getenv: func(string) string { return "" }}
	tests, err := benchViaWasm(context.Background(), be, "reference", model, wasm, 8, 4, 2, hclog.NewNullLogger(), env)
	if err != nil {
		t.Fatalf("benchViaWasm: %v\nstderr: %s", err, stderr.String())
	}
	if len(tests) != 2 || tests[0].np != 8 || tests[1].ng != 4 {
		t.Fatalf("tests = %+v, want pp8 then tg4", tests)
	}
	for _, tc := range tests {
		if len(tc.ns) != 2 || tc.ns[0] <= 0 || tc.ns[1] <= 0 {
			t.Errorf("test %+v: want 2 positive timings", tc)
		}
	}
	if _, err := benchViaWasm(context.Background(), be, "reference", model, filepath.Join(dir, "missing.wasm"), 8, 4, 2, hclog.NewNullLogger(), env); err == nil || !strings.Contains(err.Error(), "examples/bench") {
		t.Errorf("missing guest: error %v, want a hint to build it", err)
	}
}

func TestHCLString(t *testing.T) {
	for in, want := range map[string]string{
		"/tmp/a b":     `"/tmp/a b"`,
		`c:\x"y`:       `"c:\\x\"y"`,
		"${HOME}/%{x}": `"$${HOME}/%%{x}"`,
	} {
		if got := hclString(in); got != want {
			t.Errorf("hclString(%q) = %s, want %s", in, got, want)
		}
	}
}

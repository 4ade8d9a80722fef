package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/gguf"
	"github.com/realmrt/realm/internal/backend/reference"
	"github.com/realmrt/realm/internal/engine"
	"github.com/realmrt/realm/internal/refdata"
)

// These tests run llama.cpp itself beside Realm: the CPU prebuilt binaries
// of the npm package node-llama-cpp, driven by scripts/llamacpp/run.mjs.
// They need Node.js ≥ 20 and npm; the first run installs the pinned
// packages from the npm registry (npm ci) into scripts/llamacpp/node_modules.

// llamacppPrompt is the prompt of the reference outputs.
const llamacppPrompt = "Once upon a time"

// llamacppGen is what run.mjs generate prints.
type llamacppGen struct {
	PromptIDs []int32         `json:"prompt_ids"`
	IDs       []int32         `json:"ids"`
	Text      string          `json:"text"`
	Logits    [][]float32     `json:"logits"`
	LlamaCpp  json.RawMessage `json:"llama_cpp"`
}

// llamacppSetup returns the harness directory, running npm ci there when
// its node_modules lacks the pinned node-llama-cpp and its CPU prebuilt.
func llamacppSetup(t *testing.T) string {
	t.Helper()
	root, err := refdata.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "scripts", "llamacpp")
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found in PATH: the llama.cpp comparison needs Node.js ≥ 20 and npm (%v)", tool, err)
		}
	}
	installed := true
	for _, p := range []string{
		"node_modules/node-llama-cpp/package.json",
		"node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/llama-addon.node",
	} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			installed = false
		}
	}
	if !installed {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "npm", "ci")
		cmd.Dir = dir
		// scripts/llamacpp/.npmrc skips the optional GPU packages and
		// node-llama-cpp's postinstall; this also stops any download.
		cmd.Env = append(os.Environ(), "NODE_LLAMA_CPP_SKIP_DOWNLOAD=true")
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci in %s (needs the npm registry): %v\n%s", dir, err, out)
		}
		t.Logf("npm ci: %v", time.Since(start).Round(time.Second))
	}
	return dir
}

// llamacppRun runs a command with a timeout and returns its stdout; the
// error carries stderr.
func llamacppRun(dir string, env []string, timeout time.Duration, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s %s: %w\n%s", filepath.Base(name), strings.Join(args, " "), err, stderr.Bytes())
	}
	return stdout.Bytes(), nil
}

// llamacppGenerate greedily generates n tokens with llama.cpp.
func llamacppGenerate(dir, model string, n int, logits bool) (*llamacppGen, error) {
	args := []string{"run.mjs", "generate", "-m", model, "-p", llamacppPrompt, "-n", fmt.Sprint(n), "-t", "1", "--ignore-eos"}
	if logits {
		args = append(args, "--logits")
	}
	out, err := llamacppRun(dir, os.Environ(), time.Minute, "node", args...)
	if err != nil {
		return nil, err
	}
	var g llamacppGen
	if err := json.Unmarshal(out, &g); err != nil {
		return nil, fmt.Errorf("run.mjs output: %w\n%s", err, out)
	}
	if len(g.IDs) != n {
		return nil, fmt.Errorf("run.mjs generated %d tokens, want %d", len(g.IDs), n)
	}
	return &g, nil
}

// llamacppPrefix is the length of the common prefix of a and b.
func llamacppPrefix(a, b []int32) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// TestLlamaCppSanity checks that the harness runs the llama.cpp the
// reference data came from: greedy ids on F32 stories260K must be the
// reference ids exactly.
func TestLlamaCppSanity(t *testing.T) {
	ref, err := refdata.LoadOutput("stories260K.once-upon")
	if err != nil {
		t.Fatal(err)
	}
	model, err := refdata.Path("models", "stories260K.gguf")
	if err != nil {
		t.Fatal(err)
	}
	if ref.Prompt != llamacppPrompt {
		t.Fatalf("reference prompt %q, want %q", ref.Prompt, llamacppPrompt)
	}
	dir := llamacppSetup(t)
	g, err := llamacppGenerate(dir, model, len(ref.GenIDs), true)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("llama.cpp: %s", g.LlamaCpp)
	if !slices.Equal(g.PromptIDs, ref.PromptIDs) {
		t.Errorf("prompt ids %v, reference %v", g.PromptIDs, ref.PromptIDs)
	}
	if p := llamacppPrefix(g.IDs, ref.GenIDs); p != len(ref.GenIDs) {
		t.Errorf("greedy ids agree with the reference for %d of %d tokens; first difference at %d: got %d, reference %d\n got %v\n ref %v",
			p, len(ref.GenIDs), p, g.IDs[p], ref.GenIDs[p], g.IDs, ref.GenIDs)
	}
	refLogits, err := refdata.LoadLogits("stories260K.once-upon", ref.NVocab)
	if err != nil {
		t.Fatal(err)
	}
	for i := range min(len(g.Logits), len(refLogits)) {
		if len(g.Logits[i]) != ref.NVocab {
			t.Fatalf("step %d: %d logits, want %d", i, len(g.Logits[i]), ref.NVocab)
		}
		if e := refdata.NMSE(g.Logits[i], refLogits[i]); e > 1e-6 {
			t.Errorf("step %d: logits NMSE %.3g against the reference", i, e)
		}
	}
}

// llamacppRealmLogits returns Realm's logits at the last prompt position
// (in-process engine over the reference kernels).
func llamacppRealmLogits(path string, prompt []int32) ([]float32, error) {
	ctx := context.Background()
	b := engine.NewBackend(reference.New(), engine.Options{Name: "reference", ProtocolVersion: backends.ProtocolVersion, Threads: 1})
	mi, err := b.LoadModel(ctx, backends.LoadRequest{Path: path})
	if err != nil {
		return nil, err
	}
	defer func() { _ = b.UnloadModel(ctx, mi.ID) }()
	sid, err := b.OpenSession(ctx, mi.ID, 64)
	if err != nil {
		return nil, err
	}
	defer func() { _ = b.CloseSession(ctx, sid) }()
	res, err := b.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: prompt, Want: backends.WantLogits})
	if err != nil {
		return nil, err
	}
	return res.Logits, nil
}

// llamacppTypes counts a GGUF file's tensors per type ("Q4_K:9 F32:5").
func llamacppTypes(path string) (map[gguf.Type]int, string, error) {
	m, err := gguf.Open(path)
	if err != nil {
		return nil, "", err
	}
	defer m.Close()
	count := map[gguf.Type]int{}
	for _, ti := range m.Tensors {
		count[ti.Type]++
	}
	var parts []string
	for ty, n := range count {
		parts = append(parts, fmt.Sprintf("%v:%d", ty, n))
	}
	slices.Sort(parts)
	return count, strings.Join(parts, " "), nil
}

// TestLlamaCppInterop checks that the GGUF files Realm writes load in
// llama.cpp, and that llama.cpp and Realm generate the same greedy tokens
// from them.
func TestLlamaCppInterop(t *testing.T) {
	src, err := refdata.Path("models", "stories260K.gguf")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(src); err != nil {
		t.Fatal(err)
	}
	dir := llamacppSetup(t)
	root, err := refdata.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	realm := filepath.Join(tmp, "realm")
	if _, err := llamacppRun(root, os.Environ(), 5*time.Minute, "go", "build", "-o", realm, "./cmd/realm"); err != nil {
		t.Fatal(err)
	}
	// No configuration: `realm generate` runs the in-process reference
	// kernels (the working directory has no plugins.hcl).
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REALM_CONFIG=") && !strings.HasPrefix(kv, "REALM_BACKEND=") {
			env = append(env, kv)
		}
	}

	const nGen = 32
	tests := []struct {
		name      string
		typ       string // realm quantize TYPE; "" for the synthetic model
		minPrefix int    // greedy ids that must agree with Realm's
		want      []gguf.Type
	}{
		{"stories-f16", "f16", 16, []gguf.Type{gguf.TypeF16}},
		{"stories-q8_0", "q8_0", 16, []gguf.Type{gguf.TypeQ8_0}},
		{"stories-q6_k", "q6_k", 16, nil}, // rows of 64: no K-quant fits, llama.cpp's fallback
		{"stories-q4_0", "q4_0", 8, []gguf.Type{gguf.TypeQ4_0}},
		{"stories-q4_k_m", "q4_k_m", 8, nil},
		// Rows of 256 and more: real Q4_K and Q6_K tensors. Random
		// weights give near-flat logits, so only the logits are compared.
		{"synth-tiny-q4_k_m", "", 0, []gguf.Type{gguf.TypeQ4_K, gguf.TypeQ6_K}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(tmp, tc.name+".gguf")
			var args []string
			if tc.typ != "" {
				args = []string{"quantize", src, path, tc.typ}
			} else {
				args = []string{"gguf", "synth", "--preset", "tiny", "--type", "q4_k_m", "--tokenizer-from", src, "-o", path}
			}
			if _, err := llamacppRun(tmp, env, 2*time.Minute, realm, args...); err != nil {
				t.Fatal(err)
			}
			count, types, err := llamacppTypes(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, ty := range tc.want {
				if count[ty] == 0 {
					t.Errorf("%s has no %v tensor (%s)", tc.name, ty, types)
				}
			}

			g, err := llamacppGenerate(dir, path, nGen, true)
			if err != nil {
				t.Fatalf("llama.cpp cannot run the file Realm wrote (%s): %v", types, err)
			}
			out, err := llamacppRun(tmp, env, time.Minute, realm, "generate", "-m", path, "--temp", "0", "-n", fmt.Sprint(nGen), "-p", llamacppPrompt, "--json")
			if err != nil {
				t.Fatal(err)
			}
			var rg struct {
				PromptIDs []int32 `json:"prompt_ids"`
				IDs       []int32 `json:"ids"`
			}
			if err := json.Unmarshal(out, &rg); err != nil {
				t.Fatalf("realm generate --json: %v\n%s", err, out)
			}
			if !slices.Equal(rg.PromptIDs, g.PromptIDs) {
				t.Errorf("prompt ids: realm %v, llama.cpp %v", rg.PromptIDs, g.PromptIDs)
			}
			rl, err := llamacppRealmLogits(path, g.PromptIDs)
			if err != nil {
				t.Fatal(err)
			}
			nmse := refdata.NMSE(rl, g.Logits[0])
			p := llamacppPrefix(rg.IDs, g.IDs)
			t.Logf("%s [%s]: greedy ids agree for %d/%d tokens; step-0 logits NMSE (Realm vs llama.cpp) %.3g", tc.name, types, p, nGen, nmse)
			if p < tc.minPrefix {
				t.Errorf("greedy ids agree for %d tokens, want ≥ %d\n realm     %v\n llama.cpp %v", p, tc.minPrefix, rg.IDs, g.IDs)
			}
			// llama.cpp quantizes activations (Q8_0/Q8_K) before its
			// quantized dot products; beyond that, the same weights must
			// give the same logits. A wrong block layout gives NMSE ~1.
			if nmse > 1e-2 {
				t.Errorf("step-0 logits NMSE %.3g between Realm and llama.cpp (want ≤ 1e-2)", nmse)
			}
		})
	}
}

// TestLlamaCppArchData reruns llama.cpp on the synthetic models of
// testdata/arch (every architecture, F32 and Q8_0) and checks that the
// stored greedy ids and logits are what it computes, so the
// architecture cases of the conformance suite compare with llama.cpp
// itself and the data can be regenerated (testdata/arch/README.md).
func TestLlamaCppArchData(t *testing.T) {
	root, err := refdata.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := llamacppSetup(t)
	for _, arch := range []string{"llama", "llama3", "mixtral", "qwen2", "qwen3", "qwen3moe", "gemma2", "gemma3", "phi3"} {
		for _, name := range []string{arch, arch + "-q8_0"} {
			t.Run(name, func(t *testing.T) {
				raw, err := os.ReadFile(filepath.Join(root, "testdata", "arch", name+".llamacpp.json"))
				if err != nil {
					t.Fatal(err)
				}
				var want llamacppGen
				if err := json.Unmarshal(raw, &want); err != nil {
					t.Fatal(err)
				}
				g, err := llamacppGenerate(dir, filepath.Join(root, "testdata", "arch", name+".gguf"), len(want.IDs), true)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(g.PromptIDs, want.PromptIDs) || !slices.Equal(g.IDs, want.IDs) {
					t.Errorf("llama.cpp ids %v %v, stored %v %v", g.PromptIDs, g.IDs, want.PromptIDs, want.IDs)
				}
				for i := range min(len(g.Logits), len(want.Logits)) {
					if e := refdata.NMSE(g.Logits[i], want.Logits[i]); e > 1e-6 {
						t.Errorf("step %d: logits NMSE %.3g against the stored run", i, e)
					}
				}
			})
		}
	}
}

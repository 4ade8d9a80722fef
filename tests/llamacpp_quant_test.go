package tests

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/realmrt/realm/gguf"
	"github.com/realmrt/realm/internal/refdata"
)

// TestLlamaCppQuantTypes quantizes one synthetic llama model (rows of 256
// and more, 8 layers, 4 heads per KV head) with llama.cpp's own
// llama_model_quantize (scripts/llamacpp/quantize.c over the prebuilt
// libllama) and with `realm quantize`, for the file types whose tensor
// types were added later (Q5_K_M, Q5_K_S, IQ4_NL, IQ4_XS, BF16):
//   - both files have the same tensors with the same types (llama.cpp's
//     per-tensor mix);
//   - every Q5_K, IQ4_NL, IQ4_XS, BF16 and F32 tensor is byte-identical
//     (Realm's quantizers follow ggml's exactly; Q6_K uses Realm's own
//     search and is only compared numerically);
//   - llama.cpp loads Realm's file, and its first-step logits match
//     Realm's (reference kernels) on that file within 1e-3 NMSE.
func TestLlamaCppQuantTypes(t *testing.T) {
	donor, err := refdata.Path("models", "stories260K.gguf")
	if err != nil {
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
	bins := filepath.Join(dir, "node_modules", "@node-llama-cpp", "linux-x64", "bins", "linux-x64")
	lq := filepath.Join(tmp, "llama-quantize")
	if _, err := llamacppRun(dir, os.Environ(), 2*time.Minute, "cc", "-O2", "-o", lq, "quantize.c",
		"-L"+bins, "-l:libllama.v0.5.0.so", "-l:libggml.v0.5.0.so", "-l:libggml-base.so", "-Wl,-rpath,"+bins); err != nil {
		t.Fatalf("building the llama_model_quantize harness (needs a C compiler): %v", err)
	}
	src := filepath.Join(tmp, "tiny-f32.gguf")
	if _, err := llamacppRun(tmp, os.Environ(), 2*time.Minute, realm, "gguf", "synth", "--preset", "tiny",
		"--n-layer", "8", "--n-head-kv", "1", "--type", "f32", "--tokenizer-from", donor, "-o", src); err != nil {
		t.Fatal(err)
	}
	exact := map[gguf.Type]bool{gguf.TypeQ5_K: true, gguf.TypeIQ4_NL: true, gguf.TypeIQ4_XS: true, gguf.TypeBF16: true, gguf.TypeF32: true}
	for _, tc := range []struct {
		name  string
		ftype int
		want  []gguf.Type
	}{
		{"q5_k_m", 17, []gguf.Type{gguf.TypeQ5_K, gguf.TypeQ6_K}},
		{"q5_k_s", 16, []gguf.Type{gguf.TypeQ5_K}},
		{"iq4_nl", 25, []gguf.Type{gguf.TypeIQ4_NL, gguf.TypeQ5_K}},
		{"iq4_xs", 30, []gguf.Type{gguf.TypeIQ4_XS, gguf.TypeQ5_K}},
		{"bf16", 32, []gguf.Type{gguf.TypeBF16}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lpath := filepath.Join(tmp, tc.name+"-llama.gguf")
			rpath := filepath.Join(tmp, tc.name+"-realm.gguf")
			if _, err := llamacppRun(bins, os.Environ(), 2*time.Minute, lq, src, lpath, fmt.Sprint(tc.ftype)); err != nil {
				t.Fatal(err)
			}
			if _, err := llamacppRun(tmp, os.Environ(), 2*time.Minute, realm, "quantize", src, rpath, tc.name); err != nil {
				t.Fatal(err)
			}
			lm, err := gguf.Open(lpath)
			if err != nil {
				t.Fatal(err)
			}
			defer lm.Close()
			rm, err := gguf.Open(rpath)
			if err != nil {
				t.Fatal(err)
			}
			defer rm.Close()
			if len(lm.Tensors) != len(rm.Tensors) {
				t.Fatalf("%d tensors, llama.cpp wrote %d", len(rm.Tensors), len(lm.Tensors))
			}
			count := map[gguf.Type]int{}
			identical := 0
			for i := range lm.Tensors {
				lt, rt := &lm.Tensors[i], &rm.Tensors[i]
				if lt.Name != rt.Name || lt.Type != rt.Type {
					t.Errorf("tensor %d: realm %s %s, llama.cpp %s %s", i, rt.Name, rt.Type, lt.Name, lt.Type)
					continue
				}
				count[rt.Type]++
				ld, _ := lm.TensorData(lt)
				rd, _ := rm.TensorData(rt)
				if bytes.Equal(ld, rd) {
					identical++
				} else if exact[rt.Type] {
					t.Errorf("%s (%s): bytes differ from llama.cpp's", rt.Name, rt.Type)
				} else if e := refdata.NMSE(readTensorF32(t, rm, rt), readTensorF32(t, lm, lt)); e > 1e-3 {
					t.Errorf("%s (%s): NMSE %.3g against llama.cpp's encoding", rt.Name, rt.Type, e)
				}
			}
			for _, ty := range tc.want {
				if count[ty] == 0 {
					t.Errorf("no %v tensor in the mix %v", ty, count)
				}
			}
			g, err := llamacppGenerate(dir, rpath, 2, true)
			if err != nil {
				t.Fatalf("llama.cpp cannot run the file Realm wrote: %v", err)
			}
			rl, err := llamacppRealmLogits(rpath, g.PromptIDs)
			if err != nil {
				t.Fatal(err)
			}
			nmse := refdata.NMSE(rl, g.Logits[0])
			var mix []string
			for _, ty := range gguf.AllTypes() {
				if count[ty] > 0 {
					mix = append(mix, fmt.Sprintf("%s×%d", ty, count[ty]))
				}
			}
			t.Logf("%s [%s]: %d/%d tensors byte-identical to llama.cpp's; step-0 logits NMSE (Realm vs llama.cpp) %.3g",
				tc.name, strings.Join(mix, " "), identical, len(lm.Tensors), nmse)
			if nmse > 1e-3 {
				t.Errorf("step-0 logits NMSE %.3g between Realm and llama.cpp (want ≤ 1e-3)", nmse)
			}
		})
	}
}

// readTensorF32 dequantizes tensor ti of m.
func readTensorF32(t *testing.T, m *gguf.Mapped, ti *gguf.TensorInfo) []float32 {
	t.Helper()
	data, err := m.TensorData(ti)
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float32, ti.Elements())
	if err := gguf.Dequantize(x, data, ti.Type); err != nil {
		t.Fatal(err)
	}
	return x
}

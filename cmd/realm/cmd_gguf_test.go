package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/realmrt/realm/gguf"
	"github.com/realmrt/realm/internal/refdata"
)

// ggufCLI runs realMain in-process and returns its exit code and output.
func ggufCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	env := &cliEnv{Stdout: &stdout, Stderr: &stderr, Stdin: strings.NewReader(""), Getenv: func(string) string { return "" }}
	code := realMain(context.Background(), env, args)
	return code, stdout.String(), stderr.String()
}

func refModelPath(t *testing.T, name string) string {
	t.Helper()
	p, err := refdata.Path("models", name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestGGUFInfoText(t *testing.T) {
	p := refModelPath(t, "stories260K-Q4_0.gguf")
	code, out, errOut := ggufCLI(t, "gguf", "info", p)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"version:     3", "data offset: 14240", "tensors:     48",
		`general.architecture`, `"llama"`, "[512]string", `"<unk>", "<s>"`, "...",
		"llama.attention.layer_norm_rms_epsilon", "1e-05",
		"output.weight  Q8_0  [64, 512]", "token_embd.weight  Q4_0  [64, 512]   35072  18432",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, `"<0x05>"`) {
		t.Error("long array not summarized")
	}
	code, out, _ = ggufCLI(t, "gguf", "info", "--full", p)
	if code != 0 || !strings.Contains(out, `"<0x05>"`) {
		t.Errorf("--full did not print the whole array (exit %d)", code)
	}
}

func TestGGUFInfoJSON(t *testing.T) {
	p := refModelPath(t, "stories260K.gguf")
	for _, full := range []bool{false, true} {
		args := []string{"gguf", "info", p, "--json"}
		if full {
			args = append(args, "--full")
		}
		code, out, errOut := ggufCLI(t, args...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		var info infoJSON
		if err := json.Unmarshal([]byte(out), &info); err != nil {
			t.Fatalf("bad JSON: %v\n%s", err, out)
		}
		if info.Version != 3 || info.Alignment != 32 || len(info.Tensors) != 48 || len(info.Metadata) != 19 {
			t.Fatalf("info = %+v", info)
		}
		byKey := map[string]kvJSON{}
		for _, kv := range info.Metadata {
			byKey[kv.Key] = kv
		}
		toks := byKey["tokenizer.ggml.tokens"]
		items, _ := toks.Value.([]any)
		wantLen := summaryItems
		if full {
			wantLen = 512
		}
		if toks.ArrayType != "string" || toks.Length == nil || *toks.Length != 512 || len(items) != wantLen || toks.Truncated == full || items[1] != "<s>" {
			t.Errorf("full=%v tokens = %+v (%d items)", full, toks, len(items))
		}
		if v, _ := byKey["llama.embedding_length"].Value.(float64); v != 64 || byKey["llama.embedding_length"].Type != "uint32" {
			t.Errorf("embedding_length = %+v", byKey["llama.embedding_length"])
		}
		if v, _ := byKey["llama.attention.layer_norm_rms_epsilon"].Value.(float64); math.Abs(v-1e-5) > 1e-12 {
			t.Errorf("rms eps = %+v", byKey["llama.attention.layer_norm_rms_epsilon"])
		}
		var total int64
		for _, ti := range info.Tensors {
			total += ti.Bytes
		}
		if info.Tensors[0].Type == "" || total != 1185376-info.DataOffset {
			t.Errorf("tensor bytes %d, data section %d", total, 1185376-info.DataOffset)
		}
	}
}

func TestGGUFErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.gguf")
	os.WriteFile(bad, []byte("GGUF\x01\x00\x00\x00xxxxxxxxxxxxxxxx"), 0o644)
	donor := refModelPath(t, "stories260K.gguf")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"gguf"}, 2, "usage"},
		{[]string{"gguf", "frob"}, 2, "unknown subcommand"},
		{[]string{"gguf", "info"}, 2, "usage"},
		{[]string{"gguf", "info", filepath.Join(dir, "missing.gguf")}, 1, "no such file"},
		{[]string{"gguf", "info", bad}, 1, "version 1 is not supported"},
		{[]string{"gguf", "synth", "--preset", "tiny", "-o", filepath.Join(dir, "x.gguf")}, 1, "--tokenizer-from"},
		{[]string{"gguf", "synth", "-o", filepath.Join(dir, "x.gguf"), "--tokenizer-from", donor}, 1, "does not match the donor's 512"},
		{[]string{"gguf", "synth", "--preset", "huge", "-o", filepath.Join(dir, "x.gguf"), "--tokenizer-from", donor}, 1, "unknown preset"},
		{[]string{"gguf", "synth", "--preset", "tiny", "--type", "q2_k", "-o", filepath.Join(dir, "x.gguf"), "--tokenizer-from", donor}, 1, "unknown type"},
		{[]string{"gguf", "synth", "--preset", "tiny", "--n-head", "3", "-o", filepath.Join(dir, "x.gguf"), "--tokenizer-from", donor}, 1, "inconsistent shape"},
		{[]string{"quantize", donor, filepath.Join(dir, "y.gguf")}, 2, "usage"},
		{[]string{"quantize", donor, filepath.Join(dir, "y.gguf"), "q3_k"}, 1, "unknown type"},
		{[]string{"quantize", bad, filepath.Join(dir, "y.gguf"), "q8_0"}, 1, "version 1"},
	} {
		code, _, errOut := ggufCLI(t, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d mentioning %q", tc.args, code, errOut, tc.code, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "x.gguf")); err == nil {
		t.Error("failed synth left an output file")
	}
}

func readAll(t *testing.T, m *gguf.Mapped, ti *gguf.TensorInfo) []float32 {
	t.Helper()
	b, err := m.TensorData(ti)
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float32, ti.Elements())
	if err := gguf.Dequantize(x, b, ti.Type); err != nil {
		t.Fatal(err)
	}
	return x
}

func TestGGUFSynth(t *testing.T) {
	dir := t.TempDir()
	donorPath := refModelPath(t, "stories260K.gguf")
	donor, err := gguf.Open(donorPath)
	if err != nil {
		t.Fatal(err)
	}
	defer donor.Close()
	synth := func(typ, name string, extra ...string) string {
		out := filepath.Join(dir, name)
		args := append([]string{"gguf", "synth", "--preset", "tiny", "--type", typ, "-o", out, "--tokenizer-from", donorPath}, extra...)
		if code, _, errOut := ggufCLI(t, args...); code != 0 {
			t.Fatalf("synth %s: exit %d: %s", typ, code, errOut)
		}
		return out
	}
	f32Path := synth("f32", "f32.gguf")
	ref, err := gguf.Open(f32Path)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	for key, want := range map[string]uint64{
		"llama.embedding_length": 256, "llama.block_count": 2, "llama.attention.head_count": 4,
		"llama.attention.head_count_kv": 2, "llama.feed_forward_length": 512, "llama.context_length": 256,
		"llama.rope.dimension_count": 64, "general.file_type": 0, "general.quantization_version": 2,
	} {
		if got, ok := ref.Uint(key); !ok || got != want {
			t.Errorf("%s = %d (%v), want %d", key, got, ok, want)
		}
	}
	if a, _ := ref.String("general.architecture"); a != "llama" {
		t.Errorf("architecture %q", a)
	}
	for _, kv := range donor.Metadata {
		if !strings.HasPrefix(kv.Key, "tokenizer.") {
			continue
		}
		if v, ok := ref.Lookup(kv.Key); !ok || !v.Equal(kv.Value) {
			t.Errorf("tokenizer key %s not copied", kv.Key)
		}
	}
	if len(ref.Tensors) != 3+9*2 {
		t.Fatalf("%d tensors", len(ref.Tensors))
	}
	emb, _ := ref.Tensor("token_embd.weight")
	x := readAll(t, ref, emb)
	var s, s2 float64
	for _, v := range x {
		s += float64(v)
		s2 += float64(v) * float64(v)
	}
	std := math.Sqrt(s2/float64(len(x)) - (s/float64(len(x)))*(s/float64(len(x))))
	if math.Abs(std-0.02) > 0.001 {
		t.Errorf("embedding std %g, want 0.02", std)
	}
	norm, _ := ref.Tensor("blk.1.ffn_norm.weight")
	for _, v := range readAll(t, ref, norm) {
		if v != 1 {
			t.Fatalf("norm weight %g, want 1", v)
		}
	}
	// Deterministic: the same command gives the same bytes; another seed
	// gives other weights.
	a, _ := os.ReadFile(f32Path)
	b, _ := os.ReadFile(synth("f32", "again.gguf"))
	c, _ := os.ReadFile(synth("f32", "seed2.gguf", "--seed", "2"))
	if !bytes.Equal(a, b) || bytes.Equal(a, c) || len(a) != len(c) {
		t.Error("synth is not deterministic in its seed")
	}
	// Each type: same weights up to the quantization error, llama.cpp's
	// type mix, and the right file type id.
	for _, tc := range []struct {
		typ    string
		ftype  uint64
		types  map[string]gguf.Type
		maxErr float64 // NMSE against the F32 weights
	}{
		{"f16", 1, map[string]gguf.Type{"blk.0.attn_q.weight": gguf.TypeF16, "output.weight": gguf.TypeF16, "blk.0.attn_norm.weight": gguf.TypeF32}, 1e-6},
		{"q8_0", 7, map[string]gguf.Type{"blk.0.attn_q.weight": gguf.TypeQ8_0, "output.weight": gguf.TypeQ8_0, "token_embd.weight": gguf.TypeQ8_0}, 1e-4},
		{"q4_0", 2, map[string]gguf.Type{"blk.0.attn_q.weight": gguf.TypeQ4_0, "output.weight": gguf.TypeQ6_K, "token_embd.weight": gguf.TypeQ4_0}, 0.015},
		{"q6_k", 18, map[string]gguf.Type{"blk.0.attn_q.weight": gguf.TypeQ6_K, "output.weight": gguf.TypeQ6_K}, 0.001},
		{"q4_k_m", 15, map[string]gguf.Type{
			"blk.0.attn_q.weight": gguf.TypeQ4_K, "blk.0.attn_v.weight": gguf.TypeQ4_K, "blk.1.attn_v.weight": gguf.TypeQ6_K,
			"blk.0.ffn_down.weight": gguf.TypeQ4_K, "blk.1.ffn_down.weight": gguf.TypeQ6_K, "output.weight": gguf.TypeQ6_K,
			"token_embd.weight": gguf.TypeQ4_K, "output_norm.weight": gguf.TypeF32}, 0.01},
	} {
		m, err := gguf.Open(synth(tc.typ, tc.typ+".gguf"))
		if err != nil {
			t.Fatal(err)
		}
		if ft, _ := m.Uint("general.file_type"); ft != tc.ftype {
			t.Errorf("%s: file_type %d, want %d", tc.typ, ft, tc.ftype)
		}
		for name, want := range tc.types {
			if ti, ok := m.Tensor(name); !ok || ti.Type != want {
				t.Errorf("%s: %s has type %v, want %s", tc.typ, name, ti, want)
			}
		}
		for i := range m.Tensors {
			got := readAll(t, m, &m.Tensors[i])
			want := readAll(t, ref, &ref.Tensors[i])
			if e := refdata.NMSE(got, want); e > tc.maxErr {
				t.Errorf("%s: %s NMSE %g > %g", tc.typ, m.Tensors[i].Name, e, tc.maxErr)
			}
		}
		m.Close()
	}
	// realm quantize of the F32 synth gives the same tensors as synth
	// --type q4_k_m (same weights, same quantizers, llama.cpp's order).
	qPath := filepath.Join(dir, "quantized.gguf")
	if code, _, errOut := ggufCLI(t, "quantize", f32Path, qPath, "q4_k_m"); code != 0 {
		t.Fatalf("quantize: exit %d: %s", code, errOut)
	}
	qm, err := gguf.Open(qPath)
	if err != nil {
		t.Fatal(err)
	}
	defer qm.Close()
	sm, err := gguf.Open(filepath.Join(dir, "q4_k_m.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer sm.Close()
	if qm.Tensors[0].Name != "output.weight" || qm.Tensors[3].Name != "blk.0.attn_k.weight" {
		t.Errorf("quantize did not use llama.cpp's tensor order: %s, %s", qm.Tensors[0].Name, qm.Tensors[3].Name)
	}
	for i := range sm.Tensors {
		st := &sm.Tensors[i]
		qt, ok := qm.Tensor(st.Name)
		if !ok || qt.Type != st.Type {
			t.Fatalf("%s: quantize gives %v, synth %s", st.Name, qt, st.Type)
		}
		a, _ := qm.TensorData(qt)
		b, _ := sm.TensorData(st)
		if !bytes.Equal(a, b) {
			t.Errorf("%s: quantize and synth data differ", st.Name)
		}
	}
}

// TestQuantizeStories quantizes the F32 stories model and compares with
// llama-quantize's files: Q8_0 and Q4_0 must be byte-identical (same
// tensor order, type mix, metadata and rounding).
func TestQuantizeStories(t *testing.T) {
	dir := t.TempDir()
	src := refModelPath(t, "stories260K.gguf")
	for _, tc := range []struct{ typ, ref string }{{"q8_0", "stories260K-Q8_0.gguf"}, {"q4_0", "stories260K-Q4_0.gguf"}} {
		out := filepath.Join(dir, tc.typ+".gguf")
		code, stdout, errOut := ggufCLI(t, "quantize", src, out, tc.typ)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		if !strings.Contains(stdout, "48 tensors") {
			t.Errorf("stdout %q", stdout)
		}
		got, _ := os.ReadFile(out)
		want, _ := os.ReadFile(refModelPath(t, tc.ref))
		if !bytes.Equal(got, want) {
			// Report the per-tensor match to locate the difference.
			gm, _ := gguf.Open(out)
			rm, _ := gguf.Open(refModelPath(t, tc.ref))
			same := 0
			for i := range rm.Tensors {
				gt, ok := gm.Tensor(rm.Tensors[i].Name)
				if !ok {
					continue
				}
				a, _ := gm.TensorData(gt)
				b, _ := rm.TensorData(&rm.Tensors[i])
				if bytes.Equal(a, b) && gt.Type == rm.Tensors[i].Type {
					same++
				}
			}
			t.Errorf("%s: output differs from llama-quantize's %s; %d/%d tensors identical", tc.typ, tc.ref, same, len(rm.Tensors))
			gm.Close()
			rm.Close()
		}
	}
	// The other types read back and stay close to the source.
	srcM, err := gguf.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer srcM.Close()
	for _, tc := range []struct {
		typ    string
		ftype  uint64
		maxErr float64
	}{{"f16", 1, 1e-6}, {"q6_k", 18, 1e-4}, {"q4_k_m", 15, 0.01}} {
		out := filepath.Join(dir, tc.typ+".gguf")
		if code, _, errOut := ggufCLI(t, "quantize", src, out, tc.typ); code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		m, err := gguf.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		if ft, _ := m.Uint("general.file_type"); ft != tc.ftype {
			t.Errorf("%s: file_type %d", tc.typ, ft)
		}
		for i := range m.Tensors {
			ti := &m.Tensors[i]
			st, _ := srcM.Tensor(ti.Name)
			if e := refdata.NMSE(readAll(t, m, ti), readAll(t, srcM, st)); e > tc.maxErr {
				t.Errorf("%s: %s (%s) NMSE %g", tc.typ, ti.Name, ti.Type, e)
			}
			// stories rows are 64 or 172 long: K-quants fall back.
			if ti.Type == gguf.TypeQ4_K || ti.Type == gguf.TypeQ6_K {
				t.Errorf("%s: %s is %s although its rows (%d) are not a multiple of 256", tc.typ, ti.Name, ti.Type, ti.Dims[0])
			}
		}
		m.Close()
	}
}

// TestGGUFSynthArch checks that realm gguf synth --arch regenerates the
// synthetic models of testdata/arch byte for byte (the llama.cpp data
// there was computed on exactly these files), and refuses an unknown
// architecture.
func TestGGUFSynthArch(t *testing.T) {
	root, err := refdata.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	donor := filepath.Join(root, "models", "stories260K.gguf")
	dir := t.TempDir()
	for _, arch := range synthArches {
		types, donor := []string{"f32", "q8_0", "q4_0"}, donor
		if arch == "bert" {
			types, donor = []string{"f32", "q8_0"}, filepath.Join(root, "testdata", "reference", "vocab", "ggml-vocab-bert-bge.gguf")
		}
		for _, typ := range types {
			name := arch
			if typ != "f32" {
				name += "-" + typ
			}
			out := filepath.Join(dir, name+".gguf")
			if code, _, errOut := ggufCLI(t, "gguf", "synth", "--arch", arch, "--type", typ, "--seed", "1", "-o", out, "--tokenizer-from", donor); code != 0 {
				t.Fatalf("%s: exit %d: %s", name, code, errOut)
			}
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(filepath.Join(root, "testdata", "arch", name+".gguf"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s: synth output differs from testdata/arch/%s.gguf", name, name)
			}
		}
	}
	if code, _, errOut := ggufCLI(t, "gguf", "synth", "--arch", "mamba", "-o", filepath.Join(dir, "x.gguf"), "--tokenizer-from", donor); code != 1 || !strings.Contains(errOut, "unknown --arch") {
		t.Errorf("unknown arch: exit %d: %s", code, errOut)
	}
	if code, _, errOut := ggufCLI(t, "gguf", "synth", "--arch", "llama", "--n-embd", "96", "-o", filepath.Join(dir, "x.gguf"), "--tokenizer-from", donor); code != 1 || !strings.Contains(errOut, "multiple of 64") {
		t.Errorf("--n-embd 96: exit %d: %s", code, errOut)
	}
}

// TestGGUFSynthArchWide checks that the Q4_K_M files of testdata/arch
// (llama.cpp's quantizer over realm gguf synth --arch A --n-embd 256)
// hold the tensors, names and shapes of that wide synth, and that their
// metadata names the architecture's width.
func TestGGUFSynthArchWide(t *testing.T) {
	root, err := refdata.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	donor := filepath.Join(root, "models", "stories260K.gguf")
	dir := t.TempDir()
	for _, arch := range synthArches {
		if arch == "bert" {
			continue // an embedding model: F32/Q8_0 cases with a WordPiece donor (TestGGUFSynthArch, cmd_embed_test.go)
		}
		out := filepath.Join(dir, arch+".gguf")
		if code, _, errOut := ggufCLI(t, "gguf", "synth", "--arch", arch, "--type", "f32", "--seed", "1", "--n-embd", "256", "-o", out, "--tokenizer-from", donor); code != 0 {
			t.Fatalf("%s: exit %d: %s", arch, code, errOut)
		}
		got, err := gguf.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		want, err := gguf.Open(filepath.Join(root, "testdata", "arch", arch+"-q4_k_m.gguf"))
		if err != nil {
			t.Fatal(err)
		}
		shapes := func(f *gguf.Mapped) map[string]string {
			m := map[string]string{}
			for _, ti := range f.Tensors {
				m[ti.Name] = fmt.Sprint(ti.Dims)
			}
			return m
		}
		if g, w := shapes(got), shapes(want); fmt.Sprint(g) != fmt.Sprint(w) {
			t.Errorf("%s: synth --n-embd 256 tensors %v, testdata %v", arch, g, w)
		}
		for _, ti := range want.Tensors {
			// llama.cpp keeps the MoE router (ffn_gate_inp) in F32.
			if len(ti.Dims) > 1 && ti.Type != gguf.TypeQ4_K && ti.Type != gguf.TypeQ6_K && !strings.Contains(ti.Name, "ffn_gate_inp") {
				t.Errorf("%s: %s is %v, want Q4_K or Q6_K", arch, ti.Name, ti.Type)
			}
		}
		got.Close()
		want.Close()
	}
}

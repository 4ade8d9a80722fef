package refdata

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestLoadOutput(t *testing.T) {
	tests := []struct {
		name   string
		nVocab int
		prompt string
		nGen   int
		rows   int
	}{
		{"stories260K.once-upon", 512, "Once upon a time", 64, 64},
		{"stories260K-Q8_0.once-upon", 512, "Once upon a time", 64, 64},
		{"stories260K-Q4_0.once-upon", 512, "Once upon a time", 64, 64},
		{"llama-2-tiny-random.hello", 32000, "Hello my name is", 16, 16},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, err := LoadOutput(tc.name)
			if err != nil {
				t.Fatal(err)
			}
			if o.NVocab != tc.nVocab || o.Prompt != tc.prompt || !o.AddBOS || len(o.GenIDs) != tc.nGen || len(o.PromptIDs) != 5 {
				t.Fatalf("parsed %+v", o)
			}
			rows, err := LoadLogits(tc.name, o.NVocab)
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != tc.rows {
				t.Fatalf("rows = %d, want %d", len(rows), tc.rows)
			}
			// Row 0's argmax is the first generated id and its logit the top logit.
			best := 0
			for i, v := range rows[0] {
				if v > rows[0][best] {
					best = i
				}
			}
			if int32(best) != o.GenIDs[0] || int32(best) != o.TopID || rows[0][best]-o.TopLogit > 1e-4 || o.TopLogit-rows[0][best] > 1e-4 {
				t.Fatalf("argmax %d (%g), want %d (%g)", best, rows[0][best], o.TopID, o.TopLogit)
			}
		})
	}
}

func TestNMSE(t *testing.T) {
	if got := NMSE([]float32{1, 2}, []float32{1, 2}); got != 0 {
		t.Fatalf("NMSE equal = %g", got)
	}
	if got := NMSE([]float32{0, 0}, []float32{1, 1}); got != 1 {
		t.Fatalf("NMSE zero = %g", got)
	}
}

func TestGenTextSpansLines(t *testing.T) {
	o, err := LoadOutput("stories260K-Q8_0.once-upon")
	if err != nil {
		t.Fatal(err)
	}
	const tail = "it was too high.\nLily's mom said"
	if len(o.GenText) < len(tail) || o.GenText[len(o.GenText)-len(tail):] != tail {
		t.Fatalf("GenText = %q, want it to end with %q", o.GenText, tail)
	}
}

// TestExtract: the copy embedded in binaries equals the files in the
// repository, and holds every model an output was made from, in one
// directory.
func TestExtract(t *testing.T) {
	dir := t.TempDir()
	if err := Extract(dir); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ model, output string }{
		{"stories260K.gguf", "stories260K.once-upon"},
		{"stories260K-Q8_0.gguf", "stories260K-Q8_0.once-upon"},
		{"stories260K-Q4_0.gguf", "stories260K-Q4_0.once-upon"},
		{"llama-2-tiny-random.gguf", "llama-2-tiny-random.hello"},
	} {
		for _, rel := range [][]string{
			{"models", tc.model},
			{"outputs", tc.output + ".txt"},
			{"outputs", tc.output + ".logits.f32"},
		} {
			src, err := Path(rel...)
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(filepath.Join(append([]string{dir}, rel...)...))
			if err != nil {
				t.Fatalf("extracted copy: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("extracted %s differs from %s", filepath.Join(rel...), src)
			}
		}
		o, err := LoadOutputFrom(dir, tc.output)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := LoadLogitsFrom(dir, tc.output, o.NVocab); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPathBundledModel: the F32 stories260K is kept once, as the bundled
// model; Path finds it there, and finds the other models in testdata.
func TestPathBundledModel(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("REALM_REFERENCE_DIR", "")
	for _, tc := range []struct{ name, want string }{
		{"stories260K.gguf", filepath.Join(root, "models", "stories260K.gguf")},
		{"stories260K-Q8_0.gguf", filepath.Join(root, "testdata", "reference", "models", "stories260K-Q8_0.gguf")},
	} {
		p, err := Path("models", tc.name)
		if err != nil || p != tc.want {
			t.Errorf("Path(models, %s) = %q, %v; want %q", tc.name, p, err, tc.want)
		}
	}
	if p, _ := Path("vocab", "ggml-vocab-qwen2.gguf"); p != filepath.Join(root, "testdata", "reference", "vocab", "ggml-vocab-qwen2.gguf") {
		t.Errorf("Path(vocab) = %q", p)
	}
}

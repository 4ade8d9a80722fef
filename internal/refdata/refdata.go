// Package refdata locates and parses the llama.cpp reference data the
// tests and `realm conformance` compare with: testdata/reference in the
// repository (models/, outputs/, vocab/; provenance in testdata/README.md)
// plus the bundled models/stories260K.gguf, which is kept once. A binary
// gets the models and outputs from Extract, which writes the copy embedded
// in it; tests read the files in place through Dir and Path.
package refdata

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/realmrt/realm"
)

// RepoRoot returns the directory holding go.mod, searching upward from
// the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("refdata: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("refdata: go.mod not found above the working directory")
		}
		dir = parent
	}
}

// Dir returns the reference data directory, testdata/reference under the
// repository root. REALM_REFERENCE_DIR overrides it. The F32
// stories260K.gguf is not in its models/ (it is the bundled model, in the
// repository's models/): use Path for model files, or Extract for one
// directory that holds every model the outputs were made from.
func Dir() (string, error) {
	if d := os.Getenv("REALM_REFERENCE_DIR"); d != "" {
		return d, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	d := filepath.Join(root, "testdata", "reference")
	if _, err := os.Stat(d); err != nil {
		return "", fmt.Errorf("refdata: reference data not found: %w", err)
	}
	return d, nil
}

// Path returns the path of a file under the reference directory, e.g.
// Path("vocab", "ggml-vocab-qwen2.gguf"). A model file that is not under
// Dir's models/ resolves to the repository's models/ (the bundled
// stories260K.gguf).
func Path(elem ...string) (string, error) {
	d, err := Dir()
	if err != nil {
		return "", err
	}
	p := filepath.Join(append([]string{d}, elem...)...)
	if len(elem) == 2 && elem[0] == "models" {
		if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
			root, rerr := RepoRoot()
			if rerr != nil {
				return "", rerr
			}
			if b := filepath.Join(root, "models", elem[1]); fileExists(b) {
				return b, nil
			}
		}
	}
	return p, nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// Extract writes the reference models and outputs embedded in this binary
// into dir, as dir/models and dir/outputs: the layout LoadOutputFrom,
// LoadLogitsFrom and the conformance suite read, with every model file in
// one place (backend plugins load models by path).
func Extract(dir string) error {
	// Where each directory's files sit in the embedded copy (see
	// realm.ReferenceData).
	embedded := []struct{ dir, src string }{
		{"models", "testdata/reference/models"},
		{"outputs", "testdata/reference/outputs"},
		{"models", "models/stories260K.gguf"},
	}
	for _, e := range embedded {
		st, err := fs.Stat(realm.ReferenceData, e.src)
		if err != nil {
			return fmt.Errorf("refdata: embedded %s: %w", e.src, err)
		}
		names := []string{e.src}
		if st.IsDir() {
			ents, err := fs.ReadDir(realm.ReferenceData, e.src)
			if err != nil {
				return fmt.Errorf("refdata: embedded %s: %w", e.src, err)
			}
			names = names[:0]
			for _, ent := range ents {
				names = append(names, path.Join(e.src, ent.Name()))
			}
		}
		if err := os.MkdirAll(filepath.Join(dir, e.dir), 0o755); err != nil {
			return fmt.Errorf("refdata: %w", err)
		}
		for _, n := range names {
			b, err := fs.ReadFile(realm.ReferenceData, n)
			if err != nil {
				return fmt.Errorf("refdata: embedded %s: %w", n, err)
			}
			if err := os.WriteFile(filepath.Join(dir, e.dir, path.Base(n)), b, 0o644); err != nil {
				return fmt.Errorf("refdata: %w", err)
			}
		}
	}
	return nil
}

// Output is one parsed outputs/*.txt file.
type Output struct {
	NVocab    int
	Prompt    string
	AddBOS    bool
	PromptIDs []int32
	TopID     int32
	TopLogit  float32
	GenIDs    []int32
	GenText   string
}

// LoadOutput parses outputs/NAME.txt (NAME like "stories260K.once-upon").
func LoadOutput(name string) (*Output, error) {
	d, err := Dir()
	if err != nil {
		return nil, err
	}
	return LoadOutputFrom(d, name)
}

// LoadOutputFrom is LoadOutput for the reference directory dir.
func LoadOutputFrom(dir, name string) (*Output, error) {
	p := filepath.Join(dir, "outputs", name+".txt")
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("refdata: %w", err)
	}
	defer f.Close()
	out := &Output{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		key, val, ok := strings.Cut(line, ": ")
		if !ok {
			key, val, _ = strings.Cut(line, ":")
		}
		switch key {
		case "n_vocab":
			out.NVocab, err = strconv.Atoi(strings.TrimSpace(val))
		case "prompt":
			q := val
			if i := strings.LastIndex(q, " add_bos="); i >= 0 {
				out.AddBOS = strings.TrimSpace(q[i+len(" add_bos="):]) == "1"
				q = q[:i]
			}
			out.Prompt, err = strconv.Unquote(q)
		case "prompt_ids":
			out.PromptIDs, err = parseIDs(val)
		case "step0_top_logit":
			for _, fld := range strings.Fields(val) {
				k, v, _ := strings.Cut(fld, "=")
				switch k {
				case "id":
					var n int
					n, err = strconv.Atoi(v)
					out.TopID = int32(n)
				case "logit":
					var x float64
					x, err = strconv.ParseFloat(v, 32)
					out.TopLogit = float32(x)
				}
			}
		case "gen_ids":
			out.GenIDs, err = parseIDs(val)
		case "gen_text":
			// The last field; the generated text may span lines.
			rest := []string{val}
			for sc.Scan() {
				rest = append(rest, sc.Text())
			}
			out.GenText = strings.Join(rest, "\n")
		}
		if err != nil {
			return nil, fmt.Errorf("refdata: %s: %s: %w", p, key, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("refdata: %s: %w", p, err)
	}
	return out, nil
}

func parseIDs(s string) ([]int32, error) {
	var ids []int32
	for _, f := range strings.Fields(s) {
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, err
		}
		ids = append(ids, int32(n))
	}
	return ids, nil
}

// LoadLogits reads outputs/NAME.logits.f32 as rows of nVocab floats.
func LoadLogits(name string, nVocab int) ([][]float32, error) {
	d, err := Dir()
	if err != nil {
		return nil, err
	}
	return LoadLogitsFrom(d, name, nVocab)
}

// LoadLogitsFrom is LoadLogits for the reference directory dir.
func LoadLogitsFrom(dir, name string, nVocab int) ([][]float32, error) {
	p := filepath.Join(dir, "outputs", name+".logits.f32")
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("refdata: %w", err)
	}
	if nVocab <= 0 || len(b)%(4*nVocab) != 0 {
		return nil, fmt.Errorf("refdata: %s: %d bytes is not a whole number of %d-float rows", p, len(b), nVocab)
	}
	rows := make([][]float32, len(b)/(4*nVocab))
	for i := range rows {
		row := make([]float32, nVocab)
		for j := range row {
			off := 4 * (i*nVocab + j)
			row[j] = math.Float32frombits(binary.LittleEndian.Uint32(b[off:]))
		}
		rows[i] = row
	}
	return rows, nil
}

// NMSE returns the normalized mean squared error Σ(a−b)²/Σb² of a
// against the reference b (0 when both are all zero).
func NMSE(a, ref []float32) float64 {
	var num, den float64
	for i := range ref {
		d := float64(a[i]) - float64(ref[i])
		num += d * d
		den += float64(ref[i]) * float64(ref[i])
	}
	if den == 0 {
		if num == 0 {
			return 0
		}
		return math.Inf(1)
	}
	return num / den
}

package core

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/gguf"
	"github.com/realmrt/realm/internal/backend/reference"
	"github.com/realmrt/realm/internal/engine"
	"github.com/realmrt/realm/internal/refdata"
	"github.com/realmrt/realm/model"
	"github.com/realmrt/realm/tokenizer"
)

// testModels serves models by name from a loader.Registry over the
// in-process engine backend with reference kernels, counting
// references so tests can check that every run gives back what it took.
type testModels struct {
	dir string // the models directory: NAME resolves to dir/NAME.gguf
	be  backends.Backend
	// decodeErr, when set, makes every Decode fail with it (fault injection).
	decodeErr error
	// wrap, when set, wraps the backend the models use (fault injection).
	wrap func(backends.Backend) backends.Backend

	mu     sync.Mutex
	loaded map[string]*model.Model
	refs   map[string]int
}

func (t *testModels) Acquire(ctx context.Context, name string) (*model.Model, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if m := t.loaded[name]; m != nil {
		t.refs[name]++
		return m, nil
	}
	path, err := t.resolve(name)
	if err != nil {
		return nil, err
	}
	meta, err := gguf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", backends.ErrInvalidModel, err)
	}
	defer meta.Close()
	tok, err := tokenizer.FromGGUF(meta.File)
	if err != nil {
		return nil, err
	}
	info, err := t.be.LoadModel(ctx, backends.LoadRequest{Path: path})
	if err != nil {
		return nil, err
	}
	shapes := map[string][]int{}
	for _, ti := range meta.Tensors {
		s := make([]int, len(ti.Dims))
		for i, d := range ti.Dims {
			s[i] = int(d)
		}
		shapes[ti.Name] = s
	}
	var be backends.Backend = t.be
	if t.decodeErr != nil {
		be = faultyBackend{Backend: t.be, err: t.decodeErr}
	}
	if t.wrap != nil {
		be = t.wrap(be)
	}
	m := &model.Model{Name: name, Backend: be, BackendName: "reference", Info: *info, Tokenizer: tok, Meta: meta.File, TensorShapes: shapes}
	t.loaded[name] = m
	t.refs[name]++
	return m, nil
}

func (t *testModels) Release(m *model.Model) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.refs[m.Name]--
}

func (t *testModels) List(ctx context.Context) ([]string, error) {
	l, err := filepath.Glob(filepath.Join(t.dir, "*.gguf"))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range l {
		out = append(out, strings.TrimSuffix(filepath.Base(p), ".gguf"))
	}
	sort.Strings(out)
	return out, nil
}

// resolve is the registry rule in miniature (the loader's registry is
// the real one, exercised by the end-to-end test): the real path of
// dir/NAME.gguf must stay inside dir.
func (t *testModels) resolve(name string) (string, error) {
	dir, err := filepath.EvalSymlinks(t.dir)
	if err != nil {
		return "", err
	}
	p, err := filepath.EvalSymlinks(filepath.Join(t.dir, name+".gguf"))
	if err != nil {
		return "", err
	}
	if rel, err := filepath.Rel(dir, p); err != nil || strings.HasPrefix(rel, "..") {
		return "", fmt.Errorf("model %q resolves outside the models directory: %w", name, os.ErrPermission)
	}
	return p, nil
}

// held returns the references still held, per name.
func (t *testModels) held() map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string]int{}
	for k, v := range t.refs {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}

// newTestModels builds a models dir with the reference models under
// valid names and a symlink that escapes the directory.
func newTestModels(t testing.TB) *testModels {
	t.Helper()
	dir := t.TempDir()
	f32, err := refdata.Path("models", "stories260K.gguf")
	if err != nil {
		t.Fatal(err)
	}
	q8, err := refdata.Path("models", "stories260K-Q8_0.gguf")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{f32, q8} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("reference model missing: %v", err)
		}
	}
	for name, src := range map[string]string{"stories260k": f32, "stories260k-q8": q8} {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".gguf"), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A file that is not a GGUF model.
	if err := os.WriteFile(filepath.Join(dir, "broken.gguf"), []byte("GGUF but not really"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A symlink inside the models dir pointing outside it.
	outside := filepath.Join(t.TempDir(), "outside.gguf")
	if err := os.Symlink(f32, outside); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "escape.gguf")); err != nil {
		t.Fatal(err)
	}
	return &testModels{
		dir:    dir,
		be:     engine.NewBackend(reference.New(), engine.Options{}),
		loaded: map[string]*model.Model{},
		refs:   map[string]int{},
	}
}

// faultyBackend fails every Decode (a crashed plugin, a kernel error).
type faultyBackend struct {
	backends.Backend
	err error
}

func (f faultyBackend) Decode(ctx context.Context, req backends.DecodeRequest) (*backends.DecodeResult, error) {
	return nil, f.err
}

// lyingBackend answers Decode with one logit too few or a wrong position
// (a plugin that breaks the protocol).
type lyingBackend struct {
	backends.Backend
	position bool // lie about the position instead of the logits
}

func (l lyingBackend) Decode(ctx context.Context, req backends.DecodeRequest) (*backends.DecodeResult, error) {
	res, err := l.Backend.Decode(ctx, req)
	if err != nil {
		return nil, err
	}
	if l.position {
		res.NPast += 100
	} else {
		res.Logits = res.Logits[:len(res.Logits)-1]
	}
	return res, nil
}

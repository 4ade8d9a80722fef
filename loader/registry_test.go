package loader

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/realmrt/realm/internal/refdata"
)

// storiesPath returns the reference model; tests fail without it.
func storiesPath(t testing.TB) string {
	t.Helper()
	p, err := refdata.Path("models", "stories260K.gguf")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("reference model missing: %v", err)
	}
	return p
}

// copyFile copies src to dst.
func copyFile(t testing.TB, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestValidName(t *testing.T) {
	tests := []struct {
		name string
		rule string // "" for valid
	}{
		{"stories260k", ""},
		{"llama-3.2-1b_q4", ""},
		{"0", ""},
		{"a.b", ""},
		{strings.Repeat("a", 128), ""},
		{"", "empty"},
		{strings.Repeat("a", 129), "longer than 128"},
		{strings.Repeat("x", 10<<20), "longer than 128"},
		{"../x", "must start with"},
		{"a/../b", "path separator"},
		{"a..b", `".."`},
		{"x..", `".."`},
		{"/etc/passwd", "must start with"},
		{"a/b", "path separator"},
		{`a\b`, "path separator"},
		{"x\x00y", "NUL"},
		{"Llama", "upper-case"},
		{"llaMa", "upper-case"},
		{".hidden", "must start with"},
		{"-x", "must start with"},
		{"_x", "must start with"},
		{"a b", "allowed are"},
		{"a:b", "allowed are"},
		{"é", "must start with"},
		{"aé", "allowed are"},
		{"a\n", "allowed are"},
	}
	for _, tc := range tests {
		err := ValidName(tc.name)
		if tc.rule == "" {
			if err != nil {
				t.Errorf("ValidName(%q) = %v", tc.name, err)
			}
			continue
		}
		if !errors.Is(err, ErrInvalidName) || !strings.Contains(err.Error(), tc.rule) {
			t.Errorf("ValidName(%.40q) = %v, want ErrInvalidName with %q", tc.name, err, tc.rule)
		}
		if err != nil && len(err.Error()) > 300 {
			t.Errorf("error for a %d-byte name is %d bytes long", len(tc.name), len(err.Error()))
		}
	}
}

// registryFixture builds a config dir with models/, a file outside it
// and a mix of symlinks.
func registryFixture(t *testing.T) (*Registry, string) {
	t.Helper()
	dir := t.TempDir()
	models := filepath.Join(dir, "models")
	if err := os.Mkdir(models, 0o755); err != nil {
		t.Fatal(err)
	}
	src := storiesPath(t)
	copyFile(t, src, filepath.Join(models, "tiny.gguf"))
	copyFile(t, src, filepath.Join(dir, "secret.gguf"))
	if err := os.Mkdir(filepath.Join(models, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile(t, src, filepath.Join(models, "sub", "deep.gguf"))
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Symlink(filepath.Join(dir, "secret.gguf"), filepath.Join(models, "escape.gguf")))
	must(os.Symlink("../secret.gguf", filepath.Join(models, "escape-rel.gguf")))
	must(os.Symlink("tiny.gguf", filepath.Join(models, "alias.gguf")))
	must(os.Symlink("sub/deep.gguf", filepath.Join(models, "deep.gguf")))
	must(os.Symlink("nowhere.gguf", filepath.Join(models, "dangling.gguf")))
	must(os.Symlink("/etc/passwd", filepath.Join(models, "passwd.gguf")))
	must(os.Mkdir(filepath.Join(models, "dir.gguf"), 0o755))
	copyFile(t, src, filepath.Join(models, "Upper.gguf"))
	must(os.WriteFile(filepath.Join(models, "notes.txt"), []byte("x"), 0o644))
	must(os.WriteFile(filepath.Join(models, "broken.gguf"), []byte("not a gguf"), 0o644))

	cfg := mustParseAt(t, dir, `
models_dir = "models"
model "configured" {
  path = "sub/deep.gguf"
  sha256 = "00000000000000000000000000000000000000000000000000000000000000aa"
}
model "tiny" { path = "sub/deep.gguf" }
model "outside" { path = "../secret.gguf" }
model "absent" {}
`)
	return NewRegistry(cfg), dir
}

func mustParseAt(t *testing.T, dir, src string) *Config {
	t.Helper()
	cfg, err := ParseConfig([]byte(src), filepath.Join(dir, "plugins.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestRegistryResolve(t *testing.T) {
	r, dir := registryFixture(t)
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	models := filepath.Join(realDir, "models")
	tests := []struct {
		name string
		path string // want, relative to models
		err  error
		msg  string
	}{
		{name: "tiny", path: "sub/deep.gguf"}, // the block wins over tiny.gguf
		{name: "configured", path: "sub/deep.gguf"},
		{name: "alias", path: "tiny.gguf"}, // symlink inside is fine
		{name: "deep", path: "sub/deep.gguf"},
		{name: "escape", err: ErrOutsideModelsDir, msg: "not inside"},
		{name: "escape-rel", err: ErrOutsideModelsDir},
		{name: "passwd", err: ErrOutsideModelsDir},
		{name: "outside", err: ErrOutsideModelsDir},
		{name: "absent", err: ErrNotFound, msg: "does not exist"},
		{name: "nothing", err: ErrNotFound},
		{name: "dangling", err: ErrNotFound},
		{name: "dir", err: ErrNotFound, msg: "not a regular file"},
		{name: "../secret", err: ErrInvalidName},
		{name: "/etc/passwd", err: ErrInvalidName},
		{name: "sub/deep", err: ErrInvalidName},
		{name: "x\x00y", err: ErrInvalidName},
		{name: "", err: ErrInvalidName},
		{name: strings.Repeat("a", 10<<20), err: ErrInvalidName},
		{name: "Upper", err: ErrInvalidName},
	}
	for _, tc := range tests {
		res, err := r.Resolve(tc.name)
		if tc.err != nil {
			if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("Resolve(%.40q) = %v, want %v (%q)", tc.name, err, tc.err, tc.msg)
			}
			continue
		}
		if err != nil {
			t.Errorf("Resolve(%q): %v", tc.name, err)
			continue
		}
		if want := filepath.Join(models, tc.path); res.Path != want {
			t.Errorf("Resolve(%q) = %q, want %q", tc.name, res.Path, want)
		}
		if res.Size <= 0 {
			t.Errorf("Resolve(%q) size %d", tc.name, res.Size)
		}
	}
	res, _ := r.Resolve("configured")
	if !res.Configured || res.SHA256 == "" {
		t.Errorf("configured = %+v", res)
	}
}

func TestRegistryModelsDirSymlink(t *testing.T) {
	// A models_dir that is itself a symlink is resolved first, so files
	// inside its target are inside.
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	if err := os.Mkdir(store, 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile(t, storiesPath(t), filepath.Join(store, "tiny.gguf"))
	if err := os.Symlink(store, filepath.Join(dir, "models")); err != nil {
		t.Fatal(err)
	}
	r := NewRegistry(mustParseAt(t, dir, `models_dir = "models"`))
	if _, err := r.Resolve("tiny"); err != nil {
		t.Fatal(err)
	}
	r = NewRegistry(mustParseAt(t, dir, `models_dir = "absent"`))
	if _, err := r.Resolve("tiny"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing models dir: %v", err)
	}
}

func TestRegistryList(t *testing.T) {
	r, _ := registryFixture(t)
	list, err := r.List()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]ModelEntry{}
	var names []string
	for _, e := range list {
		got[e.Name] = e
		names = append(names, e.Name)
	}
	want := "absent alias broken configured deep outside tiny"
	if strings.Join(names, " ") != want {
		t.Errorf("names = %q, want %q", strings.Join(names, " "), want)
	}
	for _, n := range []string{"alias", "tiny", "configured", "deep"} {
		e := got[n]
		if e.Error != "" || e.Size <= 0 || e.Type == "" || e.Arch != "llama" {
			t.Errorf("%s = %+v", n, e)
		}
	}
	if !got["configured"].Configured || got["configured"].SHA256 == "" || got["alias"].Configured {
		t.Errorf("configured flags: %+v / %+v", got["configured"], got["alias"])
	}
	if !strings.Contains(got["broken"].Error, "invalid model file") {
		t.Errorf("broken = %+v", got["broken"])
	}
	if !strings.Contains(got["outside"].Error, "not inside") || !strings.Contains(got["absent"].Error, "does not exist") {
		t.Errorf("outside = %+v, absent = %+v", got["outside"], got["absent"])
	}
}

func FuzzValidName(f *testing.F) {
	for _, s := range []string{"stories260k", "../x", "a..b", "a/b", "x\x00y", "", "A", "a.gguf"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if err := ValidName(name); err != nil {
			if !errors.Is(err, ErrInvalidName) || len(err.Error()) > 300 {
				t.Fatalf("bad error %v", err)
			}
			return
		}
		if strings.ContainsAny(name, "/\\\x00") || strings.Contains(name, "..") || len(name) > MaxNameLen || strings.ToLower(name) != name {
			t.Fatalf("accepted %q", name)
		}
		if p := filepath.Join("/models", name+".gguf"); filepath.Dir(p) != "/models" {
			t.Fatalf("%q escapes: %s", name, p)
		}
	})
}

package loader

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/realmrt/realm/abi"
)

// MaxNameLen is the longest model (or backend, or app) name.
const MaxNameLen = abi.MaxModelNameLen

// Registry errors. Errors returned by ValidName, Resolve and
// ModelCache.Acquire wrap one of these, so callers (the ABI layer) map
// them with errors.Is; the message says which rule failed.
var (
	// ErrInvalidName: the name breaks ^[a-z0-9][a-z0-9._-]{0,127}$ or contains "..".
	ErrInvalidName = errors.New("invalid model name")
	// ErrNotFound: no model block and no <models_dir>/<name>.gguf.
	ErrNotFound = errors.New("model not found")
	// ErrOutsideModelsDir: the file, after symlinks, is not inside the models directory.
	ErrOutsideModelsDir = errors.New("model path outside the models directory")
	// ErrChecksum: the file's sha256 differs from the configured one.
	ErrChecksum = errors.New("model checksum mismatch")
)

// quoteName quotes a (possibly hostile) name for an error message,
// shortening it so that a 10 MB name does not become a 10 MB message.
func quoteName(name string) string {
	const max = 40
	if len(name) > max {
		return fmt.Sprintf("%q... (%d bytes)", name[:max], len(name))
	}
	return fmt.Sprintf("%q", name)
}

// ValidName checks a name against ^[a-z0-9][a-z0-9._-]{0,127}$ and rejects
// ".." (abi.CheckModelName, the rule the host applies to guests). The
// error wraps ErrInvalidName and names the rule that failed.
func ValidName(name string) error {
	if why := abi.CheckModelName(name); why != "" {
		return fmt.Errorf("%w %s: %s", ErrInvalidName, quoteName(name), why)
	}
	return nil
}

// Registry maps model names to files. It holds no open files and no
// mutable state; it reads the file system on every call.
type Registry struct {
	modelsDir string
	blocks    []ModelConfig
	kvBudget  int64 // Config.KVBudget
}

// NewRegistry builds the registry of a configuration.
func NewRegistry(cfg *Config) *Registry {
	return &Registry{modelsDir: cfg.ModelsDir, blocks: slices.Clone(cfg.Models), kvBudget: cfg.KVBudget}
}

// ModelsDir returns the configured models directory.
func (r *Registry) ModelsDir() string { return r.modelsDir }

// Resolved is a model name resolved to a file.
type Resolved struct {
	// Name is the model name.
	Name string
	// Path is the real path of the file (symlinks resolved).
	Path string
	// SHA256 is the configured digest, or "".
	SHA256 string
	// Backend is the backend the model block requires, or "".
	Backend string
	// Configured reports that a model block declared the name.
	Configured bool
	// Size is the file size in bytes.
	Size int64
	// KVBudget is the model's KV pool in bytes (0: the backend's
	// default): its model block's kv_budget, else the file's.
	KVBudget int64
}

// Resolve validates name and returns its file. Model blocks win over
// <models_dir>/<name>.gguf. The errors wrap ErrInvalidName, ErrNotFound
// or ErrOutsideModelsDir.
func (r *Registry) Resolve(name string) (Resolved, error) {
	if err := ValidName(name); err != nil {
		return Resolved{}, err
	}
	res := Resolved{Name: name, Path: filepath.Join(r.modelsDir, name+".gguf"), KVBudget: r.kvBudget}
	if i := slices.IndexFunc(r.blocks, func(m ModelConfig) bool { return m.Name == name }); i >= 0 {
		b := r.blocks[i]
		res = Resolved{Name: name, Path: b.Path, SHA256: b.SHA256, Backend: b.Backend, Configured: true, KVBudget: r.kvBudget}
		if b.KVBudget > 0 {
			res.KVBudget = b.KVBudget
		}
	}
	real, size, err := r.check(res.Path)
	if err != nil {
		return Resolved{}, fmt.Errorf("model %q: %w", name, err)
	}
	res.Path, res.Size = real, size
	return res, nil
}

// check resolves symlinks in p and verifies that the result is a regular
// file inside the real models directory.
func (r *Registry) check(p string) (string, int64, error) {
	realDir, err := filepath.EvalSymlinks(r.modelsDir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", 0, fmt.Errorf("%w: models directory %s does not exist", ErrNotFound, r.modelsDir)
		}
		return "", 0, fmt.Errorf("%w: models directory %s: %w", ErrNotFound, r.modelsDir, err)
	}
	realDir, err = filepath.Abs(realDir)
	if err != nil {
		return "", 0, fmt.Errorf("models directory: %w", err)
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", 0, fmt.Errorf("%w: %s does not exist", ErrNotFound, p)
		}
		return "", 0, fmt.Errorf("%w: %s: %w", ErrNotFound, p, err)
	}
	real, err = filepath.Abs(real)
	if err != nil {
		return "", 0, fmt.Errorf("%s: %w", p, err)
	}
	if !within(realDir, real) {
		return "", 0, fmt.Errorf("%w: %s resolves to %s, which is not inside %s", ErrOutsideModelsDir, p, real, realDir)
	}
	st, err := os.Stat(real)
	if err != nil {
		return "", 0, fmt.Errorf("%w: %s: %w", ErrNotFound, real, err)
	}
	if !st.Mode().IsRegular() {
		return "", 0, fmt.Errorf("%w: %s is not a regular file", ErrNotFound, real)
	}
	return real, st.Size(), nil
}

// within reports whether path p lies strictly inside directory dir (both
// absolute and clean).
func within(dir, p string) bool {
	rel, err := filepath.Rel(dir, p)
	if err != nil || rel == "." || filepath.IsAbs(rel) {
		return false
	}
	return rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// ModelEntry describes one servable model.
type ModelEntry struct {
	// Name is the model name.
	Name string `json:"name"`
	// Path is the real path of the file.
	Path string `json:"path"`
	// Size is the file size in bytes.
	Size int64 `json:"size"`
	// Type is the quantization: the name of general.file_type ("Q4_K_M"),
	// or the tensor type holding most bytes ("F32").
	Type string `json:"type,omitempty"`
	// Arch is general.architecture.
	Arch string `json:"arch,omitempty"`
	// SHA256 is the configured digest, if any.
	SHA256 string `json:"sha256,omitempty"`
	// Backend is the backend the model block requires, if any.
	Backend string `json:"backend,omitempty"`
	// KVBudget is the configured KV pool in bytes (0: the backend's
	// default).
	KVBudget int64 `json:"kv_budget,omitempty"`
	// Configured reports that a model block declared the name.
	Configured bool `json:"configured"`
	// Loaded reports whether the model is loaded (ModelCache.List only).
	Loaded bool `json:"loaded"`
	// Refs is the number of holders of the loaded model.
	Refs int `json:"refs"`
	// Error says why the model cannot be served (the entry is then not
	// servable but still listed so that a misconfiguration is visible).
	Error string `json:"error,omitempty"`
}

// List returns every model name the registry can serve: model blocks and
// the *.gguf files in the models directory whose base name is a valid
// name and that resolve inside it, sorted by name. Model blocks that fail
// to resolve, and files whose GGUF header does not parse, are listed with
// Error set so that a misconfiguration is visible. An unreadable models
// directory is an error; a missing one is not (only blocks are listed).
func (r *Registry) List() ([]ModelEntry, error) {
	var out []ModelEntry
	names := map[string]bool{}
	for _, b := range r.blocks {
		names[b.Name] = true
		out = append(out, r.entry(b.Name))
	}
	des, err := os.ReadDir(r.modelsDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("loader: models directory: %w", err)
	}
	for _, de := range des {
		base, ok := strings.CutSuffix(de.Name(), ".gguf")
		if !ok || names[base] || ValidName(base) != nil {
			continue
		}
		if _, err := r.Resolve(base); err != nil {
			// A stray file (a dangling or escaping symlink, a directory
			// named x.gguf) is not servable and not configured: skip it.
			continue
		}
		names[base] = true
		out = append(out, r.entry(base))
	}
	slices.SortFunc(out, func(a, b ModelEntry) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// entry resolves one name into a ModelEntry, reading the GGUF header for
// the type and architecture.
func (r *Registry) entry(name string) ModelEntry {
	res, err := r.Resolve(name)
	if err != nil {
		e := ModelEntry{Name: name, Error: err.Error()}
		if b, ok := r.block(name); ok {
			e.Path, e.SHA256, e.Backend, e.Configured = b.Path, b.SHA256, b.Backend, true
		}
		return e
	}
	e := ModelEntry{Name: name, Path: res.Path, Size: res.Size, SHA256: res.SHA256, Backend: res.Backend, Configured: res.Configured,
		KVBudget: res.KVBudget}
	e.Type, e.Arch, err = describeFile(res.Path)
	if err != nil {
		e.Error = err.Error()
	}
	return e
}

func (r *Registry) block(name string) (ModelConfig, bool) {
	i := slices.IndexFunc(r.blocks, func(m ModelConfig) bool { return m.Name == name })
	if i < 0 {
		return ModelConfig{}, false
	}
	return r.blocks[i], true
}

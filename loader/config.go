package loader

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/klauspost/cpuid/v2"
)

// DefaultConfigFile is the name of the configuration file looked up in the
// working directory when neither a flag nor REALM_CONFIG names one.
const DefaultConfigFile = "plugins.hcl"

// ArchAny in a backend block means the backend runs on every architecture.
const ArchAny = "any"

// maxConfigBytes caps the size of a configuration file.
const maxConfigBytes = 4 << 20

// Config is a parsed and validated plugins.hcl. All paths in it are
// absolute: relative paths in the file resolve against the directory of
// the file (Dir), except model paths, which resolve against ModelsDir.
type Config struct {
	// Path is the absolute path of the configuration file.
	Path string `json:"path"`
	// Dir is the directory relative paths resolve against.
	Dir string `json:"dir"`
	// ModelsDir is the directory holding the servable models.
	ModelsDir string `json:"models_dir"`
	// MemoryBudget caps the bytes of loaded models; 0 means no limit.
	MemoryBudget int64 `json:"memory_budget"`
	// KVBudget is the KV pool of each loaded model in bytes, shared by
	// its sessions (0: the backend's default); a model block may set
	// its own.
	KVBudget int64 `json:"kv_budget,omitempty"`
	// Backends lists the declared backends in file order.
	Backends []BackendConfig `json:"backends"`
	// Models lists the model blocks in file order.
	Models []ModelConfig `json:"models"`
	// Apps lists the app blocks in file order.
	Apps []AppConfig `json:"apps"`
	// Server holds the HTTP server settings.
	Server ServerConfig `json:"server"`
	// Cluster holds the NATS security settings of realm serve --cluster
	// and realm worker (config_cluster.go).
	Cluster ClusterConfig `json:"cluster"`
}

// BackendConfig is one backend block.
type BackendConfig struct {
	// Name is the block label, e.g. "cpu-avx2".
	Name string `json:"name"`
	// Binary is the absolute path of the plugin executable.
	Binary string `json:"binary"`
	// Args and Env are passed to the plugin process.
	Args []string `json:"args,omitempty"`
	Env  []string `json:"env,omitempty"`
	// Arch is a GOARCH value or ArchAny.
	Arch string `json:"arch"`
	// Requires lists the cpuid feature names the backend cannot run without.
	Requires []string `json:"requires"`
	// Prefers lists cpuid feature names the backend uses when present;
	// each one detected adds to the feature score.
	Prefers []string `json:"prefers,omitempty"`
	// Priority ranks eligible backends; higher wins.
	Priority int `json:"priority"`
	// GPU marks a backend that computes on an accelerator; at equal
	// priority it ranks above CPU backends.
	GPU bool `json:"gpu"`
	// Threads is the number of compute threads; 0 lets the plugin decide.
	Threads int `json:"threads"`
	// Probe asks the host to start the plugin and check it (Info and a
	// tiny self-test) before selecting it.
	Probe bool `json:"probe"`
}

// ModelConfig is one model block.
type ModelConfig struct {
	// Name is the block label, the name guests load the model by.
	Name string `json:"name"`
	// Path is the absolute path of the GGUF file.
	Path string `json:"path"`
	// SHA256 is the expected lower-case hex digest, or "".
	SHA256 string `json:"sha256,omitempty"`
	// Backend names the backend this model must run on, or "" for any.
	Backend string `json:"backend,omitempty"`
	// KVBudget is the model's KV pool in bytes (0: Config.KVBudget).
	KVBudget int64 `json:"kv_budget,omitempty"`
}

// AppConfig is one app block: a guest module and its policy.
type AppConfig struct {
	// Name is the block label.
	Name string `json:"name"`
	// WASM is the absolute path of the guest module.
	WASM string `json:"wasm"`
	// Models lists the model names (or path.Match patterns, "*" for all)
	// the app may load.
	Models []string `json:"models"`
	// MaxTokens caps the tokens generated per request (0: no cap).
	MaxTokens int `json:"max_tokens"`
	// Context caps the context size of a session (0: the model's).
	Context int `json:"context"`
	// Timeout bounds one run of the app (0: the host's default,
	// core.DefaultTimeout).
	Timeout time.Duration `json:"timeout"`
	// Memory caps the guest's linear memory in bytes (0: the host's
	// default, core.DefaultMemoryBytes).
	Memory int64 `json:"memory"`
	// MaxOutput caps the bytes the guest may write to stdout (0: the
	// host's default, core.DefaultMaxOutput).
	MaxOutput int64 `json:"max_output"`
	// MaxN caps the choices (OpenAI's n) of one request to the app (0:
	// the server's default).
	MaxN int `json:"max_n,omitempty"`
}

// AllowsModel reports whether the app may load the named model.
func (a *AppConfig) AllowsModel(name string) bool {
	for _, p := range a.Models {
		if p == name {
			return true
		}
		if ok, err := path.Match(p, name); err == nil && ok {
			return true
		}
	}
	return false
}

// ServerConfig is the server block.
type ServerConfig struct {
	// Addr is the listen address.
	Addr string `json:"addr"`
	// APIKeysFile is the absolute path of a file of API keys, or "".
	APIKeysFile string `json:"api_keys_file,omitempty"`
	// MaxConcurrent caps the requests of one model running at once:
	// the sessions the backend decodes together (continuous batching).
	MaxConcurrent int `json:"max_concurrent"`
	// MaxQueue caps the requests waiting for a slot.
	MaxQueue int `json:"max_queue"`
}

// Backend returns the backend block with the given name.
func (c *Config) Backend(name string) (*BackendConfig, bool) {
	for i := range c.Backends {
		if c.Backends[i].Name == name {
			return &c.Backends[i], true
		}
	}
	return nil, false
}

// Model returns the model block with the given name.
func (c *Config) Model(name string) (*ModelConfig, bool) {
	for i := range c.Models {
		if c.Models[i].Name == name {
			return &c.Models[i], true
		}
	}
	return nil, false
}

// App returns the app block with the given name.
func (c *Config) App(name string) (*AppConfig, bool) {
	for i := range c.Apps {
		if c.Apps[i].Name == name {
			return &c.Apps[i], true
		}
	}
	return nil, false
}

// The raw HCL schema. Every attribute carries its value range so that
// validation errors point at file:line.

type rawConfig struct {
	ModelsDir         *string      `hcl:"models_dir,optional"`
	ModelsDirRange    hcl.Range    `hcl:"models_dir,attr_value_range"`
	MemoryBudget      *string      `hcl:"memory_budget,optional"`
	MemoryBudgetRange hcl.Range    `hcl:"memory_budget,attr_value_range"`
	KVBudget          *string      `hcl:"kv_budget,optional"`
	KVBudgetRange     hcl.Range    `hcl:"kv_budget,attr_value_range"`
	Backends          []rawBackend `hcl:"backend,block"`
	Models            []rawModel   `hcl:"model,block"`
	Apps              []rawApp     `hcl:"app,block"`
	Server            *rawServer   `hcl:"server,block"`
	Cluster           *rawCluster  `hcl:"cluster,block"`
}

type rawBackend struct {
	Name          string    `hcl:"name,label"`
	NameRange     hcl.Range `hcl:"name,label_range"`
	Binary        *string   `hcl:"binary,optional"`
	BinaryRange   hcl.Range `hcl:"binary,attr_value_range"`
	Args          []string  `hcl:"args,optional"`
	Env           []string  `hcl:"env,optional"`
	EnvRange      hcl.Range `hcl:"env,attr_value_range"`
	Arch          *string   `hcl:"arch,optional"`
	ArchRange     hcl.Range `hcl:"arch,attr_value_range"`
	Requires      []string  `hcl:"requires,optional"`
	RequiresRange hcl.Range `hcl:"requires,attr_value_range"`
	Prefers       []string  `hcl:"prefers,optional"`
	PrefersRange  hcl.Range `hcl:"prefers,attr_value_range"`
	Priority      *int      `hcl:"priority,optional"`
	PriorityRange hcl.Range `hcl:"priority,attr_value_range"`
	GPU           *bool     `hcl:"gpu,optional"`
	Threads       *int      `hcl:"threads,optional"`
	ThreadsRange  hcl.Range `hcl:"threads,attr_value_range"`
	Probe         *bool     `hcl:"probe,optional"`
}

type rawModel struct {
	Name         string    `hcl:"name,label"`
	NameRange    hcl.Range `hcl:"name,label_range"`
	Path         *string   `hcl:"path,optional"`
	PathRange    hcl.Range `hcl:"path,attr_value_range"`
	SHA256       *string   `hcl:"sha256,optional"`
	SHA256Range  hcl.Range `hcl:"sha256,attr_value_range"`
	Backend      *string   `hcl:"backend,optional"`
	BackendRange hcl.Range `hcl:"backend,attr_value_range"`
	KVBudget     *string   `hcl:"kv_budget,optional"`
	KVRange      hcl.Range `hcl:"kv_budget,attr_value_range"`
}

type rawApp struct {
	Name           string    `hcl:"name,label"`
	NameRange      hcl.Range `hcl:"name,label_range"`
	WASM           string    `hcl:"wasm,attr"`
	WASMRange      hcl.Range `hcl:"wasm,attr_value_range"`
	Models         []string  `hcl:"models,optional"`
	ModelsRange    hcl.Range `hcl:"models,attr_value_range"`
	MaxTokens      *int      `hcl:"max_tokens,optional"`
	MaxTokensRange hcl.Range `hcl:"max_tokens,attr_value_range"`
	Context        *int      `hcl:"context,optional"`
	ContextRange   hcl.Range `hcl:"context,attr_value_range"`
	Timeout        *string   `hcl:"timeout,optional"`
	TimeoutRange   hcl.Range `hcl:"timeout,attr_value_range"`
	Memory         *string   `hcl:"memory,optional"`
	MemoryRange    hcl.Range `hcl:"memory,attr_value_range"`
	MaxOutput      *string   `hcl:"max_output,optional"`
	MaxOutputRange hcl.Range `hcl:"max_output,attr_value_range"`
	MaxN           *int      `hcl:"max_n,optional"`
	MaxNRange      hcl.Range `hcl:"max_n,attr_value_range"`
}

type rawServer struct {
	DefRange           hcl.Range `hcl:",def_range"`
	Addr               *string   `hcl:"addr,optional"`
	AddrRange          hcl.Range `hcl:"addr,attr_value_range"`
	APIKeysFile        *string   `hcl:"api_keys_file,optional"`
	MaxConcurrent      *int      `hcl:"max_concurrent,optional"`
	MaxConcurrentRange hcl.Range `hcl:"max_concurrent,attr_value_range"`
	MaxQueue           *int      `hcl:"max_queue,optional"`
	MaxQueueRange      hcl.Range `hcl:"max_queue,attr_value_range"`
}

// knownArchs are the GOARCH values a backend block may name.
func knownArchs() []string {
	return []string{
		"386", "amd64", "arm", "arm64", "loong64", "mips", "mips64", "mips64le",
		"mipsle", "ppc64", "ppc64le", "riscv64", "s390x", "wasm",
	}
}

// LoadConfig reads and parses the configuration file at path.
func LoadConfig(path string) (*Config, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("loader: config %s: %w", path, err)
	}
	f, err := os.Open(abs)
	if err != nil {
		return nil, fmt.Errorf("loader: config: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("loader: config: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("loader: config %s: not a regular file", abs)
	}
	if st.Size() > maxConfigBytes {
		return nil, fmt.Errorf("loader: config %s: %d bytes exceeds the %d byte limit", abs, st.Size(), maxConfigBytes)
	}
	src := make([]byte, st.Size())
	if _, err := f.ReadAt(src, 0); err != nil {
		return nil, fmt.Errorf("loader: config %s: %w", abs, err)
	}
	return ParseConfig(src, abs)
}

// ParseConfig parses configuration source. filename names the file in
// error messages and its directory anchors relative paths; it is made
// absolute against the working directory.
//
// Errors are hcl.Diagnostics (wrapped) whose text names file:line.
func ParseConfig(src []byte, filename string) (*Config, error) {
	abs, err := filepath.Abs(filename)
	if err != nil {
		return nil, fmt.Errorf("loader: config %s: %w", filename, err)
	}
	if len(src) > maxConfigBytes {
		return nil, fmt.Errorf("loader: config %s: %d bytes exceeds the %d byte limit", filename, len(src), maxConfigBytes)
	}
	file, diags := hclparse.NewParser().ParseHCL(src, filename)
	if diags.HasErrors() {
		return nil, fmt.Errorf("loader: config: %w", diags)
	}
	var raw rawConfig
	diags = gohcl.DecodeBody(file.Body, nil, &raw)
	if diags.HasErrors() {
		return nil, fmt.Errorf("loader: config: %w", diags)
	}
	cfg, diags := raw.validate(filepath.Dir(abs))
	if diags.HasErrors() {
		return nil, fmt.Errorf("loader: config: %w", diags)
	}
	cfg.Path = abs
	return cfg, nil
}

// diag builds an error diagnostic at r.
func diag(r hcl.Range, summary, format string, args ...any) *hcl.Diagnostic {
	rr := r
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   fmt.Sprintf(format, args...),
		Subject:  &rr,
	}
}

// resolvePath makes p absolute against dir.
func resolvePath(dir, p string) string {
	if p == "" {
		return ""
	}
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(dir, p)
}

func (raw *rawConfig) validate(dir string) (*Config, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	cfg := &Config{Dir: dir, ModelsDir: filepath.Join(dir, "models")}
	if raw.ModelsDir != nil {
		if *raw.ModelsDir == "" {
			diags = append(diags, diag(raw.ModelsDirRange, "Invalid models_dir", "models_dir must not be empty"))
		} else {
			cfg.ModelsDir = resolvePath(dir, *raw.ModelsDir)
		}
	}
	if raw.MemoryBudget != nil {
		n, err := ParseSize(*raw.MemoryBudget)
		if err != nil {
			diags = append(diags, diag(raw.MemoryBudgetRange, "Invalid memory_budget", "%v", err))
		}
		cfg.MemoryBudget = n
	}
	if raw.KVBudget != nil {
		n, err := ParseSize(*raw.KVBudget)
		if err != nil {
			diags = append(diags, diag(raw.KVBudgetRange, "Invalid kv_budget", "%v", err))
		}
		cfg.KVBudget = n
	}

	var d hcl.Diagnostics
	cfg.Backends, d = uniqueBlocks("backend", raw.Backends, func(rb rawBackend) (string, hcl.Range) { return rb.Name, rb.NameRange },
		func(rb rawBackend) (BackendConfig, hcl.Diagnostics) { return rb.validate(dir) })
	diags = append(diags, d...)
	// Models validate against the configuration so far (models_dir).
	cfg.Models, d = uniqueBlocks("model", raw.Models, func(rm rawModel) (string, hcl.Range) { return rm.Name, rm.NameRange },
		func(rm rawModel) (ModelConfig, hcl.Diagnostics) { return rm.validate(cfg) })
	diags = append(diags, d...)
	cfg.Apps, d = uniqueBlocks("app", raw.Apps, func(ra rawApp) (string, hcl.Range) { return ra.Name, ra.NameRange },
		func(ra rawApp) (AppConfig, hcl.Diagnostics) { return ra.validate(dir) })
	diags = append(diags, d...)

	cfg.Server = ServerConfig{Addr: "127.0.0.1:8080", MaxConcurrent: 4, MaxQueue: 16}
	if raw.Server != nil {
		diags = append(diags, raw.Server.validate(dir, &cfg.Server)...)
	}
	if raw.Cluster != nil {
		diags = append(diags, raw.Cluster.validate(dir, &cfg.Cluster)...)
	}
	return cfg, diags
}

// validFeature reports whether name is exactly a cpuid FeatureID name.
func validFeature(name string) bool {
	id := cpuid.ParseFeature(name)
	return id != cpuid.UNKNOWN && id.String() == name
}

func validateFeatures(list []string, r hcl.Range, attr string) hcl.Diagnostics {
	var diags hcl.Diagnostics
	seen := map[string]bool{}
	for _, f := range list {
		switch {
		case !validFeature(f):
			hint := ""
			if id := cpuid.ParseFeature(f); id != cpuid.UNKNOWN {
				hint = fmt.Sprintf(" (did you mean %q?)", id.String())
			}
			diags = append(diags, diag(r, "Unknown CPU feature", "%s: %q is not a cpuid feature name%s", attr, f, hint))
		case seen[f]:
			diags = append(diags, diag(r, "Duplicate CPU feature", "%s: %q is listed twice", attr, f))
		}
		seen[f] = true
	}
	return diags
}

func (rb *rawBackend) validate(dir string) (BackendConfig, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	b := BackendConfig{Name: rb.Name, Arch: ArchAny, Requires: []string{}, Args: rb.Args}
	if err := ValidName(rb.Name); err != nil {
		diags = append(diags, diag(rb.NameRange, "Invalid backend name", "%v", err))
	}
	b.Binary = filepath.Join(dir, "bin", "realm-backend-"+rb.Name)
	if rb.Binary != nil {
		if *rb.Binary == "" {
			diags = append(diags, diag(rb.BinaryRange, "Invalid binary", "binary must not be empty"))
		} else {
			b.Binary = resolvePath(dir, *rb.Binary)
		}
	}
	for _, e := range rb.Env {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
			diags = append(diags, diag(rb.EnvRange, "Invalid env", "env entry %q is not KEY=VALUE", e))
		}
	}
	b.Env = rb.Env
	if rb.Arch != nil {
		b.Arch = *rb.Arch
		if b.Arch != ArchAny && !slices.Contains(knownArchs(), b.Arch) {
			diags = append(diags, diag(rb.ArchRange, "Invalid arch", "arch %q is not %q or a GOARCH value (%s)", b.Arch, ArchAny, strings.Join(knownArchs(), ", ")))
		}
	}
	if rb.Requires != nil {
		b.Requires = rb.Requires
	}
	diags = append(diags, validateFeatures(rb.Requires, rb.RequiresRange, "requires")...)
	b.Prefers = rb.Prefers
	diags = append(diags, validateFeatures(rb.Prefers, rb.PrefersRange, "prefers")...)
	for _, p := range rb.Prefers {
		if slices.Contains(rb.Requires, p) {
			diags = append(diags, diag(rb.PrefersRange, "Redundant CPU feature", "prefers: %q is already required", p))
		}
	}
	if rb.Priority != nil {
		b.Priority = *rb.Priority
		if b.Priority < 0 {
			diags = append(diags, diag(rb.PriorityRange, "Invalid priority", "priority must be >= 0, got %d", b.Priority))
		}
	}
	if rb.GPU != nil {
		b.GPU = *rb.GPU
	}
	if rb.Threads != nil {
		b.Threads = *rb.Threads
		if b.Threads < 0 || b.Threads > 4096 {
			diags = append(diags, diag(rb.ThreadsRange, "Invalid threads", "threads must be in [0, 4096] (0: the plugin decides), got %d", b.Threads))
		}
	}
	if rb.Probe != nil {
		b.Probe = *rb.Probe
	}
	return b, diags
}

func (rm *rawModel) validate(cfg *Config) (ModelConfig, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	m := ModelConfig{Name: rm.Name}
	if err := ValidName(rm.Name); err != nil {
		diags = append(diags, diag(rm.NameRange, "Invalid model name", "%v", err))
	}
	p := rm.Name + ".gguf"
	if rm.Path != nil {
		p = *rm.Path
		if p == "" {
			diags = append(diags, diag(rm.PathRange, "Invalid path", "path must not be empty"))
		}
	}
	m.Path = resolvePath(cfg.ModelsDir, p)
	if rm.SHA256 != nil && *rm.SHA256 != "" {
		s := strings.ToLower(*rm.SHA256)
		if len(s) != 64 || strings.Trim(s, "0123456789abcdef") != "" {
			diags = append(diags, diag(rm.SHA256Range, "Invalid sha256", "sha256 must be 64 hex digits, got %q", *rm.SHA256))
		}
		m.SHA256 = s
	}
	if rm.Backend != nil && *rm.Backend != "" {
		m.Backend = *rm.Backend
		if _, ok := cfg.Backend(m.Backend); !ok {
			diags = append(diags, diag(rm.BackendRange, "Unknown backend", "model %q names backend %q, which no backend block declares", rm.Name, m.Backend))
		}
	}
	if rm.KVBudget != nil {
		n, err := ParseSize(*rm.KVBudget)
		if err != nil {
			diags = append(diags, diag(rm.KVRange, "Invalid kv_budget", "%v", err))
		}
		m.KVBudget = n
	}
	return m, diags
}

func (ra *rawApp) validate(dir string) (AppConfig, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	a := AppConfig{Name: ra.Name, Models: ra.Models}
	if err := ValidName(ra.Name); err != nil {
		diags = append(diags, diag(ra.NameRange, "Invalid app name", "%v", err))
	}
	if ra.WASM == "" {
		diags = append(diags, diag(ra.WASMRange, "Invalid wasm", "wasm must not be empty"))
	}
	a.WASM = resolvePath(dir, ra.WASM)
	if a.Models == nil {
		a.Models = []string{}
	}
	for _, p := range a.Models {
		if strings.ContainsAny(p, "*?[") {
			if _, err := path.Match(p, ""); err != nil {
				diags = append(diags, diag(ra.ModelsRange, "Invalid model pattern", "models: %q: %v", p, err))
			}
			continue
		}
		if err := ValidName(p); err != nil {
			diags = append(diags, diag(ra.ModelsRange, "Invalid model name", "models: %v", err))
		}
	}
	nonNeg := func(v *int, r hcl.Range, attr string) int {
		if v == nil {
			return 0
		}
		if *v < 0 {
			diags = append(diags, diag(r, "Invalid "+attr, "%s must be >= 0, got %d", attr, *v))
		}
		return *v
	}
	a.MaxTokens = nonNeg(ra.MaxTokens, ra.MaxTokensRange, "max_tokens")
	a.Context = nonNeg(ra.Context, ra.ContextRange, "context")
	a.MaxN = nonNeg(ra.MaxN, ra.MaxNRange, "max_n")
	if ra.Timeout != nil {
		d, err := time.ParseDuration(*ra.Timeout)
		switch {
		case err != nil:
			diags = append(diags, diag(ra.TimeoutRange, "Invalid timeout", "timeout %q is not a duration like \"60s\" or \"2m\"", *ra.Timeout))
		case d < 0:
			diags = append(diags, diag(ra.TimeoutRange, "Invalid timeout", "timeout must be >= 0, got %s", d))
		}
		a.Timeout = d
	}
	size := func(v *string, r hcl.Range, attr string) int64 {
		if v == nil {
			return 0
		}
		n, err := ParseSize(*v)
		if err != nil {
			diags = append(diags, diag(r, "Invalid "+attr, "%s: %v", attr, err))
		}
		return n
	}
	a.Memory = size(ra.Memory, ra.MemoryRange, "memory")
	if a.Memory > 4<<30 {
		diags = append(diags, diag(ra.MemoryRange, "Invalid memory", "memory: a wasm32 guest can address at most 4GiB, got %d bytes", a.Memory))
	}
	a.MaxOutput = size(ra.MaxOutput, ra.MaxOutputRange, "max_output")
	return a, diags
}

func (rs *rawServer) validate(dir string, s *ServerConfig) hcl.Diagnostics {
	var diags hcl.Diagnostics
	if rs.Addr != nil {
		s.Addr = *rs.Addr
		if s.Addr == "" {
			diags = append(diags, diag(rs.AddrRange, "Invalid addr", "addr must not be empty"))
		}
	}
	if rs.APIKeysFile != nil {
		s.APIKeysFile = resolvePath(dir, *rs.APIKeysFile)
	}
	if rs.MaxConcurrent != nil {
		s.MaxConcurrent = *rs.MaxConcurrent
		if s.MaxConcurrent < 1 {
			diags = append(diags, diag(rs.MaxConcurrentRange, "Invalid max_concurrent", "max_concurrent must be >= 1, got %d", s.MaxConcurrent))
		}
	}
	if rs.MaxQueue != nil {
		s.MaxQueue = *rs.MaxQueue
		if s.MaxQueue < 0 {
			diags = append(diags, diag(rs.MaxQueueRange, "Invalid max_queue", "max_queue must be >= 0, got %d", s.MaxQueue))
		}
	}
	return diags
}

// sizeUnits maps a size suffix to its multiplier.
func sizeUnits() map[string]int64 {
	return map[string]int64{
		"": 1, "B": 1,
		"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
		"KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
	}
}

// uniqueBlocks validates labelled blocks in order; a block whose label
// an earlier block already used is reported as a duplicate (pointing at
// the first) and left out.
func uniqueBlocks[R, C any](kind string, blocks []R, label func(R) (string, hcl.Range), validate func(R) (C, hcl.Diagnostics)) ([]C, hcl.Diagnostics) {
	var (
		out   []C
		diags hcl.Diagnostics
		seen  = map[string]hcl.Range{}
	)
	for _, rb := range blocks {
		name, rng := label(rb)
		if prev, dup := seen[name]; dup {
			diags = append(diags, diag(rng, "Duplicate "+kind, "%s %q is already declared at %s", kind, name, prev))
			continue
		}
		seen[name] = rng
		c, d := validate(rb)
		diags = append(diags, d...)
		out = append(out, c)
	}
	return out, diags
}

// ParseSize parses a byte size such as "2GiB", "64MiB", "1.5GB" or "4096".
// Binary (KiB, MiB, GiB, TiB) and decimal (KB, MB, GB, TB) units are
// accepted; the result must be a non-negative whole number of bytes that
// fits an int64.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := t, ""
	if i >= 0 {
		num, unit = t[:i], strings.TrimSpace(t[i:])
	}
	mult, ok := sizeUnits()[unit]
	if !ok || num == "" {
		return 0, fmt.Errorf("size %q is not a number with an optional unit (B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)", s)
	}
	if n, err := strconv.ParseInt(num, 10, 64); err == nil {
		if n > (1<<63-1)/mult {
			return 0, fmt.Errorf("size %q is too large", s)
		}
		return n * mult, nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q is not a number with an optional unit (B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)", s)
	}
	v := f * float64(mult)
	if v >= 1<<63 {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	if v != float64(int64(v)) {
		return 0, fmt.Errorf("size %q is not a whole number of bytes", s)
	}
	return int64(v), nil
}

// FormatSize renders n bytes with a binary unit ("1.1MiB").
func FormatSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 3; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%ciB", float64(n)/float64(div), "KMGT"[exp])
}

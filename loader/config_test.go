package loader

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/realmrt/realm/internal/refdata"
)

func TestDefaultConfig(t *testing.T) {
	root, err := refdata.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(filepath.Join(root, "plugins.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ModelsDir != filepath.Join(root, "models") {
		t.Errorf("ModelsDir = %q", cfg.ModelsDir)
	}
	if cfg.MemoryBudget != 2<<30 {
		t.Errorf("MemoryBudget = %d", cfg.MemoryBudget)
	}
	for _, name := range []string{"cpu-avx2", "cpu-neon", "vulkan", "reference"} {
		b, ok := cfg.Backend(name)
		if !ok {
			t.Fatalf("backend %s missing", name)
		}
		if b.Binary != filepath.Join(root, "bin", "realm-backend-"+name) {
			t.Errorf("%s binary = %q", name, b.Binary)
		}
	}
	avx, _ := cfg.Backend("cpu-avx2")
	if avx.Arch != "amd64" || strings.Join(avx.Requires, ",") != "AVX2,FMA3,F16C" || avx.Priority != 50 {
		t.Errorf("cpu-avx2 = %+v", avx)
	}
	vk, _ := cfg.Backend("vulkan")
	if !vk.GPU || !vk.Probe || vk.Priority != 100 || vk.Arch != ArchAny {
		t.Errorf("vulkan = %+v", vk)
	}
	m, ok := cfg.Model("stories260k")
	if !ok || m.Path != filepath.Join(root, "models", "stories260K.gguf") || len(m.SHA256) != 64 {
		t.Errorf("model = %+v", m)
	}
	app, ok := cfg.App("default")
	if !ok || app.MaxTokens != 512 || app.Timeout != time.Minute || app.Memory != 64<<20 || app.MaxOutput != 16<<20 {
		t.Errorf("app = %+v", app)
	}
	if !app.AllowsModel("stories260k") {
		t.Error("default app should allow every model")
	}
	if chat, ok := cfg.App("chat"); !ok || chat.MaxN != 8 {
		t.Errorf("chat app = %+v, want max_n 8", chat)
	}
	if cfg.Server.Addr != "127.0.0.1:8080" || cfg.Server.MaxConcurrent != 4 || cfg.Server.MaxQueue != 16 || cfg.Server.APIKeysFile != "" {
		t.Errorf("server = %+v", cfg.Server)
	}
}

func TestParseConfigDefaults(t *testing.T) {
	cfg, err := ParseConfig([]byte(`backend "reference" {}`), "/etc/realm/plugins.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Dir != "/etc/realm" || cfg.ModelsDir != "/etc/realm/models" || cfg.MemoryBudget != 0 {
		t.Errorf("cfg = %+v", cfg)
	}
	b := cfg.Backends[0]
	if b.Arch != ArchAny || b.Binary != "/etc/realm/bin/realm-backend-reference" || b.Priority != 0 || len(b.Requires) != 0 {
		t.Errorf("backend = %+v", b)
	}
	if cfg.Server.Addr == "" || cfg.Server.MaxConcurrent != 4 {
		t.Errorf("server defaults = %+v", cfg.Server)
	}
}

func TestParseConfigPaths(t *testing.T) {
	src := `
models_dir = "/srv/models"
backend "x" { binary = "/opt/x" }
model "a" { path = "sub/a.gguf" }
model "b" {}
model "c" { path = "/elsewhere/c.gguf" }
app "app" { wasm = "guest.wasm" }
server { api_keys_file = "keys.txt" }
`
	cfg, err := ParseConfig([]byte(src), "/cfg/plugins.hcl")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"models_dir": "/srv/models",
		"binary":     "/opt/x",
		"a":          "/srv/models/sub/a.gguf",
		"b":          "/srv/models/b.gguf",
		"c":          "/elsewhere/c.gguf",
		"wasm":       "/cfg/guest.wasm",
		"keys":       "/cfg/keys.txt",
	}
	got := map[string]string{
		"models_dir": cfg.ModelsDir,
		"binary":     cfg.Backends[0].Binary,
		"a":          cfg.Models[0].Path,
		"b":          cfg.Models[1].Path,
		"c":          cfg.Models[2].Path,
		"wasm":       cfg.Apps[0].WASM,
		"keys":       cfg.Server.APIKeysFile,
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %q, want %q", k, got[k], w)
		}
	}
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string // substrings of the error, the first is file:line
	}{
		{"syntax", "backend \"x\" {\n", []string{"test.hcl:1"}},
		{"unknown attribute", "models_dir = \"m\"\nbogus = 1\n", []string{"test.hcl:2", "bogus"}},
		{"unknown block", "\n\nwidget \"x\" {}\n", []string{"test.hcl:3", "widget"}},
		{"unknown backend key", "backend \"x\" {\n  colour = \"red\"\n}\n", []string{"test.hcl:2", "colour"}},
		{"bad feature", "backend \"x\" {\n  requires = [\"AVX2\", \"AVX9000\"]\n}\n", []string{"test.hcl:2", "AVX9000"}},
		{"lower-case feature", "backend \"x\" {\n  requires = [\"avx2\"]\n}\n", []string{"test.hcl:2", `did you mean "AVX2"`}},
		{"bad prefers", "backend \"x\" {\n\n  prefers = [\"NOPE\"]\n}\n", []string{"test.hcl:3", "NOPE"}},
		{"duplicate feature", "backend \"x\" {\n  requires = [\"AVX2\", \"AVX2\"]\n}\n", []string{"test.hcl:2", "twice"}},
		{"bad arch", "backend \"x\" {\n  arch = \"x86\"\n}\n", []string{"test.hcl:2", `"x86"`}},
		{"negative priority", "backend \"x\" {\n  priority = -1\n}\n", []string{"test.hcl:2", "priority"}},
		{"fractional priority", "backend \"x\" {\n  priority = 1.5\n}\n", []string{"test.hcl:2"}},
		{"negative threads", "backend \"x\" {\n  threads = -2\n}\n", []string{"test.hcl:2", "threads"}},
		{"bad env", "backend \"x\" {\n  env = [\"NOEQUALS\"]\n}\n", []string{"test.hcl:2", "KEY=VALUE"}},
		{"duplicate backend", "backend \"x\" {}\nbackend \"x\" {}\n", []string{"test.hcl:2", "already declared at test.hcl:1"}},
		{"bad backend name", "backend \"X Y\" {}\n", []string{"test.hcl:1", "invalid model name"}},
		{"bad size", "memory_budget = \"lots\"\n", []string{"test.hcl:1", "lots"}},
		{"bad unit", "memory_budget = \"2 GiBs\"\n", []string{"test.hcl:1"}},
		{"bad kv_budget", "\nkv_budget = \"much\"\n", []string{"test.hcl:2", "Invalid kv_budget", "much"}},
		{"bad model kv_budget", "model \"a\" {\n  kv_budget = \"-1\"\n}\n", []string{"test.hcl:2", "Invalid kv_budget"}},
		{"bad model name", "model \"../etc\" {}\n", []string{"test.hcl:1", `must start with`}},
		{"uppercase model name", "\nmodel \"Llama\" {}\n", []string{"test.hcl:2", "upper-case"}},
		{"duplicate model", "model \"a\" {}\n\nmodel \"a\" {}\n", []string{"test.hcl:3", "Duplicate model"}},
		{"bad sha256", "model \"a\" {\n  sha256 = \"abc\"\n}\n", []string{"test.hcl:2", "64 hex"}},
		{"model unknown backend", "model \"a\" {\n  backend = \"gpu9\"\n}\n", []string{"test.hcl:2", "gpu9"}},
		{"app missing wasm", "app \"a\" {}\n", []string{"test.hcl:1", "wasm"}},
		{"bad duration", "app \"a\" {\n  wasm = \"a.wasm\"\n  timeout = \"soon\"\n}\n", []string{"test.hcl:3", "soon"}},
		{"negative duration", "app \"a\" {\n  wasm = \"a.wasm\"\n  timeout = \"-1s\"\n}\n", []string{"test.hcl:3", "timeout"}},
		{"bad app memory", "app \"a\" {\n  wasm = \"a.wasm\"\n  memory = \"1XB\"\n}\n", []string{"test.hcl:3", "memory"}},
		{"huge app memory", "app \"a\" {\n  wasm = \"a.wasm\"\n  memory = \"8GiB\"\n}\n", []string{"test.hcl:3", "4GiB"}},
		{"bad app model", "app \"a\" {\n  wasm = \"a.wasm\"\n  models = [\"a/b\"]\n}\n", []string{"test.hcl:3", "path separator"}},
		{"bad app pattern", "app \"a\" {\n  wasm = \"a.wasm\"\n  models = [\"[\"]\n}\n", []string{"test.hcl:3", "pattern"}},
		{"negative max_tokens", "app \"a\" {\n  wasm = \"a.wasm\"\n  max_tokens = -5\n}\n", []string{"test.hcl:3", "max_tokens"}},
		{"negative max_n", "app \"a\" {\n  wasm = \"a.wasm\"\n  max_n = -1\n}\n", []string{"test.hcl:3", "max_n"}},
		{"duplicate app", "app \"a\" { wasm = \"a\" }\napp \"a\" { wasm = \"a\" }\n", []string{"test.hcl:2", "Duplicate app"}},
		{"two server blocks", "server {}\nserver {}\n", []string{"test.hcl:2"}},
		{"bad max_concurrent", "server {\n  max_concurrent = 0\n}\n", []string{"test.hcl:2", "max_concurrent"}},
		{"wrong type", "backend \"x\" {\n  gpu = \"maybe\"\n}\n", []string{"test.hcl:2"}},
		{"empty models_dir", "models_dir = \"\"\n", []string{"test.hcl:1", "models_dir"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.src), "test.hcl")
			if err == nil {
				t.Fatalf("no error for %q", tc.src)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"4096", 4096, true},
		{"2GiB", 2 << 30, true},
		{"64MiB", 64 << 20, true},
		{"1KiB", 1024, true},
		{"1.5KiB", 1536, true},
		{"1TB", 1e12, true},
		{"10 MB", 10e6, true},
		{"12B", 12, true},
		{"", 0, false},
		{"GiB", 0, false},
		{"-1", 0, false},
		{"1.3B", 0, false},
		{"1gib", 0, false},
		{"8388608TiB", 0, false},
		{"1e3", 0, false},
		{"1..2MiB", 0, false},
	}
	for _, tc := range tests {
		got, err := ParseSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestAllowsModel(t *testing.T) {
	a := AppConfig{Models: []string{"tiny", "llama-*"}}
	for name, want := range map[string]bool{"tiny": true, "llama-3b": true, "llama": false, "other": false} {
		if got := a.AllowsModel(name); got != want {
			t.Errorf("AllowsModel(%q) = %v", name, got)
		}
	}
	if (&AppConfig{}).AllowsModel("tiny") {
		t.Error("an app without models may load none")
	}
}

func FuzzParseConfig(f *testing.F) {
	root, err := refdata.RepoRoot()
	if err != nil {
		f.Fatal(err)
	}
	if src, err := os.ReadFile(filepath.Join(root, "plugins.hcl")); err == nil {
		f.Add(src)
	}
	f.Add([]byte(`backend "x" { requires = ["AVX2"] priority = 3 }`))
	f.Add([]byte(`model "a" { sha256 = "00" } app "b" { wasm = "x" timeout = "1s" memory = "1MiB" }`))
	f.Fuzz(func(t *testing.T, src []byte) {
		cfg, err := ParseConfig(src, "fuzz.hcl")
		if err != nil {
			return
		}
		for _, b := range cfg.Backends {
			if ValidName(b.Name) != nil || b.Priority < 0 || !filepath.IsAbs(b.Binary) {
				t.Fatalf("invalid backend accepted: %+v", b)
			}
			for _, f := range append(b.Requires, b.Prefers...) {
				if !validFeature(f) {
					t.Fatalf("invalid feature accepted: %q", f)
				}
			}
		}
		for _, m := range cfg.Models {
			if ValidName(m.Name) != nil {
				t.Fatalf("invalid model name accepted: %q", m.Name)
			}
		}
	})
}

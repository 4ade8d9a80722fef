package loader

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/internal/refdata"
)

// TestCacheFallback checks that a model the serving backend refuses as
// unsupported is loaded on the first fallback that can run it (and
// unloaded there), that other errors and models pinned to a backend do
// not fall back, and that the error names every backend tried.
func TestCacheFallback(t *testing.T) {
	unsupported := fmt.Errorf("vulkan: load: %w: head size 512 exceeds the attention shader's 256", backends.ErrUnsupported)
	tests := []struct {
		name      string
		primary   error   // the serving backend's LoadModel error
		fallbacks []error // each fallback's LoadModel error (nil: loads)
		startErr  bool    // the first fallback fails to start
		model     string
		wantOn    string // backend that serves the model ("" : the load fails)
		wantErr   []string
	}{
		{name: "loads on serving", model: "a", wantOn: "fake"},
		{name: "falls back", primary: unsupported, fallbacks: []error{nil}, model: "a", wantOn: "cpu"},
		{name: "skips a refusing fallback", primary: unsupported, fallbacks: []error{unsupported, nil}, model: "a", wantOn: "cpu2"},
		{name: "skips a fallback that does not start", primary: unsupported, fallbacks: []error{nil, nil}, startErr: true, model: "a", wantOn: "cpu2"},
		{name: "no fallback can", primary: unsupported, fallbacks: []error{fmt.Errorf("cpu: %w: type X", backends.ErrUnsupported)}, model: "a",
			wantErr: []string{`model "a" cannot run on any eligible backend`, "fake: vulkan: load: unsupported", "head size 512", "cpu: cpu: unsupported"}},
		{name: "no fallback declared", primary: unsupported, model: "a",
			wantErr: []string{`model "a" cannot run on backend fake and no other backend is eligible`, "head size 512"}},
		{name: "other errors do not fall back", primary: fmt.Errorf("%w: bad file", backends.ErrInvalidModel), fallbacks: []error{nil}, model: "a",
			wantErr: []string{"bad file"}},
		{name: "pinned model does not fall back", primary: unsupported, fallbacks: []error{nil}, model: "pinned",
			wantErr: []string{"head size 512"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, fb, _ := cacheFixture(t, 0, "model \"pinned\" {\n  path = \"a.gguf\"\n  backend = \"fake\"\n}\n")
			fb.loadErr = tc.primary
			names := []string{"cpu", "cpu2"}
			fakes := map[string]*fakeBackend{}
			for i, e := range tc.fallbacks {
				f := newFake()
				f.loadErr = e
				name := names[i]
				fakes[name] = f
				start := func(context.Context) (backends.Backend, error) { return f, nil }
				if i == 0 && tc.startErr {
					start = func(context.Context) (backends.Backend, error) { return nil, errors.New("plugin exited") }
				}
				c.cfg.Fallbacks = append(c.cfg.Fallbacks, Fallback{Name: name, Backend: start})
			}
			ctx := context.Background()
			m, err := c.Acquire(ctx, tc.model)
			if tc.wantOn == "" {
				if err == nil {
					t.Fatalf("loaded on %s", m.BackendName)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not say %q", err, w)
					}
				}
				if tc.primary != nil && errors.Is(tc.primary, backends.ErrUnsupported) && !errors.Is(err, backends.ErrUnsupported) {
					t.Errorf("error %v does not wrap ErrUnsupported", err)
				}
				for name, f := range fakes {
					if tc.name != "no fallback can" && f.totalLoads() > 0 {
						t.Errorf("fallback %s was tried", name)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.BackendName != tc.wantOn {
				t.Errorf("served by %s, want %s", m.BackendName, tc.wantOn)
			}
			if tc.wantOn != "fake" {
				f := fakes[tc.wantOn]
				if m.Backend != backends.Backend(f) || f.nLoaded() != 1 || fb.nLoaded() != 0 {
					t.Errorf("model backend %T, fallback loaded %d, serving loaded %d", m.Backend, f.nLoaded(), fb.nLoaded())
				}
				c.Release(m)
				if err := c.Close(); err != nil {
					t.Fatal(err)
				}
				if f.nLoaded() != 0 || len(fb.unloads) != 0 {
					t.Errorf("after Close: fallback holds %d models, serving got %d unloads", f.nLoaded(), len(fb.unloads))
				}
			}
		})
	}
}

// TestOpenFallsBackToCPU runs the real path: the vulkan plugin (on
// whatever device it finds, lavapipe here) serves, a model whose head
// size its attention shader cannot take is refused by it as unsupported
// and is loaded on the reference plugin (started on first need) and
// decodes there, while another model stays on vulkan.
func TestOpenFallsBackToCPU(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts plugins")
	}
	root, err := refdata.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ref := buildReferencePlugin(t, dir)
	vk := filepath.Join(dir, "bin", "realm-backend-vulkan")
	build := exec.Command("go", "build", "-tags", "vulkan_headers", "-o", vk, "./cmd/realm-backend-vulkan")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Skipf("no vulkan plugin with the Vulkan headers: %v\n%s", err, out)
	}
	cli := filepath.Join(dir, "bin", "realm")
	build = exec.Command("go", "build", "-o", cli, "./cmd/realm")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building realm: %v\n%s", err, out)
	}
	models := filepath.Join(dir, "models")
	if err := os.MkdirAll(models, 0o755); err != nil {
		t.Fatal(err)
	}
	donor := storiesPath(t)
	copyFile(t, donor, filepath.Join(models, "stories.gguf"))
	// One head of 512 elements: more than vulkan's attention shader takes.
	synth := exec.Command(cli, "gguf", "synth", "--preset", "tiny", "--type", "f32", "-o", filepath.Join(models, "wide.gguf"),
		"--tokenizer-from", donor, "--n-embd", "512", "--n-head", "1", "--n-head-kv", "1", "--n-layer", "1", "--n-ff", "64", "--context", "64")
	if out, err := synth.CombinedOutput(); err != nil {
		t.Fatalf("synth: %v\n%s", err, out)
	}
	cfgPath := filepath.Join(dir, "plugins.hcl")
	conf := fmt.Sprintf(`
models_dir = %q
backend "vulkan" {
  binary = %q
  gpu = true
  probe = true
  priority = 100
}
backend "reference" {
  binary = %q
  priority = 10
}
`, models, vk, ref)
	if err := os.WriteFile(cfgPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// The real probe, except that a software device (lavapipe) is not
	// ranked last: this test needs vulkan to serve.
	probe := func(ctx context.Context, b BackendConfig) ProbeResult {
		r := PluginProber(nil)(ctx, b)
		r.Software = false
		return r
	}
	rt, err := Open(ctx, Options{ConfigPath: cfgPath, Probe: probe})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	if rt.Decision.Chosen != "vulkan" {
		t.Skipf("vulkan not chosen (no usable device?): %s", rt.Decision.Why)
	}
	if got := strings.Join(rt.Decision.Order, ","); got != "vulkan,reference" {
		t.Fatalf("order %s", got)
	}
	st, err := rt.Models.Acquire(ctx, "stories")
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Models.Release(st)
	if st.Serving() != "vulkan" {
		t.Errorf("stories served by %s, want vulkan", st.Serving())
	}
	wide, err := rt.Models.Acquire(ctx, "wide")
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Models.Release(wide)
	if wide.Serving() != "reference" {
		t.Fatalf("wide served by %s, want reference", wide.Serving())
	}
	sid, err := wide.Backend.OpenSession(ctx, wide.Info.ID, 16)
	if err != nil {
		t.Fatal(err)
	}
	res, err := wide.Backend.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: []int32{1, 2, 3}, Want: backends.WantLogits})
	if err != nil || len(res.Logits) != wide.Info.NVocab {
		t.Fatalf("decode on the fallback: %v", err)
	}
	if err := wide.Backend.CloseSession(ctx, sid); err != nil {
		t.Fatal(err)
	}
	// A file loaded outside the cache (realm generate FILE) falls back
	// the same way.
	fb, fbName, fmi, err := rt.LoadModel(ctx, backends.LoadRequest{Path: filepath.Join(models, "wide.gguf")})
	if err != nil || fbName != "reference" {
		t.Fatalf("Runtime.LoadModel: %s, %v", fbName, err)
	}
	if err := fb.UnloadModel(ctx, fmi.ID); err != nil {
		t.Fatal(err)
	}
	// Pinned to vulkan, the same model is refused, naming why.
	rt2, err := Open(ctx, Options{ConfigPath: cfgPath, Probe: probe, Pin: "vulkan"})
	if err != nil {
		t.Fatal(err)
	}
	defer rt2.Close()
	_, err = rt2.Models.Acquire(ctx, "wide")
	if !errors.Is(err, backends.ErrUnsupported) || !strings.Contains(err.Error(), "head size 512") || !strings.Contains(err.Error(), `model "wide"`) {
		t.Errorf("pinned: %v", err)
	}
}

package loader_test

import (
	"os"
	"slices"
	"testing"

	"github.com/klauspost/cpuid/v2"

	cpuavx2 "github.com/realmrt/realm/internal/backend/cpu-avx2"
	cpuneon "github.com/realmrt/realm/internal/backend/cpu-neon"
	"github.com/realmrt/realm/loader"
)

// TestPluginsHCLFeatures pins the CPU feature lists of the shipped
// plugins.hcl to the plugins' own: `requires` equals what the kernels
// check before running, and `prefers` names only features they use.
func TestPluginsHCLFeatures(t *testing.T) {
	src, err := os.ReadFile("../plugins.hcl")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := loader.ParseConfig(src, "plugins.hcl")
	if err != nil {
		t.Fatal(err)
	}
	plugins := map[string]struct{ requires, optional []string }{
		cpuavx2.Name: {cpuavx2.RequiredFeatures(), cpuavx2.OptionalFeatures()},
		cpuneon.Name: {cpuneon.RequiredFeatures(), cpuneon.OptionalFeatures()},
	}
	for name, p := range plugins {
		for _, f := range append(slices.Clone(p.requires), p.optional...) {
			if id := cpuid.ParseFeature(f); id == cpuid.UNKNOWN || id.String() != f {
				t.Errorf("%s: %q is not a cpuid feature name", name, f)
			}
		}
	}
	seen := 0
	for _, b := range cfg.Backends {
		p, ok := plugins[b.Name]
		if !ok {
			continue
		}
		seen++
		if !slices.Equal(b.Requires, p.requires) {
			t.Errorf("plugins.hcl: backend %q requires %v; the plugin checks %v", b.Name, b.Requires, p.requires)
		}
		for _, f := range b.Prefers {
			if !slices.Contains(p.optional, f) {
				t.Errorf("plugins.hcl: backend %q prefers %s, which the plugin does not use (it uses %v)", b.Name, f, p.optional)
			}
		}
	}
	if seen != len(plugins) {
		t.Errorf("plugins.hcl configures %d of the %d CPU plugins", seen, len(plugins))
	}
}

package loader

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// selectConfig mirrors the default plugins.hcl.
const selectConfig = `
backend "vulkan" {
  arch = "any"
  gpu = true
  probe = true
  priority = 100
}
backend "cpu-avx2" {
  arch = "amd64"
  requires = ["AVX2", "FMA3", "F16C"]
  prefers = ["AVX512VNNI", "AVX512VL"]
  priority = 50
}
backend "cpu-neon" {
  arch = "arm64"
  requires = ["ASIMD"]
  prefers = ["ASIMDDP"]
  priority = 50
}
backend "reference" {
  arch = "any"
  priority = 10
}
`

func mustParse(t *testing.T, src string) *Config {
	t.Helper()
	cfg, err := ParseConfig([]byte(src), filepath.Join(t.TempDir(), "plugins.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

var (
	oldX86    = Machine{Arch: "amd64", Vendor: "GenuineIntel", Features: []string{"AVX", "CMOV", "POPCNT", "SSE", "SSE2", "SSE3", "SSE4", "SSE42", "SSSE3"}}
	modernX86 = Machine{Arch: "amd64", Vendor: "AuthenticAMD", Features: []string{"AVX", "AVX2", "BMI1", "BMI2", "F16C", "FMA3", "SSE", "SSE2", "SSE3", "SSE4", "SSE42", "SSSE3"}}
	avx512X86 = Machine{Arch: "amd64", Vendor: "GenuineIntel", Features: []string{"AVX", "AVX2", "AVX512F", "AVX512VL", "AVX512VNNI", "F16C", "FMA3", "SSE2"}}
	armNoDot  = Machine{Arch: "arm64", Vendor: "ARM", Features: []string{"AESARM", "ASIMD", "FP"}}
	armDot    = Machine{Arch: "arm64", Vendor: "ARM", Features: []string{"AESARM", "ASIMD", "ASIMDDP", "ASIMDHP", "FP", "FPHP"}}
)

var (
	noGPU     = ProbeResult{Probed: true, Veto: "no device found"}
	discrete  = ProbeResult{Probed: true}
	lavapipe  = ProbeResult{Probed: true, Software: true}
	vulkanOff = map[string]ProbeResult{"vulkan": noGPU}
)

func TestSelect(t *testing.T) {
	cfg := mustParse(t, selectConfig)
	tests := []struct {
		name      string
		m         Machine
		probes    map[string]ProbeResult
		pin       string
		chosen    string
		order     []string
		why       string            // substring of Decision.Why
		reasons   map[string]string // candidate → substring of its reason
		scores    map[string]int
		wantErr   error
		errSubstr string
	}{
		{
			name: "old x86 without AVX2", m: oldX86, probes: vulkanOff,
			chosen: "reference", order: []string{"reference"}, why: "only eligible",
			reasons: map[string]string{
				"cpu-avx2": "missing feature AVX2, FMA3, F16C",
				"cpu-neon": "wrong arch: built for arm64, machine is amd64",
				"vulkan":   "vetoed by probe: no device found",
			},
			scores: map[string]int{"cpu-avx2": 0},
		},
		{
			name: "modern x86", m: modernX86, probes: vulkanOff,
			chosen: "cpu-avx2", order: []string{"cpu-avx2", "reference"}, why: "highest priority (50 > reference's 10)",
			scores: map[string]int{"cpu-avx2": 3, "reference": 0},
		},
		{
			name: "x86 with preferred features scores higher", m: avx512X86, probes: vulkanOff,
			chosen: "cpu-avx2", scores: map[string]int{"cpu-avx2": 5},
		},
		{
			name: "arm64 without dot product", m: armNoDot, probes: vulkanOff,
			chosen: "cpu-neon", order: []string{"cpu-neon", "reference"},
			scores:  map[string]int{"cpu-neon": 1},
			reasons: map[string]string{"cpu-avx2": "wrong arch"},
		},
		{
			name: "arm64 with dot product", m: armDot, probes: vulkanOff,
			chosen: "cpu-neon", scores: map[string]int{"cpu-neon": 2},
		},
		{
			name: "discrete GPU", m: modernX86, probes: map[string]ProbeResult{"vulkan": discrete},
			chosen: "vulkan", order: []string{"vulkan", "cpu-avx2", "reference"}, why: "highest priority (100",
		},
		{
			name: "lavapipe ranks below CPU backends", m: modernX86, probes: map[string]ProbeResult{"vulkan": lavapipe},
			chosen: "cpu-avx2", order: []string{"cpu-avx2", "reference", "vulkan"},
			reasons: map[string]string{"vulkan": "software device"},
		},
		{
			name: "lavapipe on an old CPU still ranks below reference", m: oldX86, probes: map[string]ProbeResult{"vulkan": lavapipe},
			chosen: "reference", order: []string{"reference", "vulkan"}, why: "software device",
		},
		{
			name: "vulkan without a probe result is not eligible", m: modernX86, probes: nil,
			chosen: "cpu-avx2", reasons: map[string]string{"vulkan": "not probed"},
		},
		{
			name: "missing binary", m: modernX86,
			probes: map[string]ProbeResult{"vulkan": noGPU, "cpu-avx2": {BinaryErr: "binary not built: run make (bin/realm-backend-cpu-avx2)"}},
			chosen: "reference", reasons: map[string]string{"cpu-avx2": "binary not built: run make"},
		},
		{
			name: "pin valid", m: modernX86, probes: vulkanOff, pin: "reference",
			chosen: "reference", order: []string{"reference"}, why: "pinned",
		},
		{
			name: "pin software device", m: modernX86, probes: map[string]ProbeResult{"vulkan": lavapipe}, pin: "vulkan",
			chosen: "vulkan", order: []string{"vulkan"}, why: "pinned (software device)",
		},
		{
			name: "pin missing feature", m: oldX86, probes: vulkanOff, pin: "cpu-avx2",
			wantErr: ErrPin, errSubstr: `"cpu-avx2" cannot run here: missing feature AVX2, FMA3, F16C`,
		},
		{
			name: "pin wrong arch", m: armDot, probes: vulkanOff, pin: "cpu-avx2",
			wantErr: ErrPin, errSubstr: "wrong arch",
		},
		{
			name: "pin vetoed", m: modernX86, probes: vulkanOff, pin: "vulkan",
			wantErr: ErrPin, errSubstr: "vetoed by probe: no device found",
		},
		{
			name: "pin unknown", m: modernX86, probes: vulkanOff, pin: "cuda",
			wantErr: ErrPin, errSubstr: `"cuda" is not declared (declared: vulkan, cpu-avx2, cpu-neon, reference)`,
		},
		{
			name: "nothing eligible", m: Machine{Arch: "riscv64"},
			probes:  map[string]ProbeResult{"vulkan": noGPU, "reference": {BinaryErr: "binary not built: run make"}},
			wantErr: ErrNoBackend, errSubstr: "reference: binary not built",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Select(tc.m, cfg, tc.probes, tc.pin)
			if len(d.Candidates) != len(cfg.Backends) {
				t.Fatalf("decision has %d candidates, want every one of %d", len(d.Candidates), len(cfg.Backends))
			}
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.errSubstr) {
					t.Fatalf("err = %v, want %v containing %q", err, tc.wantErr, tc.errSubstr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.Chosen != tc.chosen {
				t.Errorf("chosen %q, want %q (why %q)", d.Chosen, tc.chosen, d.Why)
			}
			if tc.order != nil && !slices.Equal(d.Order, tc.order) {
				t.Errorf("order %v, want %v", d.Order, tc.order)
			}
			if d.Order[0] != d.Chosen {
				t.Errorf("order %v does not start with %q", d.Order, d.Chosen)
			}
			if !strings.Contains(d.Why, tc.why) {
				t.Errorf("why %q does not contain %q", d.Why, tc.why)
			}
			for name, want := range tc.reasons {
				c, _ := d.Candidate(name)
				if !strings.Contains(c.Reason, want) {
					t.Errorf("%s reason %q does not contain %q", name, c.Reason, want)
				}
			}
			for name, want := range tc.scores {
				c, _ := d.Candidate(name)
				if c.Score != want {
					t.Errorf("%s score %d, want %d", name, c.Score, want)
				}
			}
			for _, c := range d.Candidates {
				if c.Eligible != (c.Rank > 0) {
					t.Errorf("%s eligible=%v rank=%d", c.Name, c.Eligible, c.Rank)
				}
				if !c.Eligible && c.Reason == "" {
					t.Errorf("%s ineligible without a reason", c.Name)
				}
			}
		})
	}
}

func TestSelectFeatureTable(t *testing.T) {
	cfg := mustParse(t, selectConfig)
	d, err := Select(armDot, cfg, vulkanOff, "")
	if err != nil {
		t.Fatal(err)
	}
	neon, _ := d.Candidate("cpu-neon")
	want := []FeatureCheck{{"ASIMD", true}}
	if !slices.Equal(neon.Requires, want) {
		t.Errorf("requires %v, want %v", neon.Requires, want)
	}
	wantP := []FeatureCheck{{"ASIMDDP", true}}
	if !slices.Equal(neon.Prefers, wantP) {
		t.Errorf("prefers %v, want %v", neon.Prefers, wantP)
	}
	d, _ = Select(armNoDot, cfg, vulkanOff, "")
	neon, _ = d.Candidate("cpu-neon")
	if neon.Prefers[0].Detected {
		t.Error("ASIMDDP detected on a CPU without it")
	}
}

func TestSelectTieBreaks(t *testing.T) {
	cfg := mustParse(t, `
backend "cpu-a" { priority = 5 }
backend "gpu-a" {
  priority = 5
  gpu = true
}
backend "cpu-b" {
  priority = 5
  requires = ["SSE2"]
}
`)
	m := Machine{Arch: "amd64", Features: []string{"SSE2"}}
	d, err := Select(m, cfg, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"gpu-a", "cpu-b", "cpu-a"}; !slices.Equal(d.Order, want) {
		t.Errorf("order %v, want %v", d.Order, want)
	}
	if !strings.Contains(d.Why, "GPU ranks above CPU") {
		t.Errorf("why = %q", d.Why)
	}
	// Select is pure: the same inputs give the same decision.
	d2, _ := Select(m, cfg, nil, "")
	if !slices.Equal(d.Order, d2.Order) || d.Why != d2.Why {
		t.Error("Select is not deterministic")
	}
}

func TestDetect(t *testing.T) {
	m := Detect()
	if m.Arch != runtime.GOARCH || m.OS != runtime.GOOS {
		t.Errorf("arch/os = %s/%s", m.Arch, m.OS)
	}
	if m.Cores < 1 || m.Threads < 1 {
		t.Errorf("cores %d threads %d", m.Cores, m.Threads)
	}
	if !slices.IsSorted(m.Features) {
		t.Error("features not sorted")
	}
	for _, f := range m.Features {
		if !validFeature(f) {
			t.Errorf("detected feature %q is not a cpuid name", f)
		}
	}
	if runtime.GOARCH == "amd64" && !m.Has("SSE2") {
		t.Errorf("amd64 without SSE2: %v", m.Features)
	}
}

func TestDetectGPUs(t *testing.T) {
	root := t.TempDir()
	mk := func(node, vendor, driver string) {
		dev := filepath.Join(root, node, "device")
		if err := os.MkdirAll(dev, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dev, "vendor"), []byte(vendor+"\n"), 0o644)
		os.WriteFile(filepath.Join(dev, "device"), []byte("0x1234\n"), 0o644)
		os.WriteFile(filepath.Join(dev, "uevent"), []byte("DRIVER="+driver+"\nPCI_ID=X\n"), 0o644)
	}
	mk("card0", "0x10de", "nvidia")
	mk("card1", "0xabcd", "weird")
	if err := os.MkdirAll(filepath.Join(root, "card0-HDMI-A-1"), 0o755); err != nil {
		t.Fatal(err)
	}
	gpus := detectGPUs(root)
	if len(gpus) != 2 {
		t.Fatalf("gpus = %+v", gpus)
	}
	if gpus[0].Vendor != "nvidia" || gpus[0].Driver != "nvidia" || gpus[1].Vendor != "0xabcd" {
		t.Errorf("gpus = %+v", gpus)
	}
	if detectGPUs(filepath.Join(root, "absent")) != nil {
		t.Error("absent sysfs should give no GPUs")
	}
}

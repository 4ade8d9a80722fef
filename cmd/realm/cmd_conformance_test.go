package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/realmrt/realm/internal/conformance"
	"github.com/realmrt/realm/internal/refdata"
)

// TestConformanceEmbeddedReference runs `realm conformance` on the
// reference plugin with no --reference: the model cases must run (and
// pass) from the llama.cpp data embedded in the binary, not from files
// beside it. REALM_REFERENCE_DIR points nowhere, to show that the
// repository's copy is not what is read. A --reference directory without
// models/ is refused; one written by refdata.Extract is used.
func TestConformanceEmbeddedReference(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a plugin")
	}
	root, err := refdata.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "realm-backend-reference")
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		if goBin, err = exec.LookPath("go"); err != nil {
			t.Fatal("no go command to build the plugin:", err)
		}
	}
	build := exec.Command(goBin, "build", "-o", bin, "./cmd/realm-backend-reference")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the reference plugin: %v\n%s", err, out)
	}
	cfg := filepath.Join(dir, "plugins.hcl")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("backend \"reference\" {\n  binary = %q\n  arch = \"any\"\n}\n", bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("REALM_REFERENCE_DIR", filepath.Join(dir, "nowhere"))
	run := func(extra ...string) (int, string, string, map[string]conformance.Result) {
		t.Helper()
		js := filepath.Join(dir, "out.json")
		os.Remove(js)
		args := append([]string{"conformance", "--backend", "reference", "--config", cfg,
			"--abi-guest", filepath.Join(dir, "none.wasm"), "--ops", "^model/stories260K/(f32|q4_0)$", "--json", js}, extra...)
		code, stdout, stderr := runCLI(t, args...)
		res := map[string]conformance.Result{}
		if b, err := os.ReadFile(js); err == nil {
			var doc struct{ Backends []conformance.Report }
			if err := json.Unmarshal(b, &doc); err != nil {
				t.Fatalf("json: %v\n%s", err, b)
			}
			for _, rep := range doc.Backends {
				for _, r := range rep.Results {
					res[r.Case] = r
				}
			}
		}
		return code, stdout, stderr, res
	}

	code, stdout, stderr, res := run()
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, c := range []string{"model/stories260K/f32", "model/stories260K/q4_0"} {
		if r, ok := res[c]; !ok || r.Status != conformance.Pass {
			t.Errorf("%s: %+v (present %v), want pass\n%s", c, r, ok, stdout)
		}
	}

	code, _, stderr, _ = run("--reference", filepath.Join(dir, "nowhere"))
	if code == 0 || !strings.Contains(stderr, "no models/ directory") {
		t.Errorf("--reference without models/: exit %d, stderr %q; want a refusal", code, stderr)
	}

	ext := filepath.Join(dir, "ref")
	if err := refdata.Extract(ext); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr, res = run("--reference", ext)
	if code != 0 || res["model/stories260K/f32"].Status != conformance.Pass {
		t.Fatalf("--reference %s: exit %d, %+v\n%s\n%s", ext, code, res["model/stories260K/f32"], stdout, stderr)
	}
}

// TestSkippedButRunnable: a backend the machine can run must not be
// skipped wholesale without failing the run (fake reports, fake machine).
func TestSkippedButRunnable(t *testing.T) {
	vulkan := conformance.Target{Name: "vulkan", GPU: true}
	avx2 := conformance.Target{Name: "cpu-avx2"}
	notBuilt := conformance.Target{Name: "cpu-avx2", Skip: "binary not built (bin/x): run make", NotBuilt: true}
	neon := conformance.Target{Name: "cpu-neon", Skip: "needs arm64, this machine is amd64"}
	const lavapipe = "driver /usr/share/vulkan/icd.d/lvp_icd.x86_64.json, loader /lib/libvulkan.so.1"
	vetoed := &conformance.Report{Backend: "vulkan", Reason: "skipped: no device found: built without the Vulkan headers"}
	allSkipped := &conformance.Report{Backend: "vulkan", Skipped: 40}
	ran := &conformance.Report{Backend: "vulkan", Passed: 3, Skipped: 37}
	failedRun := &conformance.Report{Backend: "vulkan", Failed: 1, Skipped: 2}
	tests := []struct {
		name     string
		target   conformance.Target
		rep      *conformance.Report
		vulkan   string // what vulkanPresent found
		filtered bool
		allowed  string
		wantFail bool
	}{
		{"vetoed, lavapipe present", vulkan, vetoed, lavapipe, false, "", true},
		{"vetoed, lavapipe present, filtered run", vulkan, vetoed, lavapipe, true, "", true},
		{"every case skipped, lavapipe present", vulkan, allSkipped, lavapipe, false, "", true},
		{"every case skipped under a filter", vulkan, allSkipped, lavapipe, true, "", false},
		{"vetoed, no Vulkan driver", vulkan, vetoed, "", false, "", false},
		{"vetoed, allowed by --may-skip", vulkan, vetoed, lavapipe, false, "vulkan", false},
		{"ran some cases", vulkan, ran, lavapipe, false, "", false},
		{"failed cases are failures already", vulkan, failedRun, lavapipe, false, "", false},
		{"cpu backend not built", notBuilt, &conformance.Report{Backend: "cpu-avx2", Reason: "skipped: " + notBuilt.Skip}, "", false, "", true},
		{"cpu backend every case skipped", avx2, &conformance.Report{Backend: "cpu-avx2", Skipped: 5}, "", false, "", true},
		{"other architecture", neon, &conformance.Report{Backend: "cpu-neon", Reason: "skipped: " + neon.Skip}, lavapipe, false, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			canRun := func(t conformance.Target) (bool, string) { return machineCanRun(t, tc.vulkan) }
			allowed := map[string]bool{tc.allowed: tc.allowed != ""}
			msgs := skippedButRunnable([]conformance.Target{tc.target}, []*conformance.Report{tc.rep}, tc.filtered, canRun, allowed)
			if got := len(msgs) > 0; got != tc.wantFail {
				t.Fatalf("messages %q, want failure %v", msgs, tc.wantFail)
			}
			if tc.wantFail && !strings.Contains(msgs[0], tc.target.Name+": skipped wholesale") {
				t.Fatalf("message %q does not name the backend", msgs[0])
			}
		})
	}
}

// TestVulkanPresent: a driver manifest and the loader library must both
// be found (VK_DRIVER_FILES and LD_LIBRARY_PATH point at fakes).
func TestVulkanPresent(t *testing.T) {
	dir := t.TempDir()
	icd := filepath.Join(dir, "lvp_icd.json")
	lib := filepath.Join(dir, "libvulkan.so.1")
	for _, f := range []string{icd, lib} {
		if err := os.WriteFile(f, []byte("{}"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	env := func(vars map[string]string) func(string) string { return func(k string) string { return vars[k] } }
	got := vulkanPresent(env(map[string]string{"VK_DRIVER_FILES": icd, "LD_LIBRARY_PATH": dir}))
	if !strings.Contains(got, icd) || !strings.Contains(got, lib) {
		t.Errorf("with driver and loader: %q", got)
	}
	if got := vulkanPresent(env(map[string]string{"VK_DRIVER_FILES": filepath.Join(dir, "missing.json"), "LD_LIBRARY_PATH": dir})); got != "" {
		t.Errorf("without a driver manifest: %q, want none", got)
	}
}

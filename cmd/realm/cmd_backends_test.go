package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/realmrt/realm/internal/refdata"
)

// runLoaderCLI runs realMain in-process with the given environment.
func runLoaderCLI(t *testing.T, vars map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	env := &cliEnv{Stdout: &stdout, Stderr: &stderr, Stdin: strings.NewReader(""), Getenv: func(k string) string { return vars[k] }}
	code := realMain(context.Background(), env, args)
	return code, stdout.String(), stderr.String()
}

// loaderFixture writes a config whose "reference" and "fallback"
// backends have (dummy) executables, "cpu-x" has none, and whose models
// dir holds the reference model (block "stories260k") and tiny.gguf.
func loaderFixture(t *testing.T) (dir, cfgPath string) {
	t.Helper()
	dir = t.TempDir()
	for _, d := range []string{"bin", "models"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range []string{"reference", "fallback"} {
		if err := os.WriteFile(filepath.Join(dir, "bin", "realm-backend-"+b), []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	src, err := refdata.Path("models", "stories260K.gguf")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatalf("reference model: %v", err)
	}
	for _, n := range []string{"stories260K.gguf", "tiny.gguf"} {
		if err := os.WriteFile(filepath.Join(dir, "models", n), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfgPath = filepath.Join(dir, "plugins.hcl")
	conf := `
models_dir = "models"
kv_budget = "1GiB"
backend "cpu-x" {
  requires = ["SSE2"]
  priority = 50
}
backend "reference" { priority = 10 }
backend "fallback" { priority = 5 }
backend "elsewhere" {
  arch = "s390x"
  priority = 90
}
model "stories260k" {
  path = "stories260K.gguf"
  sha256 = "270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d"
  kv_budget = "64MiB"
}
`
	if err := os.WriteFile(cfgPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, cfgPath
}

func TestBackendsTable(t *testing.T) {
	_, cfgPath := loaderFixture(t)
	code, out, errOut := runLoaderCLI(t, nil, "backends", "--config", cfgPath)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"config:  " + cfgPath,
		"RANK",
		"REQUIRES (detected)",
		"* 1     reference",
		"2     fallback",
		"binary not built: run make (bin/realm-backend-cpu-x)",
		"wrong arch: built for s390x",
		"chosen:  reference (highest priority (10 > fallback's 5))",
		"order:   reference → fallback",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestBackendsJSONAndPins(t *testing.T) {
	dir, cfgPath := loaderFixture(t)
	decode := func(out string) (v struct {
		Config     string `json:"config"`
		Chosen     string `json:"chosen"`
		Order      []string
		Error      string
		Candidates []struct {
			Name     string
			Eligible bool
			Reason   string
			Requires []struct {
				Name     string
				Detected bool
			}
		}
	}) {
		t.Helper()
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatalf("bad JSON: %v\n%s", err, out)
		}
		return v
	}
	tests := []struct {
		name   string
		vars   map[string]string
		args   []string
		code   int
		chosen string
		errSub string
	}{
		{name: "flag", args: []string{"--config", cfgPath}, chosen: "reference"},
		{name: "REALM_CONFIG", vars: map[string]string{"REALM_CONFIG": cfgPath}, chosen: "reference"},
		{name: "flag beats REALM_CONFIG", vars: map[string]string{"REALM_CONFIG": filepath.Join(dir, "absent.hcl")}, args: []string{"--config", cfgPath}, chosen: "reference"},
		{name: "pin flag", args: []string{"--config", cfgPath, "--backend", "fallback"}, chosen: "fallback"},
		{name: "REALM_BACKEND", vars: map[string]string{"REALM_CONFIG": cfgPath, "REALM_BACKEND": "fallback"}, chosen: "fallback"},
		{name: "flag beats REALM_BACKEND", vars: map[string]string{"REALM_BACKEND": "cpu-x"}, args: []string{"--config", cfgPath, "--backend", "fallback"}, chosen: "fallback"},
		{name: "pin without binary", vars: map[string]string{"REALM_BACKEND": "cpu-x"}, args: []string{"--config", cfgPath}, code: 1, errSub: "binary not built: run make"},
		{name: "pin wrong arch", args: []string{"--config", cfgPath, "--backend", "elsewhere"}, code: 1, errSub: "wrong arch"},
		{name: "pin unknown", args: []string{"--config", cfgPath, "--backend", "cuda"}, code: 1, errSub: `"cuda" is not declared`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runLoaderCLI(t, tc.vars, append([]string{"backends", "--json"}, tc.args...)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d: %s", code, tc.code, errOut)
			}
			v := decode(out)
			if v.Config != cfgPath || v.Chosen != tc.chosen || !strings.Contains(v.Error, tc.errSub) {
				t.Errorf("config %q chosen %q error %q", v.Config, v.Chosen, v.Error)
			}
			if len(v.Candidates) != 4 {
				t.Errorf("%d candidates, want 4", len(v.Candidates))
			}
			for _, c := range v.Candidates {
				if c.Name == "cpu-x" && (len(c.Requires) != 1 || c.Requires[0].Name != "SSE2") {
					t.Errorf("cpu-x requires = %+v", c.Requires)
				}
			}
		})
	}
	// The table form reports a failed pin on stderr with exit status 1.
	code, out, errOut := runLoaderCLI(t, map[string]string{"REALM_BACKEND": "cpu-x"}, "backends", "--config", cfgPath)
	if code != 1 || !strings.Contains(errOut, `backend "cpu-x" cannot run here: binary not built`) || !strings.Contains(out, "chosen:  none") {
		t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
}

func TestBackendsBadConfig(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "plugins.hcl")
	if err := os.WriteFile(p, []byte("backend \"x\" {\n  requires = [\"AVX3\"]\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runLoaderCLI(t, nil, "backends", "--config", p)
	if code != 1 || !strings.Contains(errOut, p+":2") || !strings.Contains(errOut, "AVX3") {
		t.Errorf("exit %d: %s", code, errOut)
	}
	code, _, errOut = runLoaderCLI(t, nil, "backends", "--config", filepath.Join(dir, "absent.hcl"))
	if code != 1 || !strings.Contains(errOut, "absent.hcl") {
		t.Errorf("missing config: exit %d: %s", code, errOut)
	}
	if code, _, _ := runLoaderCLI(t, nil, "backends", "extra"); code != 2 {
		t.Errorf("stray argument: exit %d", code)
	}
}

func TestModels(t *testing.T) {
	dir, cfgPath := loaderFixture(t)
	code, out, errOut := runLoaderCLI(t, map[string]string{"REALM_CONFIG": cfgPath}, "models", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var list []map[string]any
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("bad JSON: %v\n%s", err, out)
	}
	var names []string
	for _, e := range list {
		names = append(names, fmt.Sprint(e["name"]))
		if e["path"] == "" || e["loaded"] != false || e["type"] != "F32" {
			t.Errorf("entry %v", e)
		}
	}
	// stories260K.gguf is only servable through its block (upper case).
	if strings.Join(names, ",") != "stories260k,tiny" {
		t.Errorf("names = %v", names)
	}
	if list[0]["sha256"] != "270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d" || list[1]["sha256"] != nil {
		t.Errorf("sha256: %v / %v", list[0]["sha256"], list[1]["sha256"])
	}
	// kv_budget: the model block's, else the file's.
	if list[0]["kv_budget"] != float64(64<<20) || list[1]["kv_budget"] != float64(1<<30) {
		t.Errorf("kv_budget: %v / %v", list[0]["kv_budget"], list[1]["kv_budget"])
	}

	code, out, errOut = runLoaderCLI(t, nil, "models", "--config", cfgPath)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"NAME", "stories260k", "tiny", filepath.Join(dir, "models", "tiny.gguf"), "1.1MiB", "F32", "KV BUDGET", "64.0MiB", "1.0GiB"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	// An empty models dir gives an empty JSON array, not null.
	empty := filepath.Join(dir, "empty.hcl")
	if err := os.WriteFile(empty, []byte(`models_dir = "nothing"`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ = runLoaderCLI(t, nil, "models", "--json", "--config", empty)
	if code != 0 || strings.TrimSpace(out) != "[]" {
		t.Errorf("empty: exit %d: %q", code, out)
	}
}

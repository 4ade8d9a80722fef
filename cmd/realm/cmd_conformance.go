package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"text/tabwriter"

	"github.com/hashicorp/go-hclog"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/gguf"
	"github.com/realmrt/realm/internal/backend/reference"
	"github.com/realmrt/realm/internal/conformance"
	"github.com/realmrt/realm/internal/engine"
	"github.com/realmrt/realm/internal/refdata"
	"github.com/realmrt/realm/loader"
)

// runConformance implements `realm conformance`: the backend conformance
// suite, run through each backend's real plugin process.
func runConformance(ctx context.Context, env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("conformance", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	var (
		which    = fs.String("backend", "all", "backend to test, or all")
		ops      = fs.String("ops", "", "run only the cases whose name matches this regular expression")
		jsonOut  = fs.String("json", "", "also write the results as JSON to this file")
		list     = fs.Bool("list", false, "print the support matrix (op × type) of each backend and exit")
		refDir   = fs.String("reference", "", "llama.cpp reference data directory with models/ and outputs/ (default: the copy embedded in this binary)")
		seed     = fs.Uint64("seed", 0, "seed of the random inputs (0: the fixed default)")
		noModels = fs.Bool("no-models", false, "leave out the model cases")
		verbose  = fs.Bool("v", false, "log plugin output at debug level")
		abiGuest = fs.String("abi-guest", "bin/conformance/abiguest.wasm", "the compiled ABI guest (internal/conformance/abiguest); missing: ABI cases are skipped")
		maySkip  = fs.String("may-skip", "", "comma-separated backends that may be skipped wholesale although this machine could run them (make sets it when it built without their packages)")
	)
	rf := addRuntimeFlags(fs, 0) // its --backend names backends to test, not a pin
	fs.Usage = func() {
		fmt.Fprintln(env.Stderr, "usage: realm conformance [--backend NAME|all] [--ops REGEX] [--json FILE] [--list] [--config FILE]")
		fs.PrintDefaults()
	}
	if _, err := parseExact(fs, args, 0); err != nil {
		return err
	}
	opts := conformance.Options{Seed: *seed, SkipModels: *noModels}
	if *ops != "" {
		re, err := regexp.Compile(*ops)
		if err != nil {
			return fmt.Errorf("--ops: %w", err)
		}
		opts.Filter = re
	}
	if b, err := os.ReadFile(*abiGuest); err == nil {
		opts.ABIGuest = b
	} else {
		fmt.Fprintf(env.Stderr, "realm conformance: ABI guest not found (%v): ABI cases are skipped (make builds it)\n", err)
	}
	cfg, err := rf.loadConfig(env)
	if err != nil {
		return err
	}
	targets, err := conformance.Targets(cfg, loader.Detect(), *which)
	if err != nil {
		return err
	}
	level := hclog.Error
	if *verbose {
		level = hclog.Debug
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "realm", Output: env.Stderr, Level: level})
	ref := engine.NewBackend(reference.New(), engine.Options{Name: "reference (in-process yardstick)", Version: version})

	if *list {
		return listMatrix(ctx, env, targets, log)
	}
	if !*noModels {
		dir, cleanup, err := referenceDir(*refDir)
		if err != nil {
			return err
		}
		defer cleanup()
		opts.ReferenceDir = dir
		if root, err := refdata.RepoRoot(); err == nil {
			if d := filepath.Join(root, "testdata", "arch"); fileExists(filepath.Join(d, "README.md")) {
				opts.ArchDir = d
			}
		}
	}

	var reps []*conformance.Report
	failed := false
	for _, t := range targets {
		rep := conformance.RunTarget(ctx, t, ref, opts, log)
		if err := conformance.WriteTable(env.Stdout, rep); err != nil {
			return err
		}
		fmt.Fprintln(env.Stdout)
		failed = failed || rep.Failed > 0
		reps = append(reps, rep)
	}
	if opts.Filter == nil || opts.Filter.MatchString("fault/") {
		rep := conformance.RunPluginBoundary(ctx, log)
		if err := conformance.WriteTable(env.Stdout, rep); err != nil {
			return err
		}
		failed = failed || rep.Failed > 0
		reps = append(reps, rep)
	}
	fmt.Fprintln(env.Stdout)
	var passed, nfailed, skipped int
	for _, r := range reps {
		fmt.Fprintln(env.Stdout, r.Summary())
		passed, nfailed, skipped = passed+r.Passed, nfailed+r.Failed, skipped+r.Skipped
	}
	fmt.Fprintf(env.Stdout, "conformance: %d passed, %d failed, %d skipped\n", passed, nfailed, skipped)
	allowed := map[string]bool{}
	for _, n := range strings.Split(*maySkip, ",") {
		allowed[strings.TrimSpace(n)] = true
	}
	canRun := func(t conformance.Target) (bool, string) { return machineCanRun(t, vulkanPresent(env.Getenv)) }
	for _, msg := range skippedButRunnable(targets, reps, opts.Filter != nil, canRun, allowed) {
		fmt.Fprintln(env.Stdout, "FAIL:", msg)
		failed = true
	}
	if *jsonOut != "" {
		f, err := os.Create(*jsonOut)
		if err != nil {
			return err
		}
		werr := conformance.WriteJSON(f, reps)
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return fmt.Errorf("write %s: %w", *jsonOut, werr)
		}
	}
	if failed {
		return exitCode(1)
	}
	return nil
}

// skippedButRunnable returns one message per target that ran no case
// although this machine can run it: a GPU backend vetoed because the
// plugin was built without the Vulkan headers on a machine with a Vulkan
// driver, or a plugin that was never built. Such a run must not pass as
// "all passed". A report counts as skipped wholesale when nothing passed
// or failed and it was skipped before any case ran (or, without a case
// filter, every case was skipped). allowed names backends the caller
// knowingly runs without (make's --may-skip when their packages are
// missing).
func skippedButRunnable(targets []conformance.Target, reps []*conformance.Report, filtered bool, canRun func(conformance.Target) (bool, string), allowed map[string]bool) []string {
	byName := map[string]*conformance.Report{}
	for _, r := range reps {
		byName[r.Backend] = r
	}
	var msgs []string
	for _, t := range targets {
		r := byName[t.Name]
		if r == nil || allowed[t.Name] || r.Passed > 0 || r.Failed > 0 {
			continue
		}
		if r.Reason == "" && (filtered || r.Skipped == 0) {
			continue
		}
		ok, why := canRun(t)
		if !ok {
			continue
		}
		reason := r.Reason
		if reason == "" {
			reason = "every case skipped"
		}
		msgs = append(msgs, fmt.Sprintf("%s: skipped wholesale (%s), but this machine can run it (%s); rebuild with make, or pass --may-skip %s", t.Name, reason, why, t.Name))
	}
	return msgs
}

// machineCanRun reports whether this machine has what target t needs,
// judged without its plugin: a CPU backend whose architecture and CPU
// features fit (Targets leaves Skip empty, or set only because the
// binary is not built); a GPU backend when vulkan (vulkanPresent's
// answer) found a Vulkan driver and loader.
func machineCanRun(t conformance.Target, vulkan string) (bool, string) {
	if t.GPU {
		return vulkan != "", vulkan
	}
	if t.Skip == "" || t.NotBuilt {
		return true, "its architecture and CPU features fit"
	}
	return false, ""
}

// vulkanPresent describes the Vulkan driver (ICD manifest) and loader
// library found on this machine, or returns "" when either is missing.
func vulkanPresent(getenv func(string) string) string {
	var icds []string
	for _, v := range []string{"VK_DRIVER_FILES", "VK_ICD_FILENAMES"} {
		for _, f := range filepath.SplitList(getenv(v)) {
			if f != "" {
				icds = append(icds, f)
			}
		}
	}
	if len(icds) == 0 {
		dirs := []string{"/etc/vulkan/icd.d", "/usr/local/share/vulkan/icd.d", "/usr/share/vulkan/icd.d"}
		for _, d := range filepath.SplitList(getenv("XDG_DATA_DIRS")) {
			dirs = append(dirs, filepath.Join(d, "vulkan", "icd.d"))
		}
		for _, d := range dirs {
			m, _ := filepath.Glob(filepath.Join(d, "*.json"))
			icds = append(icds, m...)
		}
	}
	icd := ""
	for _, f := range icds {
		if st, err := os.Stat(f); err == nil && st.Mode().IsRegular() {
			icd = f
			break
		}
	}
	if icd == "" {
		return ""
	}
	libDirs := filepath.SplitList(getenv("LD_LIBRARY_PATH"))
	multi, _ := filepath.Glob("/usr/lib/*-linux-gnu")
	libDirs = append(libDirs, multi...)
	multi, _ = filepath.Glob("/lib/*-linux-gnu")
	libDirs = append(libDirs, multi...)
	libDirs = append(libDirs, "/usr/local/lib", "/usr/lib64", "/usr/lib", "/lib64", "/lib")
	for _, d := range libDirs {
		if d == "" {
			continue
		}
		lib := filepath.Join(d, "libvulkan.so.1")
		if _, err := os.Stat(lib); err == nil {
			return fmt.Sprintf("driver %s, loader %s", icd, lib)
		}
	}
	return ""
}

// referenceDir returns the reference data directory the model, ABI and
// fault cases read: flagDir when set (it must hold models/ and outputs/),
// else a temporary copy of the data embedded in this binary, which
// cleanup removes. Backend plugins load models by path, so the embedded
// files are written out rather than read in place.
func referenceDir(flagDir string) (dir string, cleanup func(), err error) {
	if flagDir != "" {
		for _, sub := range []string{"models", "outputs"} {
			if st, err := os.Stat(filepath.Join(flagDir, sub)); err != nil || !st.IsDir() {
				return "", nil, fmt.Errorf("--reference %s: no %s/ directory in it", flagDir, sub)
			}
		}
		return flagDir, func() {}, nil
	}
	tmp, err := os.MkdirTemp("", "realm-reference-")
	if err != nil {
		return "", nil, fmt.Errorf("reference data: %w", err)
	}
	cleanup = func() { os.RemoveAll(tmp) }
	if err := refdata.Extract(tmp); err != nil {
		cleanup()
		return "", nil, err
	}
	return tmp, cleanup, nil
}

// listMatrix prints, per backend, which ops it declares and which weight
// types its matmul and get_rows accept.
func listMatrix(ctx context.Context, env *cliEnv, targets []conformance.Target, log hclog.Logger) error {
	for _, t := range targets {
		fmt.Fprintf(env.Stdout, "== %s\n", t.Name)
		if t.Skip != "" {
			fmt.Fprintf(env.Stdout, "skipped: %s\n\n", t.Skip)
			continue
		}
		sup, err := loader.NewSupervisor(ctx, loader.SupervisorConfig{Plugins: []loader.PluginSpec{t.Spec}, Logger: log})
		if err != nil {
			fmt.Fprintf(env.Stdout, "cannot start: %v\n\n", err)
			continue
		}
		info, err := sup.Info(ctx)
		sup.Close()
		if err != nil {
			fmt.Fprintf(env.Stdout, "info: %v\n\n", err)
			continue
		}
		m := conformance.SupportMatrix(t.Name, info)
		tw := tabwriter.NewWriter(env.Stdout, 0, 0, 1, ' ', 0)
		var hdr []string
		for _, wt := range gguf.WeightTypes() {
			hdr = append(hdr, wt.String())
		}
		fmt.Fprintf(tw, "OP\t%s\n", strings.Join(hdr, "\t"))
		for _, op := range m.Ops {
			row := []string{op}
			for _, wt := range gguf.WeightTypes() {
				row = append(row, matrixCell(op, wt.String(), m))
			}
			fmt.Fprintln(tw, strings.Join(row, "\t"))
		}
		tw.Flush()
		fmt.Fprintf(env.Stdout, "yes = the backend declares the weight type, - = it does not (cases skipped), f32 = the op takes f32 inputs\n\n")
	}
	return nil
}

func matrixCell(op, typ string, m conformance.Matrix) string {
	switch op {
	case backends.OpMatMul, backends.OpGetRows:
		if m.Native[typ] {
			return "yes"
		}
		return "-"
	}
	if typ == "F32" {
		return "yes"
	}
	return "f32"
}

// fileExists reports whether path names an existing file.
func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

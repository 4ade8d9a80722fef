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
		cfgPath  = fs.String("config", "", "configuration file (default $REALM_CONFIG or ./plugins.hcl)")
		refDir   = fs.String("reference", "", "llama.cpp reference data directory (default ../shared/design/reference beside the repository)")
		seed     = fs.Uint64("seed", 0, "seed of the random inputs (0: the fixed default)")
		noModels = fs.Bool("no-models", false, "leave out the model cases")
		verbose  = fs.Bool("v", false, "log plugin output at debug level")
		abiGuest = fs.String("abi-guest", "bin/conformance/abiguest.wasm", "the compiled ABI guest (internal/conformance/abiguest); missing: ABI cases are skipped")
	)
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
	if !*noModels {
		dir := *refDir
		if dir == "" {
			if d, err := refdata.Dir(); err == nil {
				dir = d
			}
		}
		if dir == "" {
			fmt.Fprintln(env.Stderr, "realm conformance: no reference data found (--reference DIR): model and fault cases are skipped")
		}
		opts.ReferenceDir = dir
		if root, err := refdata.RepoRoot(); err == nil {
			if d := filepath.Join(root, "testdata", "arch"); fileExists(filepath.Join(d, "README.md")) {
				opts.ArchDir = d
			}
		}
	}
	if b, err := os.ReadFile(*abiGuest); err == nil {
		opts.ABIGuest = b
	} else {
		fmt.Fprintf(env.Stderr, "realm conformance: ABI guest not found (%v): ABI cases are skipped (make builds it)\n", err)
	}
	cfg, err := loader.LoadConfig(loaderConfigPath(env, *cfgPath))
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
		for _, wt := range conformance.WeightTypes() {
			hdr = append(hdr, wt.String())
		}
		fmt.Fprintf(tw, "OP\t%s\n", strings.Join(hdr, "\t"))
		for _, op := range m.Ops {
			row := []string{op}
			for _, wt := range conformance.WeightTypes() {
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

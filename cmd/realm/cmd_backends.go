package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/hashicorp/go-hclog"

	"github.com/realmrt/realm/loader"
)

// loaderConfigPath resolves the configuration file: the --config flag,
// else REALM_CONFIG, else ./plugins.hcl.
func loaderConfigPath(env *cliEnv, flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if v := env.Getenv("REALM_CONFIG"); v != "" {
		return v
	}
	return loader.DefaultConfigFile
}

// loaderPin resolves the pinned backend: the --backend flag, else
// REALM_BACKEND.
func loaderPin(env *cliEnv, flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	return env.Getenv("REALM_BACKEND")
}

// openRuntime opens the loader runtime the way every command does: the
// configuration from --config / REALM_CONFIG / ./plugins.hcl, the pin from
// --backend / REALM_BACKEND, and threads (> 0) overriding the backends'
// thread counts.
func openRuntime(ctx context.Context, env *cliEnv, cfgFlag, pinFlag string, threads int, log hclog.Logger) (*loader.Runtime, error) {
	return loader.Open(ctx, loader.Options{
		ConfigPath: loaderConfigPath(env, cfgFlag),
		Pin:        loaderPin(env, pinFlag),
		Logger:     log,
		Threads:    threads,
	})
}

// cliLogger is the stderr logger of a command: level, or debug with -v.
func cliLogger(env *cliEnv, level hclog.Level, verbose bool) hclog.Logger {
	if verbose {
		level = hclog.Debug
	}
	return hclog.New(&hclog.LoggerOptions{Name: "realm", Output: env.Stderr, Level: level})
}

// backendsOutput is what `realm backends --json` prints.
type backendsOutput struct {
	Config string `json:"config"`
	loader.Decision
	Error string `json:"error,omitempty"`
}

// runBackends implements `realm backends`: the backend decision table.
func runBackends(ctx context.Context, env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("backends", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	var (
		asJSON  = fs.Bool("json", false, "print the decision as JSON")
		noProbe = fs.Bool("no-probe", false, "do not start plugins with probe = true (they show as not probed)")
	)
	rf := addRuntimeFlags(fs, withBackend)
	fs.Usage = func() {
		fmt.Fprintln(env.Stderr, "usage: realm backends [--json] [--config FILE] [--backend NAME] [--no-probe]")
		fs.PrintDefaults()
	}
	if _, err := parseExact(fs, args, 0); err != nil {
		return err
	}
	cfg, err := rf.loadConfig(env)
	if err != nil {
		return err
	}
	m := loader.Detect()
	var probe loader.Prober
	if !*noProbe {
		probe = loader.PluginProber(hclog.New(&hclog.LoggerOptions{Name: "realm", Output: env.Stderr, Level: hclog.Error}))
	}
	d, selErr := loader.Select(m, cfg, loader.Preflight(ctx, m, cfg, probe), loaderPin(env, rf.backend))
	if *asJSON {
		out := backendsOutput{Config: cfg.Path, Decision: d}
		if selErr != nil {
			out.Error = selErr.Error()
		}
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
		if selErr != nil {
			return exitCode(1)
		}
		return nil
	}
	if err := printDecision(env.Stdout, cfg, &d); err != nil {
		return err
	}
	return selErr
}

// printDecision writes the decision table.
func printDecision(w io.Writer, cfg *loader.Config, d *loader.Decision) error {
	m := &d.Machine
	vm := ""
	if m.VM {
		vm = ", virtual machine"
	}
	fmt.Fprintf(w, "machine: %s/%s, %s %q, %d cores, %d threads%s\n", m.OS, m.Arch, m.Vendor, m.Brand, m.Cores, m.Threads, vm)
	if len(m.GPUs) == 0 {
		fmt.Fprintln(w, "gpus:    none found")
	}
	for _, g := range m.GPUs {
		fmt.Fprintf(w, "gpu:     %s %s %s (driver %s)\n", g.Node, g.Vendor, g.DeviceID, g.Driver)
	}
	fmt.Fprintf(w, "config:  %s\n\n", cfg.Path)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  RANK\tBACKEND\tARCH\tPRIORITY\tGPU\tSCORE\tELIGIBLE\tREQUIRES (detected)\tREASON")
	for _, c := range d.Candidates {
		mark := " "
		if c.Name == d.Chosen {
			mark = "*"
		}
		rank := "-"
		if c.Rank > 0 {
			rank = strconv.Itoa(c.Rank)
		}
		fmt.Fprintf(tw, "%s %s\t%s\t%s\t%d\t%s\t%d\t%s\t%s\t%s\n", mark, rank, c.Name, c.Arch, c.Priority,
			yesNo(c.GPU), c.Score, yesNo(c.Eligible), featureList(c), c.Reason)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	if d.Chosen == "" {
		_, err := fmt.Fprintln(w, "chosen:  none")
		return err
	}
	fmt.Fprintf(w, "chosen:  %s (%s)\n", d.Chosen, d.Why)
	_, err := fmt.Fprintf(w, "order:   %s\n", strings.Join(d.Order, " → "))
	return err
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// featureList renders "AVX2=yes FMA3=no +ASIMDDP=yes" (preferred
// features carry a +).
func featureList(c loader.Candidate) string {
	var parts []string
	for _, f := range c.Requires {
		parts = append(parts, f.Name+"="+yesNo(f.Detected))
	}
	for _, f := range c.Prefers {
		parts = append(parts, "+"+f.Name+"="+yesNo(f.Detected))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

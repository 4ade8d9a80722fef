package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"text/tabwriter"

	"github.com/realmrt/realm/loader"
)

// runModels implements `realm models`: every servable model name.
func runModels(_ context.Context, env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("models", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	var (
		asJSON = fs.Bool("json", false, "print a JSON array of models")
	)
	rf := addRuntimeFlags(fs, 0)
	fs.Usage = func() {
		fmt.Fprintln(env.Stderr, "usage: realm models [--json] [--config FILE]")
		fs.PrintDefaults()
	}
	if _, err := parseExact(fs, args, 0); err != nil {
		return err
	}
	cfg, err := rf.loadConfig(env)
	if err != nil {
		return err
	}
	// This process loads nothing, so every entry reports loaded = false.
	list, err := loader.NewRegistry(cfg).List()
	if err != nil {
		return err
	}
	if list == nil {
		list = []loader.ModelEntry{}
	}
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(list)
	}
	fmt.Fprintf(env.Stdout, "models dir: %s\n\n", cfg.ModelsDir)
	tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTYPE\tSIZE\tKV BUDGET\tLOADED\tPATH\tSHA256")
	for _, e := range list {
		typ, size, sum := e.Type, "-", e.SHA256
		if e.Size > 0 {
			size = loader.FormatSize(e.Size)
		}
		if typ == "" {
			typ = "-"
		}
		if sum == "" {
			sum = "-"
		}
		kv := "default"
		if e.KVBudget > 0 {
			kv = loader.FormatSize(e.KVBudget)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Name, typ, size, kv, yesNo(e.Loaded), e.Path, sum)
		if e.Error != "" {
			fmt.Fprintf(tw, "  error: %s\t\t\t\t\t\t\n", e.Error)
		}
	}
	return tw.Flush()
}

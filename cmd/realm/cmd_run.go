package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"

	"github.com/realmrt/realm/core"
	"github.com/realmrt/realm/internal/loaderhost"
	"github.com/realmrt/realm/loader"
)

// runSummary is what `realm run --json` prints to stderr.
type runSummary struct {
	App             string  `json:"app,omitempty"`
	Backend         string  `json:"backend"`
	ExitCode        int     `json:"exit_code"`
	TokensGenerated int     `json:"tokens_generated"`
	TokensDecoded   int     `json:"tokens_decoded"`
	OutputBytes     int64   `json:"output_bytes"`
	HostCalls       int64   `json:"host_calls"`
	DurationMS      float64 `json:"duration_ms"`
	InstantiateMS   float64 `json:"instantiate_ms"`
	Error           string  `json:"error,omitempty"`
}

// runRun implements `realm run APP.wasm [flags] [-- args...]`: one run of
// a guest against the configured backend.
func runRun(ctx context.Context, env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	var (
		appName = fs.String("app", "", "apply this app block's policy (default: the app whose wasm is APP.wasm, else none)")
		asJSON  = fs.Bool("json", false, "print a JSON run summary to stderr")
		verbose = fs.Bool("v", false, "log host and plugin events to stderr")
	)
	rf := addRuntimeFlags(fs, withBackend|withCacheDir)
	fs.Usage = func() {
		fmt.Fprintln(env.Stderr, "usage: realm run [flags] APP.wasm [flags] [-- guest args...]")
		fs.PrintDefaults()
	}
	// Flags may come before or after APP.wasm; "--" starts the guest's args.
	var wasmPath string
	var guestArgs []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil
			}
			return exitCode(2)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if rest[0] == "--" {
			guestArgs = rest[1:]
			break
		}
		if wasmPath != "" {
			guestArgs = rest // a guest argument without "--"
			break
		}
		wasmPath, args = rest[0], rest[1:]
	}

	log := cliLogger(env, hclog.Warn, *verbose)
	rt, err := openRuntime(ctx, env, rf.config, rf.backend, 0, log)
	if err != nil {
		return err
	}
	defer rt.Close()

	app, err := findApp(rt.Config, *appName, wasmPath)
	if err != nil {
		return err
	}
	if wasmPath == "" {
		if app == nil {
			fs.Usage()
			return exitCode(2)
		}
		wasmPath = app.WASM
	}
	wasm, err := os.ReadFile(wasmPath)
	if err != nil {
		return err
	}
	cfg := core.Config{Models: loaderhost.Models(rt.Models), Logger: log}
	cfg.CacheDir = rf.guestCacheDir()
	host, err := core.NewHost(ctx, cfg)
	if err != nil {
		return err
	}
	defer host.Close(context.WithoutCancel(ctx))

	req := core.RunRequest{
		Wasm: wasm, Name: filepath.Base(wasmPath), Args: guestArgs,
		Stdin: env.Stdin, Stdout: env.Stdout, Stderr: env.Stderr,
		Policy: loaderhost.Policy(app),
	}
	res, runErr := host.Run(ctx, req)
	if *asJSON {
		s := runSummary{Backend: rt.Decision.Chosen}
		if app != nil {
			s.App = app.Name
		}
		if res != nil {
			s.ExitCode, s.TokensGenerated, s.TokensDecoded = res.ExitCode, res.TokensGenerated, res.TokensDecoded
			s.OutputBytes, s.HostCalls = res.OutputBytes, res.HostCalls
			s.DurationMS = float64(res.Duration.Microseconds()) / 1000
			s.InstantiateMS = float64(res.Instantiate.Microseconds()) / 1000
		}
		if runErr != nil {
			s.Error = runErr.Error()
		}
		b, _ := json.Marshal(s)
		fmt.Fprintln(env.Stderr, string(b))
	}
	if runErr != nil {
		return runErr
	}
	if res.ExitCode != 0 {
		return exitCode(res.ExitCode)
	}
	return nil
}

// findApp picks the app block: by name, else the one whose wasm is the
// given file, else none.
func findApp(cfg *loader.Config, name, wasmPath string) (*loader.AppConfig, error) {
	if name != "" {
		for i := range cfg.Apps {
			if cfg.Apps[i].Name == name {
				return &cfg.Apps[i], nil
			}
		}
		return nil, fmt.Errorf("no app %q in %s", name, cfg.Path)
	}
	if wasmPath == "" {
		return nil, nil
	}
	abs, err := filepath.Abs(wasmPath)
	if err != nil {
		return nil, err
	}
	for i := range cfg.Apps {
		if cfg.Apps[i].WASM == abs {
			return &cfg.Apps[i], nil
		}
	}
	return nil, nil
}

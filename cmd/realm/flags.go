package main

import (
	"errors"
	"flag"
	"os"
	"path/filepath"

	"github.com/realmrt/realm/loader"
)

// parseArgs parses a command's flags, which may come before, between or
// after its positional arguments ("--" ends the flags), and returns the
// positional arguments. The flag package has already printed what went
// wrong, so the error is only a status: exitCode(0) after -h, exitCode(2)
// after a bad flag.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, exitCode(0)
			}
			return nil, exitCode(2)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// parseExact is parseArgs for a command that takes exactly n positional
// arguments: another count prints the usage and returns exitCode(2).
func parseExact(fs *flag.FlagSet, args []string, n int) ([]string, error) {
	pos, err := parseArgs(fs, args)
	if err != nil {
		return nil, err
	}
	if len(pos) != n {
		fs.Usage()
		return nil, exitCode(2)
	}
	return pos, nil
}

// runtimeFlags are the flags that choose a command's configuration,
// backend and compiled-guest cache. addRuntimeFlags registers them, so
// every command spells, defaults and documents them alike.
type runtimeFlags struct {
	config   string // --config: "" means $REALM_CONFIG or ./plugins.hcl
	backend  string // --backend: "" means $REALM_BACKEND or the ranking
	cacheDir string // --cache-dir: "" means defaultGuestCacheDir
}

// The runtime flags a command can take besides --config.
const (
	withBackend  = 1 << iota // --backend: pin a backend of the configuration
	withCacheDir             // --cache-dir: keep compiled guests there
)

// addRuntimeFlags registers --config and the flags with selects on fs.
func addRuntimeFlags(fs *flag.FlagSet, with int) *runtimeFlags {
	r := &runtimeFlags{}
	fs.StringVar(&r.config, "config", "", "configuration file (default $REALM_CONFIG or ./plugins.hcl)")
	if with&withBackend != 0 {
		fs.StringVar(&r.backend, "backend", "", "pin a backend of the configuration (default $REALM_BACKEND)")
	}
	if with&withCacheDir != 0 {
		fs.StringVar(&r.cacheDir, "cache-dir", "", "keep compiled guests here (default: the user cache dir's realm/wazero)")
	}
	return r
}

// guestCacheDir is --cache-dir, or defaultGuestCacheDir.
func (r *runtimeFlags) guestCacheDir() string {
	if r.cacheDir != "" {
		return r.cacheDir
	}
	return defaultGuestCacheDir()
}

// defaultGuestCacheDir is where compiled guests are kept: the user cache
// dir's realm/wazero, or "" (no cache) where there is none.
func defaultGuestCacheDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "realm", "wazero")
}

// loadConfig loads the configuration --config names (else REALM_CONFIG,
// else ./plugins.hcl).
func (r *runtimeFlags) loadConfig(env *cliEnv) (*loader.Config, error) {
	return loader.LoadConfig(loaderConfigPath(env, r.config))
}

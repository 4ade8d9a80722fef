package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
)

func TestParseArgs(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		n       int // for parseExact; -1: parseArgs
		pos     []string
		v       bool
		code    exitCode // -1: no error
		usedMsg bool     // the usage was printed
	}{
		{"flags-only", []string{"-v"}, -1, nil, true, -1, false},
		{"interleaved", []string{"a", "-v", "b"}, -1, []string{"a", "b"}, true, -1, false},
		{"dashdash", []string{"a", "--", "-v", "b"}, -1, []string{"a", "-v", "b"}, false, -1, false},
		{"help", []string{"-h"}, -1, nil, false, 0, true},
		{"bad-flag", []string{"--nope"}, -1, nil, false, 2, true},
		{"exact", []string{"x", "y", "-v"}, 2, []string{"x", "y"}, true, -1, false},
		{"too-few", []string{"x"}, 2, nil, false, 2, true},
		{"too-many", []string{"x", "y", "z"}, 2, nil, false, 2, true},
		{"none-wanted", []string{"x"}, 0, nil, false, 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			v := fs.Bool("v", false, "verbose")
			used := false
			fs.Usage = func() { used = true }
			var pos []string
			var err error
			if tc.n < 0 {
				pos, err = parseArgs(fs, tc.args)
			} else {
				pos, err = parseExact(fs, tc.args, tc.n)
			}
			if tc.code < 0 {
				if err != nil {
					t.Fatalf("error %v", err)
				}
			} else if code, ok := errors.AsType[exitCode](err); !ok || code != tc.code {
				t.Fatalf("error %v, want exit code %d", err, tc.code)
			}
			if !slices.Equal(pos, tc.pos) || *v != tc.v || used != tc.usedMsg {
				t.Fatalf("pos %q v %v usage %v, want %q %v %v", pos, *v, used, tc.pos, tc.v, tc.usedMsg)
			}
		})
	}
}

// TestRuntimeFlags: every command that opens the configured runtime
// documents --config (and --backend, --cache-dir where it takes them)
// in the words addRuntimeFlags gives them.
func TestRuntimeFlags(t *testing.T) {
	cfg := "configuration file (default $REALM_CONFIG or ./plugins.hcl)"
	pin := "pin a backend of the configuration (default $REALM_BACKEND)"
	cache := "keep compiled guests here"
	for _, tc := range []struct {
		cmd  string
		want []string
	}{
		{"run", []string{cfg, pin, cache}},
		{"serve", []string{cfg, pin, cache}},
		{"backends", []string{cfg, pin}},
		{"bench", []string{cfg, pin}},
		{"models", []string{cfg}},
		{"conformance", []string{cfg}},
		{"generate", []string{"configuration file: run in its selected backend plugin", pin}},
	} {
		t.Run(tc.cmd, func(t *testing.T) {
			var stderr strings.Builder
			env := &cliEnv{Stdout: io.Discard, Stderr: &stderr, Stdin: strings.NewReader(""), Getenv: func(string) string { return "" }}
			_ = commands()[tc.cmd].run(context.Background(), env, []string{"-h"})
			for _, w := range tc.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("realm %s -h lacks %q:\n%s", tc.cmd, w, stderr.String())
				}
			}
		})
	}
}

// Command realm is the Realm CLI: it runs WASM guest apps against
// out-of-process compute backends, and carries the tools around them
// (GGUF inspection, tokenization, generation, benchmarks, conformance).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// command is one subcommand of the CLI.
type command struct {
	summary string
	run     func(ctx context.Context, env *cliEnv, args []string) error
}

// cliEnv carries the process's streams and environment into commands so
// that tests can run them in-process.
type cliEnv struct {
	Stdout io.Writer
	Stderr io.Writer
	Stdin  io.Reader
	Getenv func(string) string
}

// commands returns the subcommand table. Each command lives in its own
// cmd_*.go file; add one line here per command.
func commands() map[string]command {
	return map[string]command{
		"gguf":        {"inspect GGUF files, synthesize test models", runGGUF},
		"quantize":    {"convert a GGUF model to another tensor type", runQuantize},
		"version":     {"print the version", runVersion},
		"run":         {"run a WASM guest app against the configured backend", runRun},
		"backends":    {"show how the backends rank on this machine and which one runs", runBackends},
		"models":      {"list the servable model names", runModels},
		"generate":    {"generate text from a model", runGenerate},
		"tokenize":    {"tokenize text with a model's tokenizer", runTokenize},
		"embed":       {"print the embeddings of texts from an embedding model", runEmbed},
		"bench":       {"measure prompt and generation speed (like llama-bench)", runBench},
		"conformance": {"run the backend conformance suite through the plugins", runConformance},
		"serve":       {"serve the OpenAI API; each request runs a WASM app", runServe},
		"worker":      {"join a cluster and serve the requests its front ends route here", runWorker},
		"cluster":     {"show a cluster's workers and what they hold", runCluster},
	}
}

// version is the version string of this build.
const version = "0.1.0-dev"

func runVersion(_ context.Context, env *cliEnv, _ []string) error {
	_, err := fmt.Fprintf(env.Stdout, "realm %s\n", version)
	return err
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: realm COMMAND [flags] [args]")
	fmt.Fprintln(w, "\ncommands:")
	cmds := commands()
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, cmds[n].summary)
	}
}

// realMain runs the CLI and returns the process exit code.
func realMain(ctx context.Context, env *cliEnv, args []string) int {
	if len(args) < 1 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(env.Stderr)
		if len(args) < 1 {
			return 2
		}
		return 0
	}
	cmd, ok := commands()[args[0]]
	if !ok {
		fmt.Fprintf(env.Stderr, "realm: unknown command %q\n", args[0])
		usage(env.Stderr)
		return 2
	}
	if err := cmd.run(ctx, env, args[1:]); err != nil {
		if code, ok := errors.AsType[exitCode](err); ok {
			return int(code)
		}
		fmt.Fprintf(env.Stderr, "realm %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

// exitCode is returned by a command that has already reported its
// failure and only wants the process to exit with a given status.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func main() {
	// The first SIGINT/SIGTERM cancels ctx: a run or a server ends
	// gracefully (the guest is woken from any sleep or blocking call,
	// plugins are stopped, their socket directory removed). A second
	// signal gets the default action, so an impatient user still gets out.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	context.AfterFunc(ctx, stop)
	env := &cliEnv{Stdout: os.Stdout, Stderr: os.Stderr, Stdin: os.Stdin, Getenv: os.Getenv}
	code := realMain(ctx, env, os.Args[1:])
	stop()
	os.Exit(code)
}

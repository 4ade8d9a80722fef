package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/realmrt/realm/server"
)

// shutdownGrace bounds how long `realm serve` waits for requests in
// flight when it is asked to stop.
const shutdownGrace = 10 * time.Second

// runServe implements `realm serve`: the OpenAI-compatible HTTP server.
func runServe(ctx context.Context, env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	var (
		addr     = fs.String("addr", "", "listen address (default: the server block's addr, 127.0.0.1:8080)")
		cfgPath  = fs.String("config", "", "configuration file (default $REALM_CONFIG or ./plugins.hcl)")
		pin      = fs.String("backend", "", "pin a backend (default $REALM_BACKEND)")
		appName  = fs.String("app", server.DefaultAppName, "the app serving requests no route or app block claims")
		chatWASM = fs.String("chat-wasm", "", "guest module for the default app when plugins.hcl has no block for it (default: bin/examples/chat.wasm next to the config, then examples/chat.wasm next to the realm binary)")
		verbose  = fs.Bool("v", false, "log requests, host and plugin events to stderr")
		cache    = fs.String("cache-dir", "", "keep compiled guests here (default: the user cache dir's realm/wazero)")
		clus     = fs.Bool("cluster", false, "route requests to workers (realm worker --join) over an embedded NATS server instead of running them here")
		cf       clusterServeFlags
	)
	cf.register(fs)
	fs.Usage = func() {
		fmt.Fprintln(env.Stderr, "usage: realm serve [--addr 127.0.0.1:8080] [--config plugins.hcl] [--backend NAME] [flags]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return exitCode(2)
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return exitCode(2)
	}
	if *clus {
		return runClusterServe(ctx, env, cf, *cfgPath, *addr, *appName, *chatWASM, *verbose)
	}
	log := cliLogger(env, hclog.Info, *verbose)
	rt, err := openRuntime(ctx, env, *cfgPath, *pin, 0, log)
	if err != nil {
		return err
	}
	defer rt.Close()

	opts := server.Options{DefaultApp: *appName, Logger: log, CacheDir: *cache}
	if _, ok := rt.Config.App(*appName); !ok {
		opts.DefaultWASM = *chatWASM
		if opts.DefaultWASM == "" {
			opts.DefaultWASM = findChatWASM(rt.Config.Dir)
		}
	}
	if opts.CacheDir == "" {
		if dir, err := os.UserCacheDir(); err == nil {
			opts.CacheDir = filepath.Join(dir, "realm", "wazero")
		}
	}
	srv, err := server.New(ctx, rt, opts)
	if err != nil {
		if opts.DefaultWASM != "" {
			if _, serr := os.Stat(opts.DefaultWASM); serr != nil {
				return fmt.Errorf("%w (build the default chat app with: GOOS=wasip1 GOARCH=wasm go build -o %s ./examples/chat, or name one with --chat-wasm or an app %q block)", err, opts.DefaultWASM, *appName)
			}
		}
		return err
	}
	defer srv.Close(context.WithoutCancel(ctx))

	listen := *addr
	if listen == "" {
		listen = rt.Config.Server.Addr
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	log.Info("serving the OpenAI API", "addr", "http://"+ln.Addr().String(), "backend", rt.Decision.Chosen)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		hs.Close()
	}
	return nil
}

// findChatWASM returns the first examples/chat build found: under the
// configuration's bin/examples, then next to the realm executable.
func findChatWASM(cfgDir string) string {
	cands := []string{filepath.Join(cfgDir, "bin", "examples", "chat.wasm")}
	if exe, err := os.Executable(); err == nil {
		cands = append(cands, filepath.Join(filepath.Dir(exe), "examples", "chat.wasm"))
	}
	for _, c := range cands {
		if _, err := os.Stat(c); err == nil {
			return c
		}
	}
	return cands[0]
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/realmrt/realm/server"
)

// shutdownGrace bounds how long `realm serve` waits for requests in
// flight when it is asked to stop (SIGINT, SIGTERM); runs still going
// then are cancelled.
const shutdownGrace = 10 * time.Second

// fdReserve is how many file descriptors the connection cap leaves for
// everything else (models, plugin sockets, logs).
const fdReserve = 256

// runServe implements `realm serve`: the OpenAI-compatible HTTP server.
func runServe(ctx context.Context, env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	var (
		addr     = fs.String("addr", "", "listen address (default: the server block's addr, 127.0.0.1:8080)")
		appName  = fs.String("app", server.DefaultAppName, "the app serving requests no route or app block claims")
		chatWASM = fs.String("chat-wasm", "", "guest module for the default app when plugins.hcl has no block for it (default: bin/examples/chat.wasm next to the config, then examples/chat.wasm next to the realm binary)")
		verbose  = fs.Bool("v", false, "log requests, host and plugin events to stderr")
		public   = fs.Bool("public-probes", false, "serve /health and /metrics without an API key even when keys are configured")
		maxConns = fs.Int("max-conns", server.DefaultHTTPLimits.MaxConns, "connections open at once, in all (capped by the open-file limit)")
		perAddr  = fs.Int("max-conns-per-addr", server.DefaultHTTPLimits.MaxConnsPerAddr, "connections open at once from one client IP address (behind a reverse proxy every client has the proxy's: raise it)")
		grace    = fs.Duration("shutdown-grace", shutdownGrace, "on SIGINT/SIGTERM, how long requests in flight may finish before they are cancelled")
		clus     = fs.Bool("cluster", false, "route requests to workers (realm worker --join) over an embedded NATS server instead of running them here")
		cf       clusterServeFlags
	)
	rf := addRuntimeFlags(fs, withBackend|withCacheDir)
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
		return runClusterServe(ctx, env, cf, rf.config, *addr, *appName, *chatWASM, *verbose)
	}
	log := cliLogger(env, hclog.Info, *verbose)
	limits := server.DefaultHTTPLimits
	limits.MaxConns, limits.MaxConnsPerAddr = *maxConns, *perAddr
	if fds, err := raiseFDLimit(); err != nil {
		log.Warn("could not raise the open-file limit", "limit", fds, "error", err)
	} else if fds > 0 {
		if room := int(min(fds, 1<<30)) - fdReserve; room > 0 && room < limits.MaxConns {
			log.Warn("the open-file limit caps connections", "limit", fds, "max_conns", room)
			limits.MaxConns = room
		}
	}
	rt, err := openRuntime(ctx, env, rf.config, rf.backend, 0, log)
	if err != nil {
		return err
	}
	defer rt.Close()

	opts := server.Options{DefaultApp: *appName, Logger: log, CacheDir: rf.guestCacheDir(), HTTP: limits, PublicProbes: *public}
	if _, ok := rt.Config.App(*appName); !ok {
		opts.DefaultWASM = *chatWASM
		if opts.DefaultWASM == "" {
			opts.DefaultWASM = findChatWASM(rt.Config.Dir)
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
	hs := srv.HTTPServer()
	hs.ErrorLog = log.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true})
	log.Info("serving the OpenAI API", "addr", "http://"+ln.Addr().String(), "backend", rt.Decision.Chosen,
		"max_conns", limits.MaxConns, "max_conns_per_addr", limits.MaxConnsPerAddr)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(srv.Listen(ln)) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// Stop accepting, let the requests in flight finish within the
	// grace period, then cancel what is left; the deferred closes then
	// stop the host and the plugins and remove their sockets.
	log.Info("shutting down: draining requests in flight", "grace", *grace)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), *grace)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		log.Warn("requests still running after the grace period are cancelled", "error", err)
		hs.Close()
	}
	log.Info("stopped serving")
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

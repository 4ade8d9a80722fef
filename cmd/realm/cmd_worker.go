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

	"github.com/realmrt/realm/cluster"
	"github.com/realmrt/realm/loader"
	"github.com/realmrt/realm/server"
)

// runWorker implements `realm worker`: a cluster member that runs the
// host, loader and plugins of `realm serve` and serves the requests the
// front ends route to it over NATS.
func runWorker(ctx context.Context, env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	host, _ := os.Hostname()
	var (
		join     = fs.String("join", "", "NATS URL(s) of the front ends, comma-separated (nats://HOST:PORT)")
		cfgPath  = fs.String("config", "", "configuration file (default $REALM_CONFIG or ./plugins.hcl)")
		pin      = fs.String("backend", "", "pin a backend (default $REALM_BACKEND)")
		id       = fs.String("id", sanitizeID(fmt.Sprintf("%s-%d", host, os.Getpid())), "worker id (letters, digits, - and _)")
		appName  = fs.String("app", server.DefaultAppName, "the app serving requests no route or app block claims")
		chatWASM = fs.String("chat-wasm", "", "guest module for the default app (default: the one the front ends publish, then bin/examples/chat.wasm)")
		cache    = fs.String("cache-dir", "", "keep compiled guests and fetched apps here (default: the user cache dir's realm)")
		drain    = fs.Duration("drain-timeout", 5*time.Minute, "how long SIGTERM waits for running requests")
		verbose  = fs.Bool("v", false, "log requests, host and plugin events to stderr")
		httpAddr = fs.String("http", "", "serve this worker's GET /health and /metrics here (for probes and scrapers; \"\": off)")
	)
	fs.Usage = func() {
		fmt.Fprintln(env.Stderr, "usage: realm worker --join nats://HOST:PORT [--config plugins.hcl] [--id NAME] [flags]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return exitCode(2)
	}
	if fs.NArg() > 0 || *join == "" {
		fs.Usage()
		return exitCode(2)
	}
	log := cliLogger(env, hclog.Info, *verbose)
	rt, err := openRuntime(ctx, env, *cfgPath, *pin, 0, log)
	if err != nil {
		return err
	}
	defer rt.Close()
	sec, err := cluster.SecurityFrom(rt.Config.Cluster)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	nc, err := cluster.Connect(cctx, *id, *join, sec)
	if err != nil {
		return err
	}
	defer nc.Close()
	if err := cluster.WaitReady(cctx, nc); err != nil {
		return fmt.Errorf("waiting for a front end at %s: %w", *join, err)
	}

	cacheDir := *cache
	if cacheDir == "" {
		if dir, err := os.UserCacheDir(); err == nil {
			cacheDir = filepath.Join(dir, "realm")
		}
	}
	// The worker's /health and /metrics are reached only through NATS and
	// --http (which serves nothing else): no API key for them. Completions
	// still check the key the front end forwards.
	opts := server.Options{DefaultApp: *appName, Logger: log, PublicProbes: true}
	if cacheDir != "" {
		opts.CacheDir = filepath.Join(cacheDir, "wazero")
	}
	// Guest apps come from the cluster by digest (the front ends' versions
	// win over the files named here, so every worker runs the same app).
	fetch := func(name string) string {
		if cacheDir == "" {
			return ""
		}
		path, digest, err := cluster.FetchApp(cctx, nc, name, filepath.Join(cacheDir, "apps"))
		if err != nil {
			log.Warn("no guest app from the cluster; using the local one", "app", name, "error", err)
			return ""
		}
		log.Info("guest app from the cluster", "app", name, "digest", digest)
		return path
	}
	for i := range rt.Config.Apps {
		if path := fetch(rt.Config.Apps[i].Name); path != "" {
			rt.Config.Apps[i].WASM = path
		}
	}
	if _, ok := rt.Config.App(*appName); !ok {
		opts.DefaultWASM = *chatWASM
		if opts.DefaultWASM == "" {
			opts.DefaultWASM = fetch(*appName)
		}
		if opts.DefaultWASM == "" {
			opts.DefaultWASM = findChatWASM(rt.Config.Dir)
		}
	}
	srv, err := server.New(ctx, rt, opts)
	if err != nil {
		return err
	}
	defer srv.Close(context.WithoutCancel(ctx))
	w, err := cluster.NewWorker(cctx, cluster.WorkerConfig{ID: *id, Conn: nc, Node: &hostNode{rt: rt, srv: srv}, Logger: log})
	if err != nil {
		return err
	}
	log.Info("worker joined the cluster", "id", *id, "nats", nc.ConnectedUrlRedacted(), "backend", rt.Decision.Chosen)
	if *httpAddr != "" {
		ln, err := net.Listen("tcp", *httpAddr)
		if err != nil {
			w.Close()
			return err
		}
		h := srv.Handler()
		mux := http.NewServeMux()
		mux.Handle("GET /health", h)
		mux.Handle("GET /metrics", h)
		hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go hs.Serve(ln)
		defer hs.Close()
		log.Info("worker health and metrics", "addr", "http://"+ln.Addr().String())
	}
	<-ctx.Done()
	log.Info("draining: no new requests; waiting for the running ones", "timeout", *drain)
	dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), *drain)
	defer dcancel()
	return w.Drain(dctx)
}

// sanitizeID maps s to a valid worker id.
func sanitizeID(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '-'
		}
	}
	if len(b) > 64 {
		b = b[:64]
	}
	return string(b)
}

// hostNode is a worker's view of its host: realm serve's handler and
// the loader's models.
type hostNode struct {
	rt  *loader.Runtime
	srv *server.Server
}

func (h *hostNode) Handler() http.Handler { return h.srv.Handler() }

func (h *hostNode) State(ctx context.Context) cluster.NodeState {
	st := cluster.NodeState{Backend: h.rt.Decision.Chosen, Device: h.rt.Machine.Brand,
		MaxConcurrent: h.rt.Config.Server.MaxConcurrent, FreeKVBytes: -1}
	if h.rt.Supervisor != nil {
		st.Backend = h.rt.Supervisor.Active()
	}
	for _, e := range h.rt.Models.List(ctx) {
		st.Loadable = append(st.Loadable, e.Name)
		if e.Loaded {
			st.Loaded = append(st.Loaded, e.Name)
		}
	}
	return st
}

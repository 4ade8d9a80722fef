package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/realmrt/realm/cluster"
	"github.com/realmrt/realm/loader"
	"github.com/realmrt/realm/server"
)

// clusterServeFlags are realm serve's --cluster flags.
type clusterServeFlags struct {
	natsListen, natsClusterListen, routes, natsName, natsDir string
	replicas                                                 int
}

func (c *clusterServeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.natsListen, "nats-listen", "127.0.0.1:4222", "with --cluster: the embedded NATS server's client address (workers --join it)")
	fs.StringVar(&c.natsClusterListen, "nats-cluster-listen", "", "with --cluster: the NATS route address other front ends reach (default with --routes: a random port)")
	fs.StringVar(&c.routes, "routes", "", "with --cluster: the NATS route URLs of all front ends, this one's included, comma-separated (nats://HOST:PORT)")
	fs.StringVar(&c.natsName, "nats-name", "", "with --cluster: this NATS server's name (default: the host name)")
	fs.StringVar(&c.natsDir, "nats-dir", "", "with --cluster: JetStream's store (default: the user cache dir's realm/nats/NAME)")
	fs.IntVar(&c.replicas, "replicas", 0, "with --cluster: replicas of the cluster's buckets (default: the number of routes, at most 3)")
}

// runClusterServe is `realm serve --cluster`: the OpenAI API routed to
// workers, over an embedded NATS server.
func runClusterServe(ctx context.Context, env *cliEnv, cf clusterServeFlags, cfgFlag, addr, appName, chatWASM string, verbose bool) error {
	log := cliLogger(env, hclog.Info, verbose)
	cfg, err := loader.LoadConfig(loaderConfigPath(env, cfgFlag))
	if err != nil {
		return err
	}
	sec, err := cluster.SecurityFrom(cfg.Cluster)
	if err != nil {
		return err
	}
	name := cf.natsName
	if name == "" {
		h, _ := os.Hostname()
		name = sanitizeID(h)
	}
	dir := cf.natsDir
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return fmt.Errorf("no --nats-dir and no user cache dir: %w", err)
		}
		dir = filepath.Join(base, "realm", "nats", name)
	}
	var routes []string
	for _, r := range strings.Split(cf.routes, ",") {
		if r = strings.TrimSpace(r); r != "" {
			routes = append(routes, r)
		}
	}
	replicas := cf.replicas
	if replicas <= 0 {
		replicas = min(max(len(routes), 1), 3)
	}
	ns, err := cluster.StartServer(cluster.ServerConfig{Name: name, Listen: cf.natsListen, ClusterListen: cf.natsClusterListen,
		Routes: routes, StoreDir: dir, Security: sec, Logger: log})
	if err != nil {
		return err
	}
	defer ns.Shutdown()
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	nc, err := cluster.Connect(cctx, "frontend-"+name, ns.ClientURL(), sec)
	if err != nil {
		return err
	}
	defer nc.Close()
	var keys []string
	if cfg.Server.APIKeysFile != "" {
		if keys, err = server.ReadAPIKeys(cfg.Server.APIKeysFile); err != nil {
			return err
		}
	}
	// The apps travel to the workers by digest: every app block's, and
	// the default app's when no block names it.
	paths := map[string]string{}
	for _, ac := range cfg.Apps {
		paths[ac.Name] = ac.WASM
	}
	if _, ok := paths[appName]; !ok {
		paths[appName] = chatWASM
		if chatWASM == "" {
			paths[appName] = findChatWASM(cfg.Dir)
		}
	}
	apps := map[string][]byte{}
	for name, path := range paths {
		b, err := os.ReadFile(path)
		if err != nil {
			log.Warn("app not published; workers use their own", "app", name, "error", err)
			continue
		}
		apps[name] = b
	}
	fe, err := cluster.NewFrontend(cctx, cluster.FrontendConfig{Conn: nc, Replicas: replicas, APIKeys: keys, Apps: apps, Logger: log})
	if err != nil {
		return err
	}
	defer fe.Close()

	listen := addr
	if listen == "" {
		listen = cfg.Server.Addr
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: fe.Handler(), ReadHeaderTimeout: 10 * time.Second}
	log.Info("serving the OpenAI API for the cluster", "addr", "http://"+ln.Addr().String(), "nats", ns.ClientURL(), "routes", ns.RouteURL())
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer scancel()
	if err := hs.Shutdown(sctx); err != nil {
		hs.Close()
	}
	return nil
}

// runCluster implements `realm cluster status`.
func runCluster(ctx context.Context, env *cliEnv, args []string) error {
	if len(args) == 0 || args[0] != "status" {
		fmt.Fprintln(env.Stderr, "usage: realm cluster status --join nats://HOST:PORT [--config plugins.hcl] [--json]")
		return exitCode(2)
	}
	fs := flag.NewFlagSet("cluster status", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	var (
		join    = fs.String("join", "nats://127.0.0.1:4222", "NATS URL(s) of the front ends")
		cfgPath = fs.String("config", "", "configuration file for the cluster block (default $REALM_CONFIG or ./plugins.hcl; absent: none)")
		asJSON  = fs.Bool("json", false, "print the members as JSON")
	)
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return exitCode(2)
	}
	var sec cluster.Security
	path := loaderConfigPath(env, *cfgPath)
	if cfg, err := loader.LoadConfig(path); err == nil {
		if sec, err = cluster.SecurityFrom(cfg.Cluster); err != nil {
			return err
		}
	} else if *cfgPath != "" || !errors.Is(err, os.ErrNotExist) {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	nc, err := cluster.Connect(cctx, "realm-cluster-status", *join, sec)
	if err != nil {
		return err
	}
	defer nc.Close()
	members, err := cluster.ReadMembers(cctx, nc)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		if members == nil {
			members = []cluster.WorkerState{}
		}
		return enc.Encode(members)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKER\tBACKEND\tRUNNING\tQUEUED\tSERVED\tSTATE\tLOADED\tLOADABLE")
	for _, m := range members {
		state := "ready"
		if m.Draining {
			state = "draining"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\n", m.ID, m.Backend, m.Running, m.Queued, m.Served, state, list(m.Loaded), list(m.Loadable))
	}
	tw.Flush()
	fmt.Fprintf(env.Stdout, "%d worker(s)\n", len(members))
	return nil
}

func list(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ",")
}

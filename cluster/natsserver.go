package cluster

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats-server/v2/server"
)

// ServerConfig configures an embedded NATS server.
type ServerConfig struct {
	// Name names the server in the cluster (required when Routes is set).
	Name string
	// Listen is the client address, host:port ("127.0.0.1:0": a random
	// loopback port).
	Listen string
	// ClusterListen is the route address other servers connect to (""
	// with no Routes: no clustering; "" with Routes: a random port on
	// Listen's host).
	ClusterListen string
	// ClusterName names the NATS cluster ("realm" when "").
	ClusterName string
	// Routes are the other servers' route URLs (nats://host:port).
	Routes []string
	// StoreDir keeps JetStream's data (required).
	StoreDir string
	// Security applies to clients and routes.
	Security Security
	// Logger receives the server's warnings and errors (nil: discard).
	Logger hclog.Logger
}

// natsLogger forwards a NATS server's warnings and errors to hclog.
type natsLogger struct{ l hclog.Logger }

func (n natsLogger) Noticef(string, ...any)    {}
func (n natsLogger) Debugf(string, ...any)     {}
func (n natsLogger) Tracef(string, ...any)     {}
func (n natsLogger) Warnf(f string, a ...any)  { n.l.Warn(fmt.Sprintf(f, a...)) }
func (n natsLogger) Errorf(f string, a ...any) { n.l.Error(fmt.Sprintf(f, a...)) }
func (n natsLogger) Fatalf(f string, a ...any) { n.l.Error(fmt.Sprintf(f, a...)) }

// Server is an embedded NATS server with JetStream.
type Server struct {
	ns *server.Server
}

// StartServer starts an embedded NATS server and waits until it accepts
// clients. Its JetStream meta group may still be electing a leader;
// OpenBuckets waits for that.
func StartServer(cfg ServerConfig) (*Server, error) {
	if cfg.StoreDir == "" {
		return nil, errors.New("cluster: the NATS server needs a JetStream store directory")
	}
	host, port, err := splitHostPort(cfg.Listen, "127.0.0.1", 4222)
	if err != nil {
		return nil, fmt.Errorf("cluster: nats listen address: %w", err)
	}
	if err := cfg.Security.check(host); err != nil {
		return nil, err
	}
	opts := &server.Options{
		ServerName:         cfg.Name,
		Host:               host,
		Port:               port,
		JetStream:          true,
		StoreDir:           cfg.StoreDir,
		NoSigs:             true,
		NoLog:              true,
		MaxPayload:         8 << 20,
		JetStreamMaxMemory: 256 << 20,
		JetStreamMaxStore:  1 << 30,
	}
	if cfg.ClusterListen != "" || len(cfg.Routes) > 0 {
		ch, cp, err := splitHostPort(cfg.ClusterListen, host, -1)
		if err != nil {
			return nil, fmt.Errorf("cluster: nats cluster address: %w", err)
		}
		if err := cfg.Security.check(ch); err != nil {
			return nil, err
		}
		opts.Cluster.Name = cfg.ClusterName
		if opts.Cluster.Name == "" {
			opts.Cluster.Name = "realm"
		}
		opts.Cluster.Host, opts.Cluster.Port = ch, cp
		for _, r := range cfg.Routes {
			u, err := url.Parse(r)
			if err != nil || u.Host == "" {
				return nil, fmt.Errorf("cluster: route %q is not a nats://host:port URL", r)
			}
			if h := u.Hostname(); cfg.Security.needed(h) && !cfg.Security.complete() {
				return nil, fmt.Errorf("cluster: route %s is not on loopback: configure tls and credentials in the cluster block", r)
			}
			if user, pass := cfg.Security.routeUser(); user != "" {
				u.User = url.UserPassword(user, pass)
			}
			opts.Routes = append(opts.Routes, u)
		}
		if opts.ServerName == "" {
			return nil, errors.New("cluster: a clustered NATS server needs a name")
		}
	}
	if err := cfg.Security.serverOptions(opts); err != nil {
		return nil, err
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("cluster: nats server: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	ns.SetLoggerV2(natsLogger{log.Named("nats")}, false, false, false)
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("cluster: the nats server did not start within 10s (a JetStream cluster needs routes on every server, the seed's included)")
	}
	return &Server{ns: ns}, nil
}

// ClientURL is the URL clients connect to.
func (s *Server) ClientURL() string { return s.ns.ClientURL() }

// RouteURL is the URL other servers route to ("" when not clustered).
func (s *Server) RouteURL() string {
	a := s.ns.ClusterAddr()
	if a == nil {
		return ""
	}
	return "nats://" + a.String()
}

// Shutdown stops the server and waits for it.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}

// splitHostPort parses host:port with defaults for missing parts; a port
// of -1 stands for "random" (server.RANDOM_PORT).
func splitHostPort(addr, defHost string, defPort int) (string, int, error) {
	if defPort < 0 {
		defPort = server.RANDOM_PORT
	}
	if addr == "" {
		return defHost, defPort, nil
	}
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	if h == "" {
		h = defHost
	}
	if p == "" {
		return h, defPort, nil
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 0 || n > 65535 {
		return "", 0, fmt.Errorf("bad port %q", p)
	}
	if n == 0 {
		n = server.RANDOM_PORT
	}
	return h, n, nil
}

// isLoopback reports whether host names only this machine.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Security is the cluster block of plugins.hcl: TLS and credentials for
// NATS. Off is allowed only when every address is on loopback.
type Security struct {
	// CertFile and KeyFile are this node's certificate and key (PEM);
	// CAFile verifies the peers'.
	CertFile, KeyFile, CAFile string
	// User and Password authenticate clients and routes; Token is the
	// alternative to them.
	User, Password string
	Token          string
	// AllowInsecure lifts the rule that a non-loopback address needs TLS
	// and credentials (for networks secured otherwise).
	AllowInsecure bool
}

func (s Security) complete() bool {
	return s.CertFile != "" && s.KeyFile != "" && (s.User != "" || s.Token != "")
}

// needed reports whether host needs TLS and credentials.
func (s Security) needed(host string) bool { return !isLoopback(host) && !s.AllowInsecure }

func (s Security) check(host string) error {
	if s.needed(host) && !s.complete() {
		return fmt.Errorf("cluster: %s is not a loopback address: configure tls_cert, tls_key and user/password or token in the cluster block (or allow_insecure = true)", host)
	}
	return nil
}

func (s Security) serverOptions(o *server.Options) error {
	if s.User != "" {
		o.Username, o.Password = s.User, s.Password
	} else if s.Token != "" {
		o.Authorization = s.Token
	}
	o.Cluster.Username, o.Cluster.Password = s.routeUser()
	if s.CertFile != "" {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: s.CertFile, KeyFile: s.KeyFile, CaFile: s.CAFile, Verify: false, Timeout: 2})
		if err != nil {
			return fmt.Errorf("cluster: tls: %w", err)
		}
		o.TLSConfig, o.TLS, o.TLSTimeout = tc, true, 2
		rc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: s.CertFile, KeyFile: s.KeyFile, CaFile: s.CAFile, Verify: s.CAFile != "", Timeout: 2})
		if err != nil {
			return fmt.Errorf("cluster: route tls: %w", err)
		}
		// A route is both server and client: the dialing side verifies
		// the peer with the same CA (as nats-server's own config does).
		rc.RootCAs = rc.ClientCAs
		o.Cluster.TLSConfig, o.Cluster.TLSTimeout = rc, 2
	}
	return nil
}

// routeUser is the user and password routes authenticate with.
func (s Security) routeUser() (string, string) {
	if s.User != "" {
		return s.User, s.Password
	}
	if s.Token != "" {
		return "realm", s.Token
	}
	return "", ""
}

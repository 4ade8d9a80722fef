package backends

import (
	"context"
	"errors"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pb "github.com/realmrt/realm/backends/proto"
)

// ProtocolVersion is the version of the backend plugin protocol: the
// go-plugin handshake's ProtocolVersion and Info.ProtocolVersion. Bump
// it on any incompatible change to backends/proto and list it here.
//
// Versions:
//
//	1: initial (realm.backend.v1: Ping, Info, LoadModel, UnloadModel,
//	   OpenSession, Decode, Truncate, CloseSession, TensorOp)
const ProtocolVersion = 1

// PluginName is the name under which plugins serve their Backend in the
// go-plugin plugin set.
const PluginName = "backend"

// MaxMessageBytes bounds a gRPC message in either direction on both
// sides (the go-plugin default on the host is 2 GiB, gRPC's default on
// the plugin 4 MiB, too small for host→plugin tensor op inputs).
const MaxMessageBytes = 64 << 20

// Environment variables the host sets for a plugin process.
const (
	// EnvThreads is the number of compute threads the plugin should use
	// (0 or unset: one per CPU).
	EnvThreads = "REALM_THREADS"
	// EnvHostPID is the host's process id; the plugin exits when its
	// parent is no longer that process.
	EnvHostPID = "REALM_HOST_PID"
)

// Handshake is the go-plugin handshake of backend plugins. The magic
// cookie only keeps a user from running a plugin binary by hand by
// mistake; it is not a security measure.
func Handshake() plugin.HandshakeConfig {
	return plugin.HandshakeConfig{
		ProtocolVersion:  ProtocolVersion,
		MagicCookieKey:   "REALM_BACKEND_PLUGIN",
		MagicCookieValue: "6f1c3b0e-realm-backend-9d2a7c54",
	}
}

// PluginMap returns the go-plugin plugin set with impl served under
// PluginName (impl is nil on the host side).
func PluginMap(impl Backend) plugin.PluginSet {
	return plugin.PluginSet{PluginName: &BackendPlugin{Impl: impl}}
}

// BackendPlugin adapts a Backend to go-plugin's GRPCPlugin. On the
// plugin side Impl is served; on the host side GRPCClient returns a
// *GRPCClient.
type BackendPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	// Impl is the served backend (plugin side only).
	Impl Backend
}

var _ plugin.GRPCPlugin = (*BackendPlugin)(nil)

// GRPCServer registers the backend service on s.
func (p *BackendPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	if p.Impl == nil {
		return errors.New("backends: BackendPlugin.Impl is nil")
	}
	pb.RegisterBackendServer(s, NewGRPCServer(p.Impl))
	return nil
}

// GRPCClient returns the host-side Backend for conn, a *GRPCClient.
func (p *BackendPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	return NewGRPCClient(conn), nil
}

// NewGRPCServerWithLimits is the ServeConfig.GRPCServer of backend plugins: a
// gRPC server with the message limits raised to MaxMessageBytes.
func NewGRPCServerWithLimits(opts []grpc.ServerOption) *grpc.Server {
	opts = append(opts, grpc.MaxRecvMsgSize(MaxMessageBytes), grpc.MaxSendMsgSize(MaxMessageBytes))
	return grpc.NewServer(opts...)
}

// DialOptions are the ClientConfig.GRPCDialOptions of the host: they
// bound messages to MaxMessageBytes in both directions and turn off the
// channel's idle timeout, so that a connection leaving the Ready state
// always means the plugin went away (the supervisor watches for it).
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(MaxMessageBytes),
			grpc.MaxCallSendMsgSize(MaxMessageBytes),
		),
		grpc.WithIdleTimeout(0),
	}
}

// ServeConfig returns the go-plugin ServeConfig that serves impl as a
// backend plugin (used by backends/sdk; tests use it with a Test config).
func ServeConfig(impl Backend) *plugin.ServeConfig {
	return &plugin.ServeConfig{
		HandshakeConfig: Handshake(),
		Plugins:         PluginMap(impl),
		GRPCServer:      NewGRPCServerWithLimits,
	}
}

package backends

import (
	"context"
	"fmt"

	"google.golang.org/grpc"

	pb "github.com/realmrt/realm/backends/proto"
)

// GRPCClient is the host side of the transport: a Backend whose methods
// are calls to a plugin's realm.backend.v1.Backend service. ctx travels
// with each call (its deadline and cancellation reach the plugin's
// handler); errors come back through ErrorFromStatus, so errors.Is works
// with the sentinels of this package.
type GRPCClient struct {
	client pb.BackendClient
}

var _ Backend = (*GRPCClient)(nil)

// NewGRPCClient returns the Backend served on conn.
func NewGRPCClient(conn grpc.ClientConnInterface) *GRPCClient {
	return &GRPCClient{client: pb.NewBackendClient(conn)}
}

// Ping checks that the plugin answers.
func (c *GRPCClient) Ping(ctx context.Context) error {
	_, err := c.client.Ping(ctx, &pb.PingRequest{})
	return c.err(ctx, "ping", err)
}

// Info implements Backend.
func (c *GRPCClient) Info(ctx context.Context) (*Info, error) {
	resp, err := c.client.Info(ctx, &pb.InfoRequest{})
	if err != nil {
		return nil, c.err(ctx, "info", err)
	}
	return infoFromPB(resp), nil
}

// InfoPID is Info plus the plugin's process id as the plugin reports it.
func (c *GRPCClient) InfoPID(ctx context.Context) (*Info, int, error) {
	resp, err := c.client.Info(ctx, &pb.InfoRequest{})
	if err != nil {
		return nil, 0, c.err(ctx, "info", err)
	}
	return infoFromPB(resp), int(resp.GetPid()), nil
}

// LoadModel implements Backend.
func (c *GRPCClient) LoadModel(ctx context.Context, req LoadRequest) (*ModelInfo, error) {
	resp, err := c.client.LoadModel(ctx, &pb.LoadModelRequest{Path: req.Path, KvBudget: req.KVBudget})
	if err != nil {
		return nil, c.err(ctx, "load model", err)
	}
	return modelInfoFromPB(resp.GetModel())
}

// UnloadModel implements Backend.
func (c *GRPCClient) UnloadModel(ctx context.Context, id ModelID) error {
	_, err := c.client.UnloadModel(ctx, &pb.UnloadModelRequest{ModelId: uint64(id)})
	return c.err(ctx, "unload model", err)
}

// OpenSession implements Backend.
func (c *GRPCClient) OpenSession(ctx context.Context, id ModelID, nCtx int) (SessionID, error) {
	resp, err := c.client.OpenSession(ctx, &pb.OpenSessionRequest{ModelId: uint64(id), NCtx: int64(nCtx)})
	if err != nil {
		return 0, c.err(ctx, "open session", err)
	}
	return SessionID(resp.GetSessionId()), nil
}

// Decode implements Backend.
func (c *GRPCClient) Decode(ctx context.Context, req DecodeRequest) (*DecodeResult, error) {
	want, err := wantToPB(req.Want)
	if err != nil {
		return nil, err
	}
	resp, err := c.client.Decode(ctx, &pb.DecodeRequest{
		SessionId: uint64(req.Session),
		Tokens:    req.Tokens,
		Want:      want,
		Sample:    sampleToPB(req.Sample),
	})
	if err != nil {
		return nil, c.err(ctx, "decode", err)
	}
	nPast, err := toInt(resp.GetNPast())
	if err != nil {
		return nil, err
	}
	return &DecodeResult{Logits: resp.GetLogits(), Token: resp.GetToken(), NPast: nPast}, nil
}

// Truncate implements Backend.
func (c *GRPCClient) Truncate(ctx context.Context, id SessionID, n int) error {
	_, err := c.client.Truncate(ctx, &pb.TruncateRequest{SessionId: uint64(id), N: int64(n)})
	return c.err(ctx, "truncate", err)
}

// CloseSession implements Backend.
func (c *GRPCClient) CloseSession(ctx context.Context, id SessionID) error {
	_, err := c.client.CloseSession(ctx, &pb.CloseSessionRequest{SessionId: uint64(id)})
	return c.err(ctx, "close session", err)
}

// TensorOp implements Backend.
func (c *GRPCClient) TensorOp(ctx context.Context, req TensorOpRequest) (*TensorOpResult, error) {
	resp, err := c.client.TensorOp(ctx, tensorOpToPB(&req))
	if err != nil {
		return nil, c.err(ctx, "tensor op", err)
	}
	shape, err := intsFromPB(resp.GetShape())
	if err != nil {
		return nil, err
	}
	return &TensorOpResult{Shape: shape, Data: resp.GetData()}, nil
}

// Embed implements Backend.
func (c *GRPCClient) Embed(ctx context.Context, req EmbedRequest) (*EmbedResult, error) {
	in := make([]*pb.Tokens, len(req.Inputs))
	for i, t := range req.Inputs {
		in[i] = &pb.Tokens{Ids: t}
	}
	resp, err := c.client.Embed(ctx, &pb.EmbedRequest{ModelId: uint64(req.Model), Inputs: in, Normalize: req.Normalize})
	if err != nil {
		return nil, c.err(ctx, "embed", err)
	}
	return embedFromPB(resp, len(req.Inputs))
}

// err converts a call's error. When the caller's own ctx ended, the
// context error is what the caller sees (wrapped with the operation), not
// a transport error.
func (c *GRPCClient) err(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("plugin %s: %w", op, cerr)
	}
	return ErrorFromStatus(err)
}

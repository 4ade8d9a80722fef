package backends

import (
	"context"
	"fmt"
	"os"

	pb "github.com/realmrt/realm/backends/proto"
)

// GRPCServer is the plugin side of the transport: it serves a Backend
// implementation as the realm.backend.v1.Backend gRPC service. Every
// error leaves through StatusFromError, so sentinels survive the wire.
type GRPCServer struct {
	pb.UnimplementedBackendServer
	impl Backend
	pid  int
}

// NewGRPCServer returns the gRPC service of impl.
func NewGRPCServer(impl Backend) *GRPCServer {
	return &GRPCServer{impl: impl, pid: os.Getpid()}
}

// Ping answers as long as the server goroutines are alive.
func (s *GRPCServer) Ping(ctx context.Context, _ *pb.PingRequest) (*pb.PingResponse, error) {
	if err := ctx.Err(); err != nil {
		return nil, StatusFromError(err)
	}
	return &pb.PingResponse{}, nil
}

// Info implements pb.BackendServer.
func (s *GRPCServer) Info(ctx context.Context, _ *pb.InfoRequest) (*pb.InfoResponse, error) {
	info, err := s.impl.Info(ctx)
	if err != nil {
		return nil, StatusFromError(err)
	}
	return infoToPB(info, s.pid), nil
}

// LoadModel implements pb.BackendServer.
func (s *GRPCServer) LoadModel(ctx context.Context, req *pb.LoadModelRequest) (*pb.LoadModelResponse, error) {
	mi, err := s.impl.LoadModel(ctx, LoadRequest{Path: req.GetPath(), KVBudget: req.GetKvBudget()})
	if err != nil {
		return nil, StatusFromError(err)
	}
	return &pb.LoadModelResponse{Model: modelInfoToPB(mi)}, nil
}

// UnloadModel implements pb.BackendServer.
func (s *GRPCServer) UnloadModel(ctx context.Context, req *pb.UnloadModelRequest) (*pb.UnloadModelResponse, error) {
	if err := s.impl.UnloadModel(ctx, ModelID(req.GetModelId())); err != nil {
		return nil, StatusFromError(err)
	}
	return &pb.UnloadModelResponse{}, nil
}

// OpenSession implements pb.BackendServer.
func (s *GRPCServer) OpenSession(ctx context.Context, req *pb.OpenSessionRequest) (*pb.OpenSessionResponse, error) {
	nCtx, err := toInt(req.GetNCtx())
	if err != nil {
		return nil, StatusFromError(err)
	}
	id, err := s.impl.OpenSession(ctx, ModelID(req.GetModelId()), nCtx)
	if err != nil {
		return nil, StatusFromError(err)
	}
	return &pb.OpenSessionResponse{SessionId: uint64(id)}, nil
}

// Decode implements pb.BackendServer.
func (s *GRPCServer) Decode(ctx context.Context, req *pb.DecodeRequest) (*pb.DecodeResponse, error) {
	want, err := wantFromPB(req.GetWant())
	if err != nil {
		return nil, StatusFromError(err)
	}
	res, err := s.impl.Decode(ctx, DecodeRequest{
		Session: SessionID(req.GetSessionId()),
		Tokens:  req.GetTokens(),
		Want:    want,
		Sample:  sampleFromPB(req.GetSample()),
	})
	if err != nil {
		return nil, StatusFromError(err)
	}
	return &pb.DecodeResponse{Logits: res.Logits, Token: res.Token, NPast: int64(res.NPast)}, nil
}

// Truncate implements pb.BackendServer.
func (s *GRPCServer) Truncate(ctx context.Context, req *pb.TruncateRequest) (*pb.TruncateResponse, error) {
	n, err := toInt(req.GetN())
	if err != nil {
		return nil, StatusFromError(err)
	}
	if err := s.impl.Truncate(ctx, SessionID(req.GetSessionId()), n); err != nil {
		return nil, StatusFromError(err)
	}
	return &pb.TruncateResponse{}, nil
}

// CloseSession implements pb.BackendServer.
func (s *GRPCServer) CloseSession(ctx context.Context, req *pb.CloseSessionRequest) (*pb.CloseSessionResponse, error) {
	if err := s.impl.CloseSession(ctx, SessionID(req.GetSessionId())); err != nil {
		return nil, StatusFromError(err)
	}
	return &pb.CloseSessionResponse{}, nil
}

// TensorOp implements pb.BackendServer.
func (s *GRPCServer) TensorOp(ctx context.Context, req *pb.TensorOpRequest) (*pb.TensorOpResponse, error) {
	r, err := tensorOpFromPB(req)
	if err != nil {
		return nil, StatusFromError(err)
	}
	res, err := s.impl.TensorOp(ctx, r)
	if err != nil {
		return nil, StatusFromError(err)
	}
	return &pb.TensorOpResponse{Shape: intsToPB(res.Shape), Data: res.Data}, nil
}

// Embed implements pb.BackendServer.
func (s *GRPCServer) Embed(ctx context.Context, req *pb.EmbedRequest) (*pb.EmbedResponse, error) {
	r := EmbedRequest{Model: ModelID(req.GetModelId()), Normalize: req.GetNormalize(),
		Inputs: make([][]int32, len(req.GetInputs()))}
	for i, t := range req.GetInputs() {
		r.Inputs[i] = t.GetIds()
	}
	res, err := s.impl.Embed(ctx, r)
	if err != nil {
		return nil, StatusFromError(err)
	}
	out := &pb.EmbedResponse{NEmbd: int64(res.NEmbd), Data: make([]float32, 0, res.NEmbd*len(res.Embeddings))}
	for _, e := range res.Embeddings {
		if len(e) != res.NEmbd {
			return nil, StatusFromError(fmt.Errorf("%w: embedding of %d elements, want %d", ErrInvalidArgument, len(e), res.NEmbd))
		}
		out.Data = append(out.Data, e...)
	}
	return out, nil
}

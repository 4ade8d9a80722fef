package backends

import (
	"fmt"
	"math"

	"github.com/realmrt/realm/gguf"

	pb "github.com/realmrt/realm/backends/proto"
)

// This file converts between the Go types of backend.go and the wire
// messages of backends/proto. Integers that are int in Go travel as
// int64 (int32 where the proto says so) and are range-checked on the
// way back so a hostile peer cannot make the other side panic.

func infoToPB(in *Info, pid int) *pb.InfoResponse {
	out := &pb.InfoResponse{
		Name:            in.Name,
		Version:         in.Version,
		ProtocolVersion: int32(in.ProtocolVersion),
		Features:        in.Features,
		Ops:             in.Ops,
		Threads:         int32(in.Threads),
		Pid:             int32(pid),
	}
	for _, t := range in.Types {
		out.Types = append(out.Types, uint32(t))
	}
	for _, d := range in.Devices {
		out.Devices = append(out.Devices, &pb.Device{Name: d.Name, Kind: d.Kind, Driver: d.Driver, MemoryBytes: d.MemoryBytes})
	}
	for _, k := range in.KVPools {
		out.KvPools = append(out.KvPools, &pb.KVPool{ModelId: uint64(k.Model), BudgetBytes: k.BudgetBytes,
			AllocatedBytes: k.AllocatedBytes, UsedBytes: k.UsedBytes, CachedBytes: k.CachedBytes,
			BlockTokens: int64(k.BlockTokens), Hits: k.Hits, Misses: k.Misses, Evictions: k.Evictions})
	}
	for _, id := range in.Preparing {
		out.Preparing = append(out.Preparing, uint64(id))
	}
	return out
}

func infoFromPB(in *pb.InfoResponse) *Info {
	out := &Info{
		Name:            in.GetName(),
		Version:         in.GetVersion(),
		ProtocolVersion: int(in.GetProtocolVersion()),
		Features:        in.GetFeatures(),
		Ops:             in.GetOps(),
		Threads:         int(in.GetThreads()),
	}
	for _, t := range in.GetTypes() {
		out.Types = append(out.Types, gguf.Type(t))
	}
	for _, d := range in.GetDevices() {
		out.Devices = append(out.Devices, Device{Name: d.GetName(), Kind: d.GetKind(), Driver: d.GetDriver(), MemoryBytes: d.GetMemoryBytes()})
	}
	for _, k := range in.GetKvPools() {
		bt, err := toInt(k.GetBlockTokens())
		if err != nil || bt < 0 {
			continue // a hostile value: drop the entry, keep the rest
		}
		out.KVPools = append(out.KVPools, KVPoolStats{Model: ModelID(k.GetModelId()), BudgetBytes: k.GetBudgetBytes(),
			AllocatedBytes: k.GetAllocatedBytes(), UsedBytes: k.GetUsedBytes(), CachedBytes: k.GetCachedBytes(),
			BlockTokens: bt, Hits: k.GetHits(), Misses: k.GetMisses(), Evictions: k.GetEvictions()})
	}
	for _, id := range in.GetPreparing() {
		out.Preparing = append(out.Preparing, ModelID(id))
	}
	return out
}

func modelInfoToPB(in *ModelInfo) *pb.ModelInfo {
	out := &pb.ModelInfo{
		Id:            uint64(in.ID),
		Arch:          in.Arch,
		NCtxTrain:     int64(in.NCtxTrain),
		NVocab:        int64(in.NVocab),
		NEmbd:         int64(in.NEmbd),
		NLayer:        int64(in.NLayer),
		NHead:         int64(in.NHead),
		NHeadKv:       int64(in.NHeadKV),
		NFf:           int64(in.NFF),
		WeightBytes:   in.WeightBytes,
		ExtraBytes:    in.ExtraBytes,
		Pooling:       in.Pooling,
		KvBudgetBytes: in.KVBudgetBytes,
	}
	if len(in.TensorTypes) > 0 {
		out.TensorTypes = make(map[string]int64, len(in.TensorTypes))
		for k, v := range in.TensorTypes {
			out.TensorTypes[k] = int64(v)
		}
	}
	if len(in.TensorShapes) > 0 {
		out.TensorShapes = make(map[string]*pb.Shape, len(in.TensorShapes))
		for k, v := range in.TensorShapes {
			out.TensorShapes[k] = &pb.Shape{Dims: intsToPB(v)}
		}
	}
	return out
}

func modelInfoFromPB(in *pb.ModelInfo) (*ModelInfo, error) {
	if in == nil {
		return nil, fmt.Errorf("%w: plugin returned no model info", ErrInvalidArgument)
	}
	var err error
	out := &ModelInfo{ID: ModelID(in.GetId()), Arch: in.GetArch(), WeightBytes: in.GetWeightBytes(), ExtraBytes: in.GetExtraBytes(),
		Pooling:       in.GetPooling(),
		KVBudgetBytes: in.GetKvBudgetBytes()}
	for _, f := range []struct {
		dst *int
		v   int64
	}{
		{&out.NCtxTrain, in.GetNCtxTrain()}, {&out.NVocab, in.GetNVocab()}, {&out.NEmbd, in.GetNEmbd()},
		{&out.NLayer, in.GetNLayer()}, {&out.NHead, in.GetNHead()}, {&out.NHeadKV, in.GetNHeadKv()}, {&out.NFF, in.GetNFf()},
	} {
		if *f.dst, err = toInt(f.v); err != nil {
			return nil, err
		}
	}
	if len(in.GetTensorTypes()) > 0 {
		out.TensorTypes = make(map[string]int, len(in.GetTensorTypes()))
		for k, v := range in.GetTensorTypes() {
			if out.TensorTypes[k], err = toInt(v); err != nil {
				return nil, err
			}
		}
	}
	if len(in.GetTensorShapes()) > 0 {
		out.TensorShapes = make(map[string][]int, len(in.GetTensorShapes()))
		for k, v := range in.GetTensorShapes() {
			if out.TensorShapes[k], err = intsFromPB(v.GetDims()); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

func sampleToPB(p SampleParams) *pb.SampleParams {
	return &pb.SampleParams{
		Temperature:   p.Temperature,
		TopK:          clampInt32(p.TopK),
		TopP:          p.TopP,
		MinP:          p.MinP,
		RepeatPenalty: p.RepeatPenalty,
		RepeatLastN:   clampInt32(p.RepeatLastN),
		Seed:          p.Seed,
	}
}

func sampleFromPB(p *pb.SampleParams) SampleParams {
	return SampleParams{
		Temperature:   p.GetTemperature(),
		TopK:          int(p.GetTopK()),
		TopP:          p.GetTopP(),
		MinP:          p.GetMinP(),
		RepeatPenalty: p.GetRepeatPenalty(),
		RepeatLastN:   int(p.GetRepeatLastN()),
		Seed:          p.GetSeed(),
	}
}

func wantToPB(w Want) (pb.Want, error) {
	switch w {
	case WantLogits:
		return pb.Want_WANT_LOGITS, nil
	case WantSample:
		return pb.Want_WANT_SAMPLE, nil
	case WantNone:
		return pb.Want_WANT_NONE, nil
	}
	return 0, fmt.Errorf("%w: unknown decode output %d", ErrInvalidArgument, w)
}

func wantFromPB(w pb.Want) (Want, error) {
	switch w {
	case pb.Want_WANT_LOGITS:
		return WantLogits, nil
	case pb.Want_WANT_SAMPLE:
		return WantSample, nil
	case pb.Want_WANT_NONE:
		return WantNone, nil
	}
	return 0, fmt.Errorf("%w: unknown decode output %d", ErrInvalidArgument, w)
}

func tensorOpToPB(req *TensorOpRequest) *pb.TensorOpRequest {
	out := &pb.TensorOpRequest{
		Op: req.Op,
		Params: &pb.OpParams{
			Eps:      req.Params.Eps,
			Ids:      req.Params.IDs,
			Pos:      req.Params.Pos,
			NDims:    int64(req.Params.NDims),
			Base:     req.Params.Base,
			NHead:    int64(req.Params.NHead),
			NHeadKv:  int64(req.Params.NHeadKV),
			HeadDim:  int64(req.Params.HeadDim),
			StartPos: int64(req.Params.StartPos),
			Scale:    req.Params.Scale,
		},
	}
	for _, in := range req.Inputs {
		out.Inputs = append(out.Inputs, &pb.TensorRef{
			ModelId: uint64(in.Model), Name: in.Name, Type: uint32(in.Type), Shape: intsToPB(in.Shape), Data: in.Data,
		})
	}
	return out
}

func tensorOpFromPB(req *pb.TensorOpRequest) (TensorOpRequest, error) {
	p := req.GetParams()
	out := TensorOpRequest{Op: req.GetOp(), Params: OpParams{
		Eps: p.GetEps(), IDs: p.GetIds(), Pos: p.GetPos(), Base: p.GetBase(), Scale: p.GetScale(),
	}}
	var err error
	for _, f := range []struct {
		dst *int
		v   int64
	}{
		{&out.Params.NDims, p.GetNDims()}, {&out.Params.NHead, p.GetNHead()}, {&out.Params.NHeadKV, p.GetNHeadKv()},
		{&out.Params.HeadDim, p.GetHeadDim()}, {&out.Params.StartPos, p.GetStartPos()},
	} {
		if *f.dst, err = toInt(f.v); err != nil {
			return TensorOpRequest{}, err
		}
	}
	for _, in := range req.GetInputs() {
		shape, err := intsFromPB(in.GetShape())
		if err != nil {
			return TensorOpRequest{}, err
		}
		out.Inputs = append(out.Inputs, TensorRef{
			Model: ModelID(in.GetModelId()), Name: in.GetName(), Type: gguf.Type(in.GetType()), Shape: shape, Data: in.GetData(),
		})
	}
	return out, nil
}

func intsToPB(v []int) []int64 {
	if v == nil {
		return nil
	}
	out := make([]int64, len(v))
	for i, x := range v {
		out[i] = int64(x)
	}
	return out
}

func intsFromPB(v []int64) ([]int, error) {
	if v == nil {
		return nil, nil
	}
	out := make([]int, len(v))
	for i, x := range v {
		n, err := toInt(x)
		if err != nil {
			return nil, err
		}
		out[i] = n
	}
	return out, nil
}

// toInt converts a wire integer to int, rejecting values int cannot hold.
func toInt(v int64) (int, error) {
	if v > math.MaxInt || v < math.MinInt {
		return 0, fmt.Errorf("%w: integer %d out of range", ErrInvalidArgument, v)
	}
	return int(v), nil
}

// clampInt32 converts an int to int32, saturating at the int32 range.
func clampInt32(v int) int32 {
	switch {
	case v > math.MaxInt32:
		return math.MaxInt32
	case v < math.MinInt32:
		return math.MinInt32
	}
	return int32(v)
}

// embedFromPB splits an EmbedResponse into n vectors, checking that the
// plugin returned exactly n·n_embd floats.
func embedFromPB(resp *pb.EmbedResponse, n int) (*EmbedResult, error) {
	d, err := toInt(resp.GetNEmbd())
	if err != nil {
		return nil, err
	}
	data := resp.GetData()
	if d <= 0 || len(data) != n*d {
		return nil, fmt.Errorf("%w: plugin returned %d floats for %d embeddings of %d", ErrInvalidArgument, len(data), n, d)
	}
	out := &EmbedResult{NEmbd: d, Embeddings: make([][]float32, n)}
	for i := range out.Embeddings {
		out.Embeddings[i] = data[i*d : (i+1)*d : (i+1)*d]
	}
	return out, nil
}

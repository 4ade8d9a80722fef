package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/realmrt/realm/backends"
)

// EmbedCases are the embedding models of testdata/arch (llama.cpp's
// pooled embeddings in NAME.llamacpp.json).
func EmbedCases() []string { return []string{"bert", "bert-q8_0"} }

// Bounds of the embedding cases: the pooled vectors within the
// architecture cases' NMSE of llama.cpp's (F32: 1e-5, quantized: 1e-3),
// and a cosine of at least embedMinCosine.
const embedMinCosine = 0.9999

// embedRun is testdata/arch/NAME.llamacpp.json of an embedding model.
type embedRun struct {
	Inputs []struct {
		Text      string    `json:"text"`
		IDs       []int32   `json:"ids"`
		Embedding []float32 `json:"embedding"`
	} `json:"inputs"`
}

// EmbedResult is the measured outcome of an embedding case.
type EmbedResult struct {
	MaxNMSE   float64
	MinCosine float64
	Inputs    int
}

// RunEmbedCase loads testdata/arch/NAME.gguf on b, embeds llama.cpp's
// inputs in one batched Embed call and compares each pooled vector. A
// backend that cannot embed (ErrUnsupported) returns that error.
func RunEmbedCase(ctx context.Context, b backends.Backend, dir, name string) (*EmbedResult, error) {
	raw, err := os.ReadFile(filepath.Join(dir, name+".llamacpp.json"))
	if err != nil {
		return nil, err
	}
	var run embedRun
	if err := json.Unmarshal(raw, &run); err != nil {
		return nil, fmt.Errorf("%s.llamacpp.json: %w", name, err)
	}
	if len(run.Inputs) == 0 {
		return nil, fmt.Errorf("%s.llamacpp.json has no inputs", name)
	}
	mi, err := b.LoadModel(ctx, backends.LoadRequest{Path: filepath.Join(dir, name+".gguf")})
	if err != nil {
		return nil, err
	}
	defer b.UnloadModel(context.WithoutCancel(ctx), mi.ID)
	req := backends.EmbedRequest{Model: mi.ID}
	for _, in := range run.Inputs {
		req.Inputs = append(req.Inputs, in.IDs)
	}
	res, err := b.Embed(ctx, req)
	if err != nil {
		return nil, err
	}
	if len(res.Embeddings) != len(run.Inputs) {
		return nil, fmt.Errorf("%d embeddings for %d inputs", len(res.Embeddings), len(run.Inputs))
	}
	out := &EmbedResult{MinCosine: 1, Inputs: len(run.Inputs)}
	for i, in := range run.Inputs {
		got := res.Embeddings[i]
		if len(got) != len(in.Embedding) {
			return nil, fmt.Errorf("input %d: %d elements, llama.cpp %d", i, len(got), len(in.Embedding))
		}
		var num, den, ab, aa float64
		for j, w := range in.Embedding {
			d := float64(got[j]) - float64(w)
			num += d * d
			den += float64(w) * float64(w)
			ab += float64(got[j]) * float64(w)
			aa += float64(got[j]) * float64(got[j])
		}
		out.MaxNMSE = max(out.MaxNMSE, num/den)
		out.MinCosine = min(out.MinCosine, ab/math.Sqrt(aa*den))
	}
	return out, nil
}

// runEmbed is the result of one embedding case.
func runEmbed(ctx context.Context, b backends.Backend, dir, name string) Result {
	limit := archLimitOf(name)
	res := Result{Kind: "model", Case: "embed/" + name, Types: name + ".gguf", Shape: "pooled embeddings", NMSE: -1, Limit: limit}
	if dir == "" {
		res.Status, res.Detail = Skip, "no testdata/arch directory"
		return res
	}
	start := time.Now()
	er, err := RunEmbedCase(ctx, b, dir, name)
	res.Millis = float64(time.Since(start).Microseconds()) / 1000
	switch {
	case errors.Is(err, backends.ErrUnsupported):
		res.Status, res.Detail = Skip, err.Error()
		return res
	case err != nil:
		res.Status, res.Detail = Fail, err.Error()
		return res
	}
	res.NMSE = er.MaxNMSE
	res.Detail = fmt.Sprintf("%d inputs in one batch, min cosine %.7f", er.Inputs, er.MinCosine)
	if er.MaxNMSE > limit || er.MinCosine < embedMinCosine {
		res.Status = Fail
		res.Detail = fmt.Sprintf("max NMSE %.3g (limit %.3g), min cosine %.7f (limit %g)", er.MaxNMSE, limit, er.MinCosine, embedMinCosine)
		return res
	}
	res.Status = Pass
	return res
}

package conformance

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"time"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/internal/refdata"
)

// ModelCase compares a backend's logits on a real GGUF file with the
// rows llama.cpp computed for the same prompt (reference/outputs).
type ModelCase struct {
	Name   string
	File   string  // under reference/models
	Output string  // reference/outputs/<Output>.{txt,logits.f32}
	Limit  float64 // max NMSE of any step's logits
	// ExactIDs demands that the greedy ids over every step equal
	// llama.cpp's; otherwise they must agree on at least MinPrefix.
	ExactIDs  bool
	MinPrefix int
}

// ModelCases lists the model cases. Bounds are per type: the F32 model
// must match llama.cpp to f32 rounding; the quantized files differ by
// activation quantization (llama.cpp quantizes activations to Q8_0
// before Q8_0/Q4_0 dot products), which the bounds allow.
func ModelCases() []ModelCase {
	return []ModelCase{
		{Name: "model/stories260K/f32", File: "stories260K.gguf", Output: "stories260K.once-upon", Limit: 5e-6, ExactIDs: true},
		{Name: "model/stories260K/q8_0", File: "stories260K-Q8_0.gguf", Output: "stories260K-Q8_0.once-upon", Limit: 1e-3, MinPrefix: 16},
		{Name: "model/stories260K/q4_0", File: "stories260K-Q4_0.gguf", Output: "stories260K-Q4_0.once-upon", Limit: 5e-3, MinPrefix: 8},
		{Name: "model/llama-2-tiny-random/f16", File: "llama-2-tiny-random.gguf", Output: "llama-2-tiny-random.hello", Limit: 1e-3, MinPrefix: 1},
	}
}

// ModelResult is the measured outcome of a model case.
type ModelResult struct {
	MaxNMSE  float64
	MeanNMSE float64
	Steps    int
	Prefix   int // leading steps whose argmax equals llama.cpp's id
}

// RunModelCase decodes the case's prompt and llama.cpp's generated ids one
// token at a time on b and compares each step's logits.
func RunModelCase(ctx context.Context, b backends.Backend, refDir string, mc ModelCase) (*ModelResult, error) {
	out, err := refdata.LoadOutputFrom(refDir, mc.Output)
	if err != nil {
		return nil, err
	}
	rows, err := refdata.LoadLogitsFrom(refDir, mc.Output, out.NVocab)
	if err != nil {
		return nil, err
	}
	mi, err := b.LoadModel(ctx, backends.LoadRequest{Path: filepath.Join(refDir, "models", mc.File)})
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", mc.File, err)
	}
	defer b.UnloadModel(context.WithoutCancel(ctx), mi.ID)
	if mi.NVocab != out.NVocab {
		return nil, fmt.Errorf("model has %d vocab entries, reference %d", mi.NVocab, out.NVocab)
	}
	sid, err := b.OpenSession(ctx, mi.ID, 512)
	if err != nil {
		return nil, fmt.Errorf("open session: %w", err)
	}
	defer b.CloseSession(context.WithoutCancel(ctx), sid)

	res := &ModelResult{}
	prefixOpen := true
	feed := out.PromptIDs
	for step := range rows {
		if step > 0 {
			feed = []int32{out.GenIDs[step-1]}
		}
		dr, err := b.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: feed, Want: backends.WantLogits})
		if err != nil {
			return nil, fmt.Errorf("step %d: decode: %w", step, err)
		}
		if len(dr.Logits) != out.NVocab {
			return nil, fmt.Errorf("step %d: %d logits, want %d", step, len(dr.Logits), out.NVocab)
		}
		for i, v := range dr.Logits {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, fmt.Errorf("step %d: logit %d is %g", step, i, v)
			}
		}
		nmse := refdata.NMSE(dr.Logits, rows[step])
		res.MaxNMSE = math.Max(res.MaxNMSE, nmse)
		res.MeanNMSE += nmse
		res.Steps++
		if prefixOpen && argmax(dr.Logits) == out.GenIDs[step] {
			res.Prefix++
		} else {
			prefixOpen = false
		}
	}
	res.MeanNMSE /= float64(res.Steps)
	return res, nil
}

func argmax(x []float32) int32 {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return int32(best)
}

// runModel turns a model case into a Result.
func runModel(ctx context.Context, b backends.Backend, refDir string, mc ModelCase) Result {
	res := Result{Kind: "model", Case: mc.Name, Types: mc.File, Shape: "greedy ids + logits/step", NMSE: -1, Limit: mc.Limit}
	if refDir == "" {
		res.Status, res.Detail = Skip, "no reference directory"
		return res
	}
	start := time.Now()
	mr, err := RunModelCase(ctx, b, refDir, mc)
	res.Millis = float64(time.Since(start).Microseconds()) / 1000
	if err != nil {
		res.Status, res.Detail = Fail, err.Error()
		return res
	}
	res.NMSE = mr.MaxNMSE
	res.Detail = fmt.Sprintf("mean NMSE %.2e, greedy prefix %d/%d", mr.MeanNMSE, mr.Prefix, mr.Steps)
	switch {
	case mr.MaxNMSE > mc.Limit:
		res.Status = Fail
		res.Detail = fmt.Sprintf("max NMSE %.3g exceeds %.3g; %s", mr.MaxNMSE, mc.Limit, res.Detail)
	case mc.ExactIDs && mr.Prefix != mr.Steps:
		res.Status = Fail
		res.Detail = "greedy ids differ from llama.cpp's; " + res.Detail
	case mr.Prefix < mc.MinPrefix:
		res.Status = Fail
		res.Detail = fmt.Sprintf("greedy prefix %d < %d; %s", mr.Prefix, mc.MinPrefix, res.Detail)
	default:
		res.Status = Pass
	}
	return res
}

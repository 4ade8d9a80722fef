package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
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

// ArchCases are the synthetic models of testdata/arch, one per
// architecture (and variant) in F32, Q8_0 ("NAME-q8_0") and Q4_0
// ("NAME-q4_0", the nearest type to Q4_K_M that a 64-wide model admits),
// each with llama.cpp's greedy run.
func ArchCases() []string {
	var out []string
	for _, a := range []string{"llama", "llama3", "mixtral", "qwen2", "qwen2yarn", "qwen3", "qwen3moe", "gemma2", "gemma3", "phi3"} {
		out = append(out, a, a+"-q8_0", a+"-q4_0", a+"-q4_k_m")
	}
	return out
}

// archRun is testdata/arch/NAME.llamacpp.json.
type archRun struct {
	PromptIDs []int32     `json:"prompt_ids"`
	IDs       []int32     `json:"ids"`
	Logits    [][]float32 `json:"logits"`
}

// Bounds of the architecture cases: F32 logits within f32 rounding of
// llama.cpp's (Q8_0: within its activation quantization), and the same
// greedy id wherever llama.cpp's top-2 margin exceeds archMargin (F32
// only).
const (
	archLimit      = 1e-5
	archLimitQuant = 1e-3
	archMargin     = 0.02
)

// archLimitOf is the NMSE bound of an architecture case.
func archLimitOf(name string) float64 {
	if strings.Contains(name, "-") {
		return archLimitQuant
	}
	return archLimit
}

// RunArchCase decodes testdata/arch/NAME's prompt and llama.cpp's
// greedy ids one step at a time on b and compares every step. A backend
// that refuses the architecture (ErrUnsupported) returns that error.
func RunArchCase(ctx context.Context, b backends.Backend, dir, name string) (*ModelResult, error) {
	raw, err := os.ReadFile(filepath.Join(dir, name+".llamacpp.json"))
	if err != nil {
		return nil, err
	}
	var run archRun
	if err := json.Unmarshal(raw, &run); err != nil {
		return nil, fmt.Errorf("%s.llamacpp.json: %w", name, err)
	}
	if len(run.IDs) != len(run.Logits) || len(run.Logits) == 0 {
		return nil, fmt.Errorf("%s.llamacpp.json: %d ids for %d logit rows", name, len(run.IDs), len(run.Logits))
	}
	mi, err := b.LoadModel(ctx, backends.LoadRequest{Path: filepath.Join(dir, name+".gguf")})
	if err != nil {
		return nil, fmt.Errorf("load %s.gguf: %w", name, err)
	}
	defer b.UnloadModel(context.WithoutCancel(ctx), mi.ID)
	sid, err := b.OpenSession(ctx, mi.ID, 256)
	if err != nil {
		return nil, fmt.Errorf("open session: %w", err)
	}
	defer b.CloseSession(context.WithoutCancel(ctx), sid)
	// Quantized files are held to the NMSE bound only: their rounding
	// differs from llama.cpp's by more than the greedy-id margin (see
	// RATIONALE.md).
	quant := strings.Contains(name, "-")
	res := &ModelResult{}
	prefixOpen := true
	feed := run.PromptIDs
	for step, want := range run.Logits {
		dr, err := b.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: feed, Want: backends.WantLogits})
		if err != nil {
			return nil, fmt.Errorf("step %d: decode: %w", step, err)
		}
		if len(dr.Logits) != len(want) {
			return nil, fmt.Errorf("step %d: %d logits, want %d", step, len(dr.Logits), len(want))
		}
		nmse := refdata.NMSE(dr.Logits, want)
		if math.IsNaN(nmse) {
			return nil, fmt.Errorf("step %d: logits are not finite", step)
		}
		res.MaxNMSE = math.Max(res.MaxNMSE, nmse)
		res.MeanNMSE += nmse
		res.Steps++
		got := argmax(dr.Logits)
		if w, margin := top2(want); !quant && margin > archMargin && got != w {
			return nil, fmt.Errorf("step %d: greedy id %d, llama.cpp %d (top-2 margin %.3g)", step, got, w, margin)
		}
		if prefixOpen && got == run.IDs[step] {
			res.Prefix++
		} else {
			prefixOpen = false
		}
		feed = []int32{run.IDs[step]}
	}
	res.MeanNMSE /= float64(res.Steps)
	return res, nil
}

// top2 returns the argmax of x and its margin over the runner-up.
func top2(x []float32) (int32, float32) {
	best, second := -1, -1
	for i, v := range x {
		if best < 0 || v > x[best] {
			best, second = i, best
		} else if second < 0 || v > x[second] {
			second = i
		}
	}
	if second < 0 {
		return int32(best), float32(math.Inf(1))
	}
	return int32(best), x[best] - x[second]
}

// runArch turns an architecture case into a Result.
func runArch(ctx context.Context, b backends.Backend, dir, name string) Result {
	arch, typ, ok := strings.Cut(name, "-")
	if !ok {
		typ = "f32"
	}
	limit := archLimitOf(name)
	res := Result{Kind: "model", Case: "arch/" + arch + "/" + typ, Types: name + ".gguf", Shape: "greedy ids + logits/step", NMSE: -1, Limit: limit}
	if dir == "" {
		res.Status, res.Detail = Skip, "no testdata/arch directory"
		return res
	}
	start := time.Now()
	mr, err := RunArchCase(ctx, b, dir, name)
	res.Millis = float64(time.Since(start).Microseconds()) / 1000
	switch {
	case errors.Is(err, backends.ErrUnsupported):
		res.Status, res.Detail = Skip, err.Error()
		return res
	case err != nil:
		res.Status, res.Detail = Fail, err.Error()
		return res
	}
	res.NMSE = mr.MaxNMSE
	res.Detail = fmt.Sprintf("mean NMSE %.2e, greedy prefix %d/%d", mr.MeanNMSE, mr.Prefix, mr.Steps)
	if mr.MaxNMSE > limit {
		res.Status = Fail
		res.Detail = fmt.Sprintf("max NMSE %.3g exceeds %.3g; %s", mr.MaxNMSE, limit, res.Detail)
		return res
	}
	res.Status = Pass
	return res
}

package engine

import (
	"math"
	"slices"
)

// RoPEParams describe one rotary position embedding.
type RoPEParams struct {
	NDims   int     // rotated elements of each head (even)
	HeadDim int     // elements of each head
	Base    float32 // frequency base
	// Neox rotates pairs (i, i+NDims/2) instead of adjacent pairs
	// (2i, 2i+1) — ggml's NEOX mode used by Qwen, Gemma, Phi-3.
	Neox bool
	// FreqScale multiplies every angle (linear scaling: 1/factor); 0
	// means 1.
	FreqScale float32
	// Factors divide the base frequency of pair i (llama3 rope_freqs,
	// LongRoPE short/long factors); nil: none. NDims/2 elements.
	Factors []float32
	// AttnFactor multiplies cos and sin (0 means 1).
	AttnFactor float32
	// ExtFactor, when non-zero, mixes interpolated and extrapolated
	// angles by YaRN's ramp between CorrDims (and scales cos and sin by
	// 1+0.1·ln(1/FreqScale)), as ggml's rope_yarn.
	ExtFactor float32
	CorrDims  [2]float32
}

// yarnCorrDims returns YaRN's correction dimensions (ggml's
// ggml_rope_yarn_corr_dims, in float64).
func yarnCorrDims(nDims, nCtxOrig int, base, betaFast, betaSlow float64) [2]float32 {
	dim := func(nRot float64) float64 {
		return float64(nDims) * math.Log(float64(nCtxOrig)/(nRot*2*math.Pi)) / (2 * math.Log(base))
	}
	start := math.Floor(dim(betaFast))
	end := math.Ceil(dim(betaSlow))
	return [2]float32{float32(math.Max(0, start)), float32(math.Min(float64(nDims-1), end))}
}

// plain reports whether p is the llama rotation of the base RoPE kernel.
func (p *RoPEParams) plain() bool {
	return !p.Neox && (p.FreqScale == 0 || p.FreqScale == 1) && p.Factors == nil &&
		(p.AttnFactor == 0 || p.AttnFactor == 1) && p.ExtFactor == 0
}

// ExtKernels are the optional ops beyond Kernels that some
// architectures need. ExtOps names those the kernels implement (GOp*
// constants, including GOpAttnWindow and GOpAttnSoftCap when Attention
// honours AttentionParams.Window and SoftCap); the loader refuses a
// model whose graph needs an op that neither the base Kernels nor
// ExtOps provide, naming the op.
type ExtKernels interface {
	ExtOps() []string
	// RoPEExt rotates x ([len(pos)][nHeads][p.HeadDim]) in place.
	RoPEExt(x []float32, pos []int32, nHeads int, p *RoPEParams)
	// GELUMul computes out[i] = gelu(gate[i])·up[i] (tanh approximation).
	GELUMul(out, gate, up []float32)
	// Scale computes out[i] = x[i]·s.
	Scale(out, x []float32, s float32)
	// SoftCap computes out[i] = c·tanh(x[i]/c).
	SoftCap(out, x []float32, c float32)
	// AddRow computes out[r·n+i] = x[r·n+i] + row[i], n = len(row).
	AddRow(out, x, row []float32)
}

// GoExt is a portable implementation of the element-wise ExtKernels ops
// (float64 arithmetic, each result rounded once). CPU kernels embed it;
// these ops are a vanishing share of a forward pass. Its ExtOps does not
// include the attention capabilities, which the kernels' own Attention
// must provide.
type GoExt struct{}

// ExtOps lists the ops GoExt implements.
func (GoExt) ExtOps() []string {
	return append([]string{GOpRoPEExt, GOpGELUMul, GOpScale, GOpSoftCap, GOpAddRow}, encoderOps[:]...)
}

// RoPEExt rotates x in place (ggml rope_ext without YaRN ramp).
func (GoExt) RoPEExt(x []float32, pos []int32, nHeads int, p *RoPEParams) {
	half := p.NDims / 2
	fs := float64(p.FreqScale)
	if fs == 0 {
		fs = 1
	}
	mscale := float64(p.AttnFactor)
	if mscale == 0 {
		mscale = 1
	}
	ext := float64(p.ExtFactor)
	if ext != 0 {
		mscale *= 1 + 0.1*math.Log(1/fs)
	}
	cs := make([]float64, half)
	sn := make([]float64, half)
	for b, ps := range pos {
		for i := 0; i < half; i++ {
			theta := float64(ps) * math.Pow(float64(p.Base), -2*float64(i)/float64(p.NDims))
			if p.Factors != nil {
				theta /= float64(p.Factors[i])
			}
			if ext != 0 {
				y := (float64(i) - float64(p.CorrDims[0])) / math.Max(0.001, float64(p.CorrDims[1]-p.CorrDims[0]))
				ramp := (1 - math.Min(1, math.Max(0, y))) * ext
				theta = fs*theta*(1-ramp) + theta*ramp
			} else {
				theta *= fs
			}
			cs[i], sn[i] = math.Cos(theta)*mscale, math.Sin(theta)*mscale
		}
		for h := 0; h < nHeads; h++ {
			v := x[(b*nHeads+h)*p.HeadDim:][:p.HeadDim]
			for i := 0; i < half; i++ {
				i0, i1 := 2*i, 2*i+1
				if p.Neox {
					i0, i1 = i, i+half
				}
				x0, x1 := float64(v[i0]), float64(v[i1])
				v[i0] = float32(float64(x0*cs[i]) - float64(x1*sn[i]))
				v[i1] = float32(float64(x0*sn[i]) + float64(x1*cs[i]))
			}
		}
	}
}

// GELUMul computes gelu(gate)·up with ggml's tanh approximation.
func (GoExt) GELUMul(out, gate, up []float32) {
	up = up[:len(gate)]
	out = out[:len(gate)]
	const c = 0.7978845608028654 // sqrt(2/π)
	for i, g := range gate {
		v := float64(g)
		gl := 0.5 * v * (1 + math.Tanh(c*v*(1+0.044715*v*v)))
		out[i] = float32(gl) * up[i]
	}
}

// Scale computes x·s.
func (GoExt) Scale(out, x []float32, s float32) {
	out = out[:len(x)]
	for i, v := range x {
		out[i] = v * s
	}
}

// SoftCap computes c·tanh(x/c).
func (GoExt) SoftCap(out, x []float32, c float32) {
	out = out[:len(x)]
	for i, v := range x {
		out[i] = float32(float64(c) * math.Tanh(float64(v)/float64(c)))
	}
}

// AddRow adds row to every row of x.
func (GoExt) AddRow(out, x, row []float32) {
	n := len(row)
	if n == 0 {
		return
	}
	for off := 0; off+n <= len(x); off += n {
		o, xr := out[off:off+n], x[off:off+n]
		for i, v := range xr {
			o[i] = v + row[i]
		}
	}
}

// supportedOps returns the graph ops kernels k implement.
func supportedOps(k Kernels) map[string]bool {
	ops := make(map[string]bool)
	for _, op := range baseOps {
		ops[op] = true
	}
	if e, ok := k.(ExtKernels); ok {
		for _, op := range e.ExtOps() {
			ops[op] = true
		}
	}
	return ops
}

// SupportedOps lists the graph ops kernels k implement, sorted.
func SupportedOps(k Kernels) []string {
	m := supportedOps(k)
	ops := make([]string, 0, len(m))
	for op := range m {
		ops = append(ops, op)
	}
	slices.Sort(ops)
	return ops
}

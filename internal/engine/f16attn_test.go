package engine_test

import (
	"math"
	"testing"

	"github.com/realmrt/realm/gguf"
	"github.com/realmrt/realm/internal/backend/reference"
	"github.com/realmrt/realm/internal/engine"
	"github.com/realmrt/realm/internal/refdata"
)

// llamaCppAttention wraps kernels to mimic what llama.cpp's CPU backend
// did when it made the reference data: activations quantized before the
// weight dot products, an F16 KV cache, Q rounded to f16 for the K·Q dot
// products, and flash attention's online softmax with the V accumulator
// held in f16.
type llamaCppAttention struct {
	engine.Kernels
}

// MatMul rounds the activations the way llama.cpp does before its dot
// products: to Q8_0 for Q8_0/Q4_0 weights, to f16 for F16 weights.
func (l llamaCppAttention) MatMul(out []float32, w *engine.Weight, x []float32, batch int) {
	xq := append([]float32(nil), x...)
	switch w.Type {
	case gguf.TypeQ8_0, gguf.TypeQ4_0:
		buf := make([]byte, len(x)/32*34)
		if err := gguf.Quantize(buf, x, gguf.TypeQ8_0); err != nil {
			panic(err)
		}
		if err := gguf.Dequantize(xq, buf, gguf.TypeQ8_0); err != nil {
			panic(err)
		}
	case gguf.TypeF16:
		for i := range xq {
			xq[i] = r16(xq[i])
		}
	}
	l.Kernels.MatMul(out, w, xq, batch)
}

// r16 rounds x to the nearest f16 value.
func r16(x float32) float32 { return gguf.F16ToF32(gguf.F32ToF16(x)) }

func (llamaCppAttention) Attention(out, q, k, v []float32, p engine.AttentionParams) {
	d := p.HeadDim
	group := p.NHead / p.NHeadKV
	kvStride := p.NHeadKV * d
	acc := make([]float32, d)
	for b := 0; b < p.Batch; b++ {
		for h := 0; h < p.NHead; h++ {
			qh := q[(b*p.NHead+h)*d:][:d]
			kvh := h / group
			m := float32(math.Inf(-1))
			var sum float32
			clear(acc)
			for j := 0; j <= p.StartPos+b; j++ {
				kj := k[j*kvStride+kvh*d:][:d]
				vj := v[j*kvStride+kvh*d:][:d]
				var s float64
				for i := range qh {
					s += float64(r16(qh[i])) * float64(r16(kj[i]))
				}
				sc := float32(s) * p.Scale
				ms, vs := float32(1), float32(1)
				if sc > m {
					ms = float32(math.Exp(float64(m - sc)))
					m = sc
					for i := range acc {
						acc[i] = r16(acc[i] * ms)
					}
				} else {
					vs = float32(math.Exp(float64(sc - m)))
				}
				for i := range acc {
					acc[i] = r16(acc[i] + float32(r16(vj[i])*vs))
				}
				sum = float32(sum*ms) + vs
			}
			for i := range acc {
				out[(b*p.NHead+h)*d+i] = acc[i] / sum
			}
		}
	}
}

// TestLlamaCppNumerics shows where the remaining differences from
// llama.cpp come from: with its f16 attention and activation
// quantization mimicked, the NMSE drops well below what the exact
// engine gets (see TestReferenceLogits for those figures).
func TestLlamaCppNumerics(t *testing.T) {
	cases := []struct {
		model, output string
		maxNMSE, mean float64
	}{
		// Measured: max 1.6e-6 mean 4.3e-8.
		{"stories260K.gguf", "stories260K.once-upon", 3e-6, 1e-7},
		// Measured: max 4.6e-5 mean 1.2e-6 (exact engine: 5.4e-4 / 6.6e-5).
		{"stories260K-Q8_0.gguf", "stories260K-Q8_0.once-upon", 1e-4, 5e-6},
		// Measured: max 3.6e-4 mean 6.1e-5. Steps 0-2 agree to 1e-15; at
		// step 3 one rounding difference (most likely a Q8_0 activation
		// rounding tie) enters the KV cache and persists. On Q8_0 the
		// same kind of difference shows as isolated spikes between
		// steps that agree to 1e-15.
		{"stories260K-Q4_0.gguf", "stories260K-Q4_0.once-upon", 1e-3, 2e-4},
		// Measured: 0 (bit-identical logits).
		{"llama-2-tiny-random.gguf", "llama-2-tiny-random.hello", 1e-12, 1e-12},
	}
	for _, tc := range cases {
		t.Run(tc.model, func(t *testing.T) {
			path, err := refdata.Path("models", tc.model)
			if err != nil {
				t.Fatal(err)
			}
			out, err := refdata.LoadOutput(tc.output)
			if err != nil {
				t.Fatal(err)
			}
			ref, err := refdata.LoadLogits(tc.output, out.NVocab)
			if err != nil {
				t.Fatal(err)
			}
			b := engine.NewBackend(llamaCppAttention{reference.New()}, engine.Options{})
			got := stepLogits(t, b, path, out, len(ref))
			var maxN, sum float64
			for i := range ref {
				n := refdata.NMSE(got[i], ref[i])
				maxN = max(maxN, n)
				sum += n
			}
			mean := sum / float64(len(ref))
			t.Logf("%s with llama.cpp's numerics mimicked: NMSE max %.3g mean %.3g", tc.model, maxN, mean)
			if maxN > tc.maxNMSE || mean > tc.mean {
				t.Errorf("NMSE max %.3g mean %.3g, want ≤ %.3g / %.3g", maxN, mean, tc.maxNMSE, tc.mean)
			}
		})
	}
}

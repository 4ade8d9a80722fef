package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/realmrt/realm/gguf"
)

// synthArches are the architectures realm gguf synth --arch writes:
// small models (2 layers, n_embd 64) with every feature of the family,
// for comparisons with llama.cpp.
var synthArches = []string{"llama", "llama3", "mixtral", "qwen2", "qwen2yarn", "qwen3", "qwen3moe", "gemma2", "gemma3", "phi3", "bert"}

// archShape is the shape of an --arch model.
type archShape struct {
	arch                               string // the --arch it belongs to
	nEmbd, nLayer, nHead, nHeadKV, nFF int
	headDim                            int  // 0: nEmbd/nHead
	tied                               bool // no output.weight
	window, pattern                    int  // gemma3 sliding window and period
}

// archPresets are real model shapes for benchmarks (realm gguf synth
// --arch A --preset NAME); the vocabulary is always the donor's.
func archPresets() map[string]archShape {
	return map[string]archShape{
		"llama-3.2-1b": {arch: "llama3", nEmbd: 2048, nLayer: 16, nHead: 32, nHeadKV: 8, nFF: 8192, tied: true},
		"qwen2.5-0.5b": {arch: "qwen2", nEmbd: 896, nLayer: 24, nHead: 14, nHeadKV: 2, nFF: 4864, tied: true},
		"qwen3-0.6b":   {arch: "qwen3", nEmbd: 1024, nLayer: 28, nHead: 16, nHeadKV: 8, nFF: 3072, headDim: 128, tied: true},
		"gemma-3-1b":   {arch: "gemma3", nEmbd: 1152, nLayer: 26, nHead: 4, nHeadKV: 1, nFF: 6912, headDim: 256, tied: true, window: 512, pattern: 6},
	}
}

// synthArchFile builds the header of a random-weight model of
// architecture arch (one of synthArches) with the donor's tokenizer: the
// small test shape, or a preset of archPresets ("" for none). A width
// other than 0 widens the small shape to n_embd width (a multiple of 64;
// n_ff 2×width, the experts' n_ff width, gemma's head size width/2), e.g.
// 256 so that every matrix row holds whole 256-value K-quant super-blocks.
func synthArchFile(arch, preset string, width int, ft quantFtype, donor *gguf.File, vocab int) (*gguf.File, error) {
	if !slices.Contains(synthArches, arch) {
		return nil, fmt.Errorf("unknown --arch %q (want one of %s)", arch, strings.Join(synthArches, ", "))
	}
	if arch == "bert" {
		return synthBertFile(preset, ft, donor, vocab)
	}
	sh := archShape{arch: arch, nEmbd: 64, nLayer: 2, nHead: 4, nHeadKV: 2, nFF: 128, window: 6, pattern: 2}
	if strings.HasPrefix(arch, "gemma") {
		sh.headDim = 32 // gemma's head size is not n_embd/n_head
	}
	if preset != "" {
		p, ok := archPresets()[preset]
		if !ok || p.arch != arch {
			var names []string
			for n, p := range archPresets() {
				names = append(names, n+" (--arch "+p.arch+")")
			}
			slices.Sort(names)
			return nil, fmt.Errorf("no preset %q for --arch %s (presets: %s)", preset, arch, strings.Join(names, ", "))
		}
		sh = p
	}
	nFFExp := 64
	if width != 0 {
		if preset != "" || width%64 != 0 || width <= 0 {
			return nil, fmt.Errorf("--n-embd %d with --arch: want a positive multiple of 64 and no --preset", width)
		}
		sh.nEmbd, sh.nFF, nFFExp = width, 2*width, width
		if sh.headDim != 0 {
			sh.headDim = width / 2
		}
	}
	const (
		nExpert, nUsed = 4, 2
		ctx            = 4096
	)
	nEmbd, nLayer, nHead, nHeadKV, nFF := sh.nEmbd, sh.nLayer, sh.nHead, sh.nHeadKV, sh.nFF
	gen := arch // general.architecture
	switch arch {
	case "llama3", "mixtral":
		gen = "llama"
	case "qwen2yarn":
		gen = "qwen2"
	}
	headDim := nEmbd / nHead
	if sh.headDim != 0 {
		headDim = sh.headDim
	}
	q, kv := nHead*headDim, nHeadKV*headDim
	u32 := func(v int) gguf.Value { return gguf.NewUint32(uint32(v)) }
	f32 := func(v float64) gguf.Value { return gguf.NewFloat32(float32(v)) }
	k := func(s string) string { return gen + "." + s }
	md := []gguf.KV{
		{Key: "general.architecture", Value: gguf.NewString(gen)},
		// Not the architecture's name: llama.cpp keys tokenizer fix-ups
		// on general.name ("phi3" expects phi-3's special tokens).
		{Key: "general.name", Value: gguf.NewString("realm synthetic")},
		{Key: k("context_length"), Value: u32(ctx)},
		{Key: k("embedding_length"), Value: u32(nEmbd)},
		{Key: k("block_count"), Value: u32(nLayer)},
		{Key: k("attention.head_count"), Value: u32(nHead)},
		{Key: k("attention.head_count_kv"), Value: u32(nHeadKV)},
		{Key: k("attention.layer_norm_rms_epsilon"), Value: f32(1e-6)},
	}
	base := 10000.0
	switch arch {
	case "llama3":
		base = 500000
	case "qwen2", "qwen2yarn", "qwen3", "qwen3moe", "gemma3":
		base = 1000000
	}
	md = append(md, gguf.KV{Key: k("rope.freq_base"), Value: f32(base)})
	if arch != "qwen3moe" {
		md = append(md, gguf.KV{Key: k("feed_forward_length"), Value: u32(nFF)})
	}
	if headDim != nEmbd/nHead {
		md = append(md, gguf.KV{Key: k("attention.key_length"), Value: u32(headDim)},
			gguf.KV{Key: k("attention.value_length"), Value: u32(headDim)})
	}
	switch arch {
	case "mixtral", "qwen3moe":
		md = append(md, gguf.KV{Key: k("expert_count"), Value: u32(nExpert)},
			gguf.KV{Key: k("expert_used_count"), Value: u32(nUsed)})
		if arch == "qwen3moe" {
			md = append(md, gguf.KV{Key: k("expert_feed_forward_length"), Value: u32(nFFExp)})
		}
	case "gemma2":
		// A window shorter than the test's run and caps near the
		// scores' and logits' range, so that they matter.
		md = append(md, gguf.KV{Key: k("attention.sliding_window"), Value: u32(6)},
			gguf.KV{Key: k("attn_logit_softcapping"), Value: f32(2)},
			gguf.KV{Key: k("final_logit_softcapping"), Value: f32(3)})
	case "gemma3":
		md = append(md, gguf.KV{Key: k("attention.sliding_window"), Value: u32(sh.window)},
			gguf.KV{Key: k("attention.sliding_window_pattern"), Value: u32(sh.pattern)})
		if preset == "" {
			md = append(md, gguf.KV{Key: k("final_logit_softcapping"), Value: f32(3)})
		}
		md = append(md, gguf.KV{Key: k("rope.freq_base_swa"), Value: f32(10000)})
	case "qwen2yarn":
		// YaRN with an original context short enough that the ramp
		// covers some rotated pairs of a 16-wide head.
		md = append(md, gguf.KV{Key: k("rope.scaling.type"), Value: gguf.NewString("yarn")},
			gguf.KV{Key: k("rope.scaling.factor"), Value: f32(4)},
			gguf.KV{Key: k("rope.scaling.original_context_length"), Value: u32(64)})
	case "phi3":
		md = append(md, gguf.KV{Key: k("rope.scaling.attn_factor"), Value: f32(1.19)},
			gguf.KV{Key: k("rope.scaling.original_context_length"), Value: u32(1024)})
	}
	for _, kv := range donor.Metadata {
		if strings.HasPrefix(kv.Key, "tokenizer.") {
			md = append(md, kv)
		}
	}
	md = withFileType(md, ft)

	t := func(name string, dims ...int) gguf.TensorInfo {
		d := make([]int64, len(dims))
		for i, v := range dims {
			d[i] = int64(v)
		}
		return gguf.TensorInfo{Name: name, Dims: d}
	}
	ts := []gguf.TensorInfo{t("token_embd.weight", nEmbd, vocab)}
	switch arch {
	case "llama3":
		ts = append(ts, t("rope_freqs.weight", headDim/2))
	case "phi3":
		ts = append(ts, t("rope_factors_short.weight", headDim/2), t("rope_factors_long.weight", headDim/2))
	}
	for l := 0; l < nLayer; l++ {
		b := fmt.Sprintf("blk.%d.", l)
		ts = append(ts, t(b+"attn_norm.weight", nEmbd))
		if arch == "phi3" {
			ts = append(ts, t(b+"attn_qkv.weight", nEmbd, q+2*kv))
		} else {
			ts = append(ts, t(b+"attn_q.weight", nEmbd, q), t(b+"attn_k.weight", nEmbd, kv), t(b+"attn_v.weight", nEmbd, kv))
		}
		if gen == "qwen2" {
			ts = append(ts, t(b+"attn_q.bias", q), t(b+"attn_k.bias", kv), t(b+"attn_v.bias", kv))
		}
		if arch == "qwen3" || arch == "qwen3moe" || arch == "gemma3" {
			ts = append(ts, t(b+"attn_q_norm.weight", headDim), t(b+"attn_k_norm.weight", headDim))
		}
		ts = append(ts, t(b+"attn_output.weight", q, nEmbd), t(b+"ffn_norm.weight", nEmbd))
		if strings.HasPrefix(arch, "gemma") {
			ts = append(ts, t(b+"post_attention_norm.weight", nEmbd), t(b+"post_ffw_norm.weight", nEmbd))
		}
		switch arch {
		case "mixtral", "qwen3moe":
			ff := nFF
			if arch == "qwen3moe" {
				ff = nFFExp
			}
			ts = append(ts, t(b+"ffn_gate_inp.weight", nEmbd, nExpert),
				t(b+"ffn_gate_exps.weight", nEmbd, ff, nExpert),
				t(b+"ffn_down_exps.weight", ff, nEmbd, nExpert),
				t(b+"ffn_up_exps.weight", nEmbd, ff, nExpert))
		case "phi3":
			ts = append(ts, t(b+"ffn_up.weight", nEmbd, 2*nFF), t(b+"ffn_down.weight", nFF, nEmbd))
		default:
			ts = append(ts, t(b+"ffn_gate.weight", nEmbd, nFF), t(b+"ffn_down.weight", nFF, nEmbd), t(b+"ffn_up.weight", nEmbd, nFF))
		}
	}
	ts = append(ts, t("output_norm.weight", nEmbd))
	if !strings.HasPrefix(arch, "gemma") && !sh.tied {
		ts = append(ts, t("output.weight", nEmbd, vocab))
	}
	for i := range ts {
		ts[i].Type = gguf.TypeF32
	}
	order := make([]int, len(ts))
	for i := range order {
		order[i] = i
	}
	types := planTypes(ts, order, ft, nLayer)
	for i := range ts {
		ts[i].Type = types[i]
		if len(ts[i].Dims) == 1 {
			ts[i].Type = gguf.TypeF32 // norms, biases and factors stay F32, as llama.cpp keeps them
		}
	}
	f := &gguf.File{Version: 3, Metadata: md, Tensors: ts}
	if _, _, err := gguf.Layout(f); err != nil {
		return nil, err
	}
	return f, nil
}

// synthArchValues fills v with the values of row block of tensor ti of
// an --arch model: matrices N(0, 1/cols) so activations keep their
// scale, embeddings and output N(0, 0.5²) so the next-token choice is
// rarely a near tie, norms 1+N(0, 0.1²), biases N(0, 0.1²), and fixed
// ramps for rope frequency factors.
func synthArchValues(v []float32, arch string, ti *gguf.TensorInfo, rng *rand.Rand) {
	name := ti.Name
	cols := float64(ti.Dims[0])
	switch {
	case strings.HasPrefix(name, "rope_f"):
		// llama3-like factors: 1 for high frequencies rising to 8 (long:
		// to 4, short: to 1.5).
		top := 8.0
		switch name {
		case "rope_factors_short.weight":
			top = 1.5
		case "rope_factors_long.weight":
			top = 4
		}
		for i := range v {
			v[i] = float32(1 + (top-1)*float64(i)/math.Max(1, float64(len(v)-1)))
		}
	case strings.HasSuffix(name, "norm.weight"):
		for i := range v {
			v[i] = float32(1 + 0.1*rng.NormFloat64())
		}
	case strings.HasSuffix(name, ".bias"):
		for i := range v {
			v[i] = float32(0.1 * rng.NormFloat64())
		}
	case name == "token_embd.weight" || name == "output.weight":
		s := 0.5
		if strings.HasPrefix(arch, "gemma") {
			// Gemma scales the embeddings by sqrt(n_embd) and ties the
			// output to them: unit-scale rows keep the blocks' share of
			// the residual stream large enough to be tested.
			s = 1 / math.Sqrt(cols)
		}
		for i := range v {
			v[i] = float32(s * rng.NormFloat64())
		}
	default:
		s := 1 / math.Sqrt(cols)
		for i := range v {
			v[i] = float32(s * rng.NormFloat64())
		}
	}
}

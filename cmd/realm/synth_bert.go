package main

import (
	"fmt"
	"strings"

	"github.com/realmrt/realm/gguf"
)

// synthBertFile builds the header of a small random-weight bert
// embedding model (2 layers, n_embd 64, 4 heads, n_ff 128, context 512,
// mean pooling) with the donor's WordPiece vocabulary. The token
// embeddings are F16 when the type asks for F32, so that a 30522-token
// vocabulary stays a 4 MB file; llama.cpp reads them the same way.
// With preset "bge-small" it has the shape of BAAI/bge-small-en-v1.5
// (12 layers, n_embd 384, 12 heads, n_ff 1536; CLS pooling) for
// benchmarks.
func synthBertFile(preset string, ft quantFtype, donor *gguf.File, vocab int) (*gguf.File, error) {
	if m, _ := donor.String("tokenizer.ggml.model"); m != "bert" {
		return nil, fmt.Errorf("--arch bert needs a WordPiece (tokenizer.ggml.model \"bert\") donor, got %q", m)
	}
	nEmbd, nLayer, nHead, nFF, ctx, pool := 64, 2, 4, 128, 512, 1 // mean pooling
	switch preset {
	case "":
	case "bge-small":
		nEmbd, nLayer, nHead, nFF, pool = 384, 12, 12, 1536, 2 // CLS pooling
	default:
		return nil, fmt.Errorf("no preset %q for --arch bert (presets: bge-small)", preset)
	}
	nTypes := 2
	if n, ok := donor.Uint("tokenizer.ggml.token_type_count"); ok && n > 0 && n <= 16 {
		nTypes = int(n)
	}
	u32 := func(v int) gguf.Value { return gguf.NewUint32(uint32(v)) }
	md := []gguf.KV{
		{Key: "general.architecture", Value: gguf.NewString("bert")},
		{Key: "general.name", Value: gguf.NewString("realm synthetic")},
		{Key: "bert.context_length", Value: u32(ctx)},
		{Key: "bert.embedding_length", Value: u32(nEmbd)},
		{Key: "bert.block_count", Value: u32(nLayer)},
		{Key: "bert.feed_forward_length", Value: u32(nFF)},
		{Key: "bert.attention.head_count", Value: u32(nHead)},
		{Key: "bert.attention.layer_norm_epsilon", Value: gguf.NewFloat32(1e-12)},
		{Key: "bert.attention.causal", Value: gguf.NewBool(false)},
		{Key: "bert.pooling_type", Value: u32(pool)},
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
		return gguf.TensorInfo{Name: name, Dims: d, Type: gguf.TypeF32}
	}
	ts := []gguf.TensorInfo{t("token_embd.weight", nEmbd, vocab), t("token_types.weight", nEmbd, nTypes),
		t("position_embd.weight", nEmbd, ctx), t("token_embd_norm.weight", nEmbd), t("token_embd_norm.bias", nEmbd)}
	for l := 0; l < nLayer; l++ {
		b := fmt.Sprintf("blk.%d.", l)
		ts = append(ts, t(b+"attn_q.weight", nEmbd, nEmbd), t(b+"attn_q.bias", nEmbd),
			t(b+"attn_k.weight", nEmbd, nEmbd), t(b+"attn_k.bias", nEmbd),
			t(b+"attn_v.weight", nEmbd, nEmbd), t(b+"attn_v.bias", nEmbd),
			t(b+"attn_output.weight", nEmbd, nEmbd), t(b+"attn_output.bias", nEmbd),
			t(b+"attn_output_norm.weight", nEmbd), t(b+"attn_output_norm.bias", nEmbd),
			t(b+"ffn_up.weight", nEmbd, nFF), t(b+"ffn_up.bias", nFF),
			t(b+"ffn_down.weight", nFF, nEmbd), t(b+"ffn_down.bias", nEmbd),
			t(b+"layer_output_norm.weight", nEmbd), t(b+"layer_output_norm.bias", nEmbd))
	}
	order := make([]int, len(ts))
	for i := range order {
		order[i] = i
	}
	types := planTypes(ts, order, ft, nLayer)
	for i := range ts {
		ts[i].Type = types[i]
		switch {
		case len(ts[i].Dims) == 1:
			ts[i].Type = gguf.TypeF32 // norms and biases stay F32
		case ts[i].Name == "token_types.weight" || ts[i].Name == "position_embd.weight":
			ts[i].Type = gguf.TypeF32 // small, and read by row
		case ts[i].Name == "token_embd.weight" && ts[i].Type == gguf.TypeF32 && preset == "":
			ts[i].Type = gguf.TypeF16
		}
	}
	f := &gguf.File{Version: 3, Metadata: md, Tensors: ts}
	if _, _, err := gguf.Layout(f); err != nil {
		return nil, err
	}
	return f, nil
}

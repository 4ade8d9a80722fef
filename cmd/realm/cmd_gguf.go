package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strings"
	"text/tabwriter"

	"github.com/realmrt/realm/gguf"
)

func runGGUF(ctx context.Context, env *cliEnv, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(env.Stderr, "usage: realm gguf info FILE [--json] [--full]\n       realm gguf synth --preset NAME --type TYPE -o FILE --tokenizer-from DONOR.gguf [flags]")
		if len(args) == 0 {
			return exitCode(2)
		}
		return nil
	}
	switch args[0] {
	case "info":
		return runGGUFInfo(ctx, env, args[1:])
	case "synth":
		return runGGUFSynth(ctx, env, args[1:])
	}
	fmt.Fprintf(env.Stderr, "realm gguf: unknown subcommand %q (want info or synth)\n", args[0])
	return exitCode(2)
}

// summaryItems is how many array elements info shows without --full.
const summaryItems = 8

func runGGUFInfo(_ context.Context, env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("gguf info", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	asJSON := fs.Bool("json", false, "print machine-readable JSON")
	full := fs.Bool("full", false, "print arrays in full instead of summarized")
	fs.Usage = func() {
		fmt.Fprintln(env.Stderr, "usage: realm gguf info FILE [--json] [--full]")
		fs.PrintDefaults()
	}
	pos, err := parseExact(fs, args, 1)
	if err != nil {
		return err
	}
	m, err := gguf.Open(pos[0])
	if err != nil {
		return err
	}
	defer m.Close()
	if *asJSON {
		return writeInfoJSON(env.Stdout, pos[0], m.File, *full)
	}
	return writeInfoText(env.Stdout, pos[0], m.File, *full)
}

func writeInfoText(w io.Writer, path string, f *gguf.File, full bool) error {
	maxItems := summaryItems
	if full {
		maxItems = -1
	}
	var params int64
	var dataBytes int64
	for i := range f.Tensors {
		params += f.Tensors[i].Elements()
		dataBytes += f.Tensors[i].Bytes()
	}
	fmt.Fprintf(w, "file:        %s\n", path)
	fmt.Fprintf(w, "version:     %d\nalignment:   %d\ndata offset: %d\n", f.Version, f.Alignment, f.DataOffset)
	fmt.Fprintf(w, "tensors:     %d (%d parameters, %.2f MiB)\n", len(f.Tensors), params, float64(dataBytes)/(1<<20))
	fmt.Fprintf(w, "\nmetadata (%d keys):\n", len(f.Metadata))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, kv := range f.Metadata {
		typ := kv.Value.Type().String()
		if et, ok := kv.Value.ArrayType(); ok {
			typ = fmt.Sprintf("[%d]%s", kv.Value.Len(), et)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", kv.Key, typ, formatItems(kv.Value, maxItems))
	}
	tw.Flush()
	fmt.Fprintf(w, "\ntensors (%d):\n", len(f.Tensors))
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "#\tname\ttype\tshape\toffset\tbytes\t\n")
	for i := range f.Tensors {
		ti := &f.Tensors[i]
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%d\t\n", i, ti.Name, ti.Type, shapeString(ti.Dims), ti.Offset, ti.Bytes())
	}
	return tw.Flush()
}

// formatItems formats a value; arrays show at most maxItems elements
// (all when maxItems < 0) followed by "..." when cut.
func formatItems(v gguf.Value, maxItems int) string {
	if _, ok := v.ArrayType(); !ok {
		return v.String()
	}
	n := v.Len()
	show := n
	if maxItems >= 0 {
		show = min(n, maxItems)
	}
	items := make([]string, 0, show+1)
	for i := 0; i < show; i++ {
		e, _ := v.Index(i)
		items = append(items, formatItems(e, maxItems))
	}
	if show < n {
		items = append(items, "...")
	}
	return "[" + strings.Join(items, ", ") + "]"
}

func shapeString(dims []int64) string {
	s := make([]string, len(dims))
	for i, d := range dims {
		s[i] = fmt.Sprint(d)
	}
	return "[" + strings.Join(s, ", ") + "]"
}

// infoJSON is the --json output of realm gguf info.
type infoJSON struct {
	Path       string       `json:"path"`
	Version    uint32       `json:"version"`
	Alignment  int64        `json:"alignment"`
	DataOffset int64        `json:"data_offset"`
	Metadata   []kvJSON     `json:"metadata"`
	Tensors    []tensorJSON `json:"tensors"`
}

type kvJSON struct {
	Key       string `json:"key"`
	Type      string `json:"type"`
	ArrayType string `json:"array_type,omitempty"`
	Length    *int   `json:"length,omitempty"`
	Truncated bool   `json:"truncated,omitempty"`
	Value     any    `json:"value"`
}

type tensorJSON struct {
	Name   string  `json:"name"`
	Type   string  `json:"type"`
	Shape  []int64 `json:"shape"`
	Offset int64   `json:"offset"`
	Bytes  int64   `json:"bytes"`
}

func writeInfoJSON(w io.Writer, path string, f *gguf.File, full bool) error {
	out := infoJSON{Path: path, Version: f.Version, Alignment: f.Alignment, DataOffset: f.DataOffset,
		Metadata: []kvJSON{}, Tensors: []tensorJSON{}}
	maxItems := summaryItems
	if full {
		maxItems = -1
	}
	for _, kv := range f.Metadata {
		j := kvJSON{Key: kv.Key, Type: kv.Value.Type().String(), Value: valueJSON(kv.Value, maxItems)}
		if et, ok := kv.Value.ArrayType(); ok {
			n := kv.Value.Len()
			j.ArrayType, j.Length = et.String(), &n
			j.Truncated = maxItems >= 0 && n > maxItems
		}
		out.Metadata = append(out.Metadata, j)
	}
	for i := range f.Tensors {
		ti := &f.Tensors[i]
		out.Tensors = append(out.Tensors, tensorJSON{Name: ti.Name, Type: ti.Type.String(), Shape: ti.Dims, Offset: ti.Offset, Bytes: ti.Bytes()})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(out)
}

// valueJSON converts a metadata value to a JSON-encodable value; arrays
// keep their first maxItems elements (all when maxItems < 0), and
// non-finite floats become the strings "NaN", "+Inf", "-Inf".
func valueJSON(v gguf.Value, maxItems int) any {
	switch v.Type() {
	case gguf.ValString:
		s, _ := v.AsString()
		return s
	case gguf.ValBool:
		b, _ := v.AsBool()
		return b
	case gguf.ValFloat32, gguf.ValFloat64:
		x, _ := v.AsFloat()
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Sprint(x)
		}
		if v.Type() == gguf.ValFloat32 {
			return json.Number(fmt.Sprint(float32(x)))
		}
		return x
	case gguf.ValArray:
		n := v.Len()
		if maxItems >= 0 {
			n = min(n, maxItems)
		}
		items := make([]any, n)
		for i := range items {
			e, _ := v.Index(i)
			items[i] = valueJSON(e, maxItems)
		}
		return items
	}
	if x, ok := v.AsInt(); ok {
		return x
	}
	u, _ := v.AsUint()
	return u
}

// synthPreset is a model shape for realm gguf synth.
type synthPreset struct {
	nEmbd, nLayer, nHead, nHeadKV, nFF, vocab, ctx int
}

// synthPresets are the model shapes realm gguf synth knows by name.
func synthPresets() map[string]synthPreset {
	return map[string]synthPreset{
		// TinyLlama-1.1B's shapes (the llama.cpp speed table in the
		// reference README uses them).
		"tinyllama-1.1b": {nEmbd: 2048, nLayer: 22, nHead: 32, nHeadKV: 4, nFF: 5632, vocab: 32000, ctx: 2048},
		// The same shapes with an 8192-token training context, for
		// speed at depth (realm bench -d 4096 -p 512).
		"tinyllama-1.1b-8k": {nEmbd: 2048, nLayer: 22, nHead: 32, nHeadKV: 4, nFF: 5632, vocab: 32000, ctx: 8192},
		// Llama-3.1-8B's shapes (the 8B-class speed and memory figures;
		// its 128256-token vocabulary: tokenizer from ggml-vocab-llama-bpe).
		"llama-3.1-8b": {nEmbd: 4096, nLayer: 32, nHead: 32, nHeadKV: 8, nFF: 14336, vocab: 128256, ctx: 131072},
		// A small model for tests: rows are multiples of 256 so every
		// type applies without fallbacks; the vocabulary matches
		// stories260K.
		"tiny": {nEmbd: 256, nLayer: 2, nHead: 4, nHeadKV: 2, nFF: 512, vocab: 512, ctx: 256},
	}
}

func runGGUFSynth(ctx context.Context, env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("gguf synth", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	preset := fs.String("preset", "tinyllama-1.1b", "model shape: tinyllama-1.1b, tinyllama-1.1b-8k, llama-3.1-8b or tiny")
	arch := fs.String("arch", "", "write a small model of this architecture instead of a llama preset: "+strings.Join(synthArches, ", "))
	typ := fs.String("type", "f16", "tensor type: f32, f16, q8_0, q4_0, q4_k_m, q6_k")
	out := fs.String("o", "", "output `FILE` (required)")
	donor := fs.String("tokenizer-from", "", "copy tokenizer.* metadata from this `GGUF` (required)")
	nEmbd := fs.Int("n-embd", 0, "override the embedding width (with --arch: widen the small model, a multiple of 64)")
	nLayer := fs.Int("n-layer", 0, "override the number of layers")
	nHead := fs.Int("n-head", 0, "override the number of attention heads")
	nHeadKV := fs.Int("n-head-kv", 0, "override the number of KV heads")
	nFF := fs.Int("n-ff", 0, "override the feed-forward width")
	vocab := fs.Int("vocab", 0, "override the vocabulary size (must match the donor's)")
	nCtx := fs.Int("context", 0, "override the context length")
	seed := fs.Uint64("seed", 1, "random seed for the weights")
	fs.Usage = func() {
		fmt.Fprintln(env.Stderr, "usage: realm gguf synth --preset NAME --type TYPE -o FILE --tokenizer-from DONOR.gguf [flags]\n       realm gguf synth --arch ARCH --type TYPE -o FILE --tokenizer-from DONOR.gguf [--seed N]\n\nWrites a deterministic llama model with random weights (normal, std 0.02; norms 1), or with --arch a small\nmodel of that architecture (2 layers, n_embd 64, the donor's vocabulary) with weights scaled for clear\nnext-token choices.")
		fs.PrintDefaults()
	}
	if _, err := parseExact(fs, args, 0); err != nil {
		return err
	}
	p, ok := synthPresets()[*preset]
	if *arch != "" {
		p, ok = synthPresets()["tiny"], true // shapes come from synthArchFile
	}
	if !ok {
		return fmt.Errorf("unknown preset %q (want tinyllama-1.1b, tinyllama-1.1b-8k, llama-3.1-8b or tiny)", *preset)
	}
	for _, o := range []struct {
		dst *int
		v   int
	}{{&p.nEmbd, *nEmbd}, {&p.nLayer, *nLayer}, {&p.nHead, *nHead}, {&p.nHeadKV, *nHeadKV}, {&p.nFF, *nFF}, {&p.vocab, *vocab}, {&p.ctx, *nCtx}} {
		if o.v < 0 {
			return errors.New("dimensions must be positive")
		}
		if o.v > 0 {
			*o.dst = o.v
		}
	}
	ft, err := parseFtype(*typ, "f32", "f16", "q8_0", "q4_0", "q4_k_m", "q6_k")
	if err != nil {
		return err
	}
	if *out == "" {
		return errors.New("missing -o FILE")
	}
	if *donor == "" {
		return errors.New("no tokenizer: pass --tokenizer-from DONOR.gguf (a GGUF whose tokenizer.* metadata is copied; its vocabulary size must match --vocab)")
	}
	if p.nEmbd%p.nHead != 0 || p.nHead%p.nHeadKV != 0 || (p.nEmbd/p.nHead)%2 != 0 {
		return fmt.Errorf("inconsistent shape: n_embd %d must be a multiple of n_head %d with an even head size, and n_head a multiple of n_head_kv %d", p.nEmbd, p.nHead, p.nHeadKV)
	}
	d, err := gguf.Open(*donor)
	if err != nil {
		return fmt.Errorf("tokenizer donor: %w", err)
	}
	defer d.Close()
	toks, ok := d.Strings("tokenizer.ggml.tokens")
	if !ok {
		return fmt.Errorf("tokenizer donor %s has no tokenizer.ggml.tokens", *donor)
	}
	if *arch != "" {
		p.vocab = len(toks)
	}
	if len(toks) != p.vocab {
		return fmt.Errorf("vocabulary size %d does not match the donor's %d tokens (%s); pass --vocab %d or another donor", p.vocab, len(toks), *donor, len(toks))
	}
	var f *gguf.File
	if *arch != "" {
		archPreset := ""
		fs.Visit(func(fl *flag.Flag) {
			if fl.Name == "preset" {
				archPreset = *preset
			}
		})
		f, err = synthArchFile(*arch, archPreset, *nEmbd, ft, d.File, p.vocab)
		*preset = *arch
		if archPreset != "" {
			*preset = archPreset
		}
	} else {
		f, err = synthFile(p, *preset, ft, d.File)
	}
	if err != nil {
		return err
	}
	prog := newProgress(env.Stderr, len(f.Tensors))
	var f32 []float32
	var buf []byte
	err = writeFileAtomic(*out, func(w io.Writer) error {
		return gguf.Write(w, f, func(i int, ti *gguf.TensorInfo, w io.Writer) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			prog.step(i, ti.Name)
			// One generator per tensor: the weights do not depend on the
			// output type or on parallelism.
			rng := rand.New(rand.NewPCG(*seed, uint64(i)))
			norm := strings.HasSuffix(ti.Name, "_norm.weight")
			rowLen := ti.Dims[0]
			rows := ti.Rows()
			rb, _ := ti.Type.RowBytes(rowLen)
			step := chunkRows(rowLen)
			for r := int64(0); r < rows; r += step {
				n := min(step, rows-r)
				f32 = growF32(f32, int(n*rowLen))
				if *arch != "" {
					synthArchValues(f32, *arch, ti, rng)
				} else {
					for k := range f32 {
						if norm {
							f32[k] = 1
						} else {
							f32[k] = float32(rng.NormFloat64() * 0.02)
						}
					}
				}
				buf = growBytes(buf, int(n*rb))
				if err := convertRows(buf, f32, int(rowLen), ti.Type); err != nil {
					return err
				}
				if _, err := w.Write(buf); err != nil {
					return err
				}
			}
			return nil
		})
	})
	prog.finish()
	if err != nil {
		return err
	}
	var size int64
	for i := range f.Tensors {
		size += f.Tensors[i].Bytes()
	}
	fmt.Fprintf(env.Stdout, "%s: %s %s, %d tensors, %.2f MiB of weights\n", *out, *preset, ft.name, len(f.Tensors), float64(size)/(1<<20))
	return nil
}

// synthFile builds the header of a synthetic llama model.
func synthFile(p synthPreset, preset string, ft quantFtype, donor *gguf.File) (*gguf.File, error) {
	u32 := func(v int) gguf.Value { return gguf.NewUint32(uint32(v)) }
	md := []gguf.KV{
		{Key: "general.architecture", Value: gguf.NewString("llama")},
		{Key: "general.name", Value: gguf.NewString("realm synthetic " + preset)},
		{Key: "llama.vocab_size", Value: u32(p.vocab)},
		{Key: "llama.context_length", Value: u32(p.ctx)},
		{Key: "llama.embedding_length", Value: u32(p.nEmbd)},
		{Key: "llama.block_count", Value: u32(p.nLayer)},
		{Key: "llama.feed_forward_length", Value: u32(p.nFF)},
		{Key: "llama.rope.dimension_count", Value: u32(p.nEmbd / p.nHead)},
		{Key: "llama.rope.freq_base", Value: gguf.NewFloat32(10000)},
		{Key: "llama.attention.head_count", Value: u32(p.nHead)},
		{Key: "llama.attention.head_count_kv", Value: u32(p.nHeadKV)},
		{Key: "llama.attention.layer_norm_rms_epsilon", Value: gguf.NewFloat32(1e-5)},
	}
	for _, kv := range donor.Metadata {
		if strings.HasPrefix(kv.Key, "tokenizer.") {
			md = append(md, kv)
		}
	}
	md = withFileType(md, ft)
	e, kv := int64(p.nEmbd), int64(p.nEmbd/p.nHead*p.nHeadKV)
	ts := []gguf.TensorInfo{{Name: "token_embd.weight", Dims: []int64{e, int64(p.vocab)}}}
	for l := 0; l < p.nLayer; l++ {
		b := fmt.Sprintf("blk.%d.", l)
		ts = append(ts,
			gguf.TensorInfo{Name: b + "attn_norm.weight", Dims: []int64{e}},
			gguf.TensorInfo{Name: b + "attn_q.weight", Dims: []int64{e, e}},
			gguf.TensorInfo{Name: b + "attn_k.weight", Dims: []int64{e, kv}},
			gguf.TensorInfo{Name: b + "attn_v.weight", Dims: []int64{e, kv}},
			gguf.TensorInfo{Name: b + "attn_output.weight", Dims: []int64{e, e}},
			gguf.TensorInfo{Name: b + "ffn_norm.weight", Dims: []int64{e}},
			gguf.TensorInfo{Name: b + "ffn_gate.weight", Dims: []int64{e, int64(p.nFF)}},
			gguf.TensorInfo{Name: b + "ffn_down.weight", Dims: []int64{int64(p.nFF), e}},
			gguf.TensorInfo{Name: b + "ffn_up.weight", Dims: []int64{e, int64(p.nFF)}},
		)
	}
	ts = append(ts,
		gguf.TensorInfo{Name: "output_norm.weight", Dims: []int64{e}},
		gguf.TensorInfo{Name: "output.weight", Dims: []int64{e, int64(p.vocab)}})
	// Plan the types as if quantizing an F32 model of this shape.
	for i := range ts {
		ts[i].Type = gguf.TypeF32
	}
	order := make([]int, len(ts))
	for i := range order {
		order[i] = i
	}
	types := planTypes(ts, order, ft, p.nLayer)
	for i := range ts {
		ts[i].Type = types[i]
	}
	f := &gguf.File{Version: 3, Metadata: md, Tensors: ts}
	if _, _, err := gguf.Layout(f); err != nil {
		return nil, err
	}
	return f, nil
}

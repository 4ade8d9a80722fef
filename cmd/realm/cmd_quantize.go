package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/realmrt/realm/gguf"
)

// quantFtype is a llama.cpp file type this CLI produces.
type quantFtype struct {
	name string        // lower-case gguf.FileType name, as the CLI takes it
	id   gguf.FileType // value of general.file_type
	base gguf.Type     // default tensor type
}

// quantFtypes are the file types realm quantize and realm gguf synth
// produce.
func quantFtypes() []quantFtype {
	fts := []struct {
		id   gguf.FileType
		base gguf.Type
	}{
		{gguf.FileTypeF32, gguf.TypeF32},
		{gguf.FileTypeF16, gguf.TypeF16},
		{gguf.FileTypeQ4_0, gguf.TypeQ4_0},
		{gguf.FileTypeQ8_0, gguf.TypeQ8_0},
		{gguf.FileTypeQ4_K_M, gguf.TypeQ4_K},
		{gguf.FileTypeQ5_K_S, gguf.TypeQ5_K},
		{gguf.FileTypeQ5_K_M, gguf.TypeQ5_K},
		{gguf.FileTypeQ6_K, gguf.TypeQ6_K},
		{gguf.FileTypeIQ4_NL, gguf.TypeIQ4_NL},
		{gguf.FileTypeIQ4_XS, gguf.TypeIQ4_XS},
		{gguf.FileTypeBF16, gguf.TypeBF16},
	}
	out := make([]quantFtype, len(fts))
	for i, ft := range fts {
		out[i] = quantFtype{name: strings.ToLower(ft.id.String()), id: ft.id, base: ft.base}
	}
	return out
}

func parseFtype(s string, allowed ...string) (quantFtype, error) {
	fts := quantFtypes()
	names := make([]string, 0, len(fts))
	for _, ft := range fts {
		ok := len(allowed) == 0
		for _, a := range allowed {
			ok = ok || a == ft.name
		}
		if !ok {
			continue
		}
		names = append(names, ft.name)
		if strings.EqualFold(s, ft.name) {
			return ft, nil
		}
	}
	return quantFtype{}, fmt.Errorf("unknown type %q (want one of %s)", s, strings.Join(names, ", "))
}

// Metadata keys written by quantize and synth.
const (
	keyFileType     = gguf.KeyFileType
	keyQuantVersion = "general.quantization_version"
)

// layerOf returns N for a tensor named "blk.N.…", or -1.
func layerOf(name string) int {
	rest, ok := strings.CutPrefix(name, "blk.")
	if !ok {
		return -1
	}
	num, _, ok := strings.Cut(rest, ".")
	if !ok {
		return -1
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// llamaTensorOrder returns tensor indices ordered as llama-quantize
// writes them: tensors outside layers first, then by layer number, each
// group by name.
func llamaTensorOrder(ts []gguf.TensorInfo) []int {
	idx := make([]int, len(ts))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		la, lb := layerOf(ts[idx[a]].Name), layerOf(ts[idx[b]].Name)
		if la != lb {
			return la < lb
		}
		return ts[idx[a]].Name < ts[idx[b]].Name
	})
	return idx
}

// nDims counts dimensions up to the last one larger than 1 (ggml_n_dims).
func nDims(dims []int64) int {
	n := 1
	for i, d := range dims {
		if d > 1 {
			n = i + 1
		}
	}
	return n
}

// quantizable reports whether llama.cpp would quantize a tensor: 2-D or
// more, a ".weight" that is not a norm or an expert gate.
func quantizable(ti *gguf.TensorInfo) bool {
	if nDims(ti.Dims) < 2 || !strings.HasSuffix(ti.Name, "weight") {
		return false
	}
	for _, s := range []string{"_norm.weight", "ffn_gate_inp.weight", "position_embd", "token_types"} {
		if strings.Contains(ti.Name, s) {
			return false
		}
	}
	return true
}

func isQuantized(t gguf.Type) bool {
	return t != gguf.TypeF32 && t != gguf.TypeF16 && t != gguf.TypeBF16
}

// useMoreBits is llama.cpp's rule for the layers that get more bits in
// the _M mixes: the first and last eighth, and every third in between.
func useMoreBits(i, n int) bool {
	return i < n/8 || i >= 7*n/8 || (i-n/8)%3 == 2
}

// mixParams are the model facts llama.cpp's type mix depends on.
type mixParams struct {
	nLayer int // block count
	nGQA   int // attention heads per KV head (0: unknown)
}

// isAttnV reports whether llama.cpp treats a tensor as a value
// projection when mixing types (attn_v, fused attn_qkv, attn_kv_b).
func isAttnV(name string) bool {
	for _, s := range []string{"attn_v.weight", "attn_qkv.weight", "attn_kv_b.weight"} {
		if strings.Contains(name, s) {
			return true
		}
	}
	return false
}

// planTypes is planMix without the GQA ratio.
func planTypes(src []gguf.TensorInfo, order []int, ft quantFtype, nLayer int) []gguf.Type {
	return planMix(src, order, ft, mixParams{nLayer: nLayer})
}

// planMix chooses the type of every tensor of src (in the given
// processing order) for file type ft, following llama.cpp's rules for the
// mixes we produce (llama_tensor_get_type without an importance matrix):
// tensors that are not quantizable keep their type; output.weight (and
// token_embd.weight when there is no separate output) gets Q6_K, or Q8_0
// when its rows do not fit the base block size; the value projections
// (attn_v, attn_qkv) get Q6_K on the layers selected by useMoreBits with
// Q4_K_M and Q5_K_M, and Q5_K with IQ4_NL/IQ4_XS when the model has 4 or
// more heads per KV head; ffn_down gets Q6_K on the useMoreBits layers
// with Q4_K_M and Q5_K_M, and Q5_K on the first eighth of the layers
// with IQ4_NL/IQ4_XS; rows that are not a multiple of the block size
// fall back as fallbackType says.
func planMix(src []gguf.TensorInfo, order []int, ft quantFtype, mp mixParams) []gguf.Type {
	out := make([]gguf.Type, len(src))
	tied := true
	nAttnV := 0
	for i := range src {
		switch {
		case src[i].Name == "output.weight":
			tied = false
		case isAttnV(src[i].Name):
			nAttnV++
		}
	}
	kmix := ft.name == "q4_k_m" || ft.name == "q5_k_m"
	iq4 := ft.name == "iq4_nl" || ft.name == "iq4_xs"
	iAttnV, iFfnDown := 0, 0
	for _, i := range order {
		ti := &src[i]
		if !quantizable(ti) {
			out[i] = ti.Type
			continue
		}
		t := ft.base
		if isQuantized(t) {
			nx := ti.Dims[0]
			switch {
			case ti.Name == "output.weight" || (tied && ti.Name == "token_embd.weight"):
				if nx%int64(t.BlockElems()) != 0 {
					t = gguf.TypeQ8_0
				} else if t != gguf.TypeQ8_0 {
					t = gguf.TypeQ6_K
				}
			case ti.Name == "token_embd.weight":
			case isAttnV(ti.Name):
				if iq4 && mp.nGQA >= 4 {
					t = gguf.TypeQ5_K
				} else if kmix && useMoreBits(iAttnV, nAttnV) {
					t = gguf.TypeQ6_K
				}
				iAttnV++
			case strings.Contains(ti.Name, "ffn_down"):
				if ft.id == gguf.FileTypeQ4_K_M && useMoreBits(iFfnDown, mp.nLayer) {
					t = gguf.TypeQ6_K
				} else if iq4 && iFfnDown < mp.nLayer/8 {
					t = gguf.TypeQ5_K
				} else if ft.id == gguf.FileTypeQ5_K_M && useMoreBits(iFfnDown, mp.nLayer) {
					t = gguf.TypeQ6_K
				}
				iFfnDown++
			}
			t = fallbackType(ti.Dims[0], t)
		}
		out[i] = t
	}
	return out
}

// fallbackType replaces t by a type whose block size divides the row
// length nx, as llama.cpp does.
func fallbackType(nx int64, t gguf.Type) gguf.Type {
	if nx%int64(t.BlockElems()) == 0 {
		return t
	}
	switch t {
	case gguf.TypeQ4_K:
		t = gguf.TypeQ5_0
	case gguf.TypeQ5_K:
		t = gguf.TypeQ5_1
	case gguf.TypeIQ4_XS:
		t = gguf.TypeIQ4_NL
	case gguf.TypeQ6_K:
		t = gguf.TypeQ8_0
	default:
		t = gguf.TypeF16
	}
	if nx%int64(t.BlockElems()) != 0 {
		t = gguf.TypeF16
	}
	return t
}

// withFileType returns md without the file type and quantization version
// keys, then with both appended (the order llama-quantize writes).
func withFileType(md []gguf.KV, ft quantFtype) []gguf.KV {
	out := make([]gguf.KV, 0, len(md)+2)
	for _, kv := range md {
		switch kv.Key {
		case keyFileType, keyQuantVersion, "split.no", "split.count", "split.tensors.count":
			continue
		}
		out = append(out, kv)
	}
	return append(out,
		gguf.KV{Key: keyQuantVersion, Value: gguf.NewUint32(2)},
		gguf.KV{Key: keyFileType, Value: gguf.NewUint32(uint32(ft.id))})
}

// convertRows converts rows of f32 values to type t in parallel (rows are
// independent), writing the encoding of all rows to dst.
func convertRows(dst []byte, src []float32, rowLen int, t gguf.Type) error {
	rows := len(src) / rowLen
	rb, err := t.RowBytes(int64(rowLen))
	if err != nil {
		return err
	}
	workers := min(runtime.GOMAXPROCS(0), rows)
	if workers <= 1 || len(src) < 1<<16 {
		return gguf.Quantize(dst, src, t)
	}
	var wg sync.WaitGroup
	errs := make([]error, workers)
	per := (rows + workers - 1) / workers
	for w := 0; w < workers; w++ {
		lo, hi := w*per, min(rows, (w+1)*per)
		if lo >= hi {
			break
		}
		wg.Add(1)
		go func(w, lo, hi int) {
			defer wg.Done()
			errs[w] = gguf.Quantize(dst[int64(lo)*rb:int64(hi)*rb], src[lo*rowLen:hi*rowLen], t)
		}(w, lo, hi)
	}
	wg.Wait()
	return errors.Join(errs...)
}

// chunkRows returns how many rows of rowLen elements to process at once
// (about 4 Mi elements, at least one row).
func chunkRows(rowLen int64) int64 {
	return max(1, (4<<20)/max(1, rowLen))
}

// progress draws a progress line on a terminal; it does nothing when the
// writer is not a terminal.
type progress struct {
	w     io.Writer
	on    bool
	total int
}

func newProgress(w io.Writer, total int) *progress {
	p := &progress{w: w, total: total}
	if f, ok := w.(*os.File); ok {
		p.on = isTerminal(f)
	}
	return p
}

func (p *progress) step(done int, name string) {
	if !p.on {
		return
	}
	const width = 30
	fill := width * done / max(1, p.total)
	if len(name) > 40 {
		name = name[:40]
	}
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d %-40s", strings.Repeat("#", fill), strings.Repeat(" ", width-fill), done, p.total, name)
}

func (p *progress) finish() {
	if p.on {
		fmt.Fprintln(p.w)
	}
}

// writeFileAtomic creates path via a temporary file in the same directory
// and renames it into place once write succeeds.
func writeFileAtomic(path string, write func(w io.Writer) error) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = write(tmp); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func runQuantize(ctx context.Context, env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("quantize", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprintln(env.Stderr, "usage: realm quantize IN.gguf OUT.gguf TYPE\n\n"+
			"TYPE is one of q8_0, q4_0, q4_k_m, q5_k_m, q5_k_s, q6_k, iq4_nl, iq4_xs, f16, bf16\n"+
			"(llama.cpp's mixes without an importance matrix: norms stay as they are, output.weight\n"+
			"gets Q6_K for the 4- to 6-bit types, attn_v/ffn_down get Q6_K on some layers for\n"+
			"q4_k_m/q5_k_m and Q5_K on some for iq4_nl/iq4_xs).")
		fs.PrintDefaults()
	}
	pos, err := parseExact(fs, args, 3)
	if err != nil {
		return err
	}
	ft, err := parseFtype(pos[2], "q8_0", "q4_0", "q4_k_m", "q5_k_m", "q5_k_s", "q6_k", "iq4_nl", "iq4_xs", "f16", "bf16")
	if err != nil {
		return err
	}
	in, err := gguf.Open(pos[0])
	if err != nil {
		return err
	}
	defer in.Close()
	sum, err := quantizeFile(ctx, in, pos[1], ft, newProgress(env.Stderr, len(in.Tensors)))
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "%s: %d tensors, %.2f MiB -> %.2f MiB (%s)\n", pos[1], len(in.Tensors),
		float64(sum.inBytes)/(1<<20), float64(sum.outBytes)/(1<<20), sum.types)
	return nil
}

type quantSummary struct {
	inBytes, outBytes int64
	types             string // "Q4_K×154 Q6_K×44 F32×45"
}

// quantizeFile converts in to file type ft at outPath, tensor by tensor,
// with llama-quantize's tensor order, type mix and metadata.
func quantizeFile(ctx context.Context, in *gguf.Mapped, outPath string, ft quantFtype, prog *progress) (quantSummary, error) {
	var sum quantSummary
	nLayer := 0
	if arch, ok := in.String("general.architecture"); ok {
		if n, ok := in.Uint(arch + ".block_count"); ok {
			nLayer = int(n)
		}
	}
	if nLayer == 0 {
		for i := range in.Tensors {
			nLayer = max(nLayer, layerOf(in.Tensors[i].Name)+1)
		}
	}
	mp := mixParams{nLayer: nLayer}
	if arch, ok := in.String("general.architecture"); ok {
		nh, okh := in.Uint(arch + ".attention.head_count")
		nkv, okkv := in.Uint(arch + ".attention.head_count_kv")
		if !okkv {
			nkv, okkv = nh, okh
		}
		if okh && okkv && nkv > 0 {
			mp.nGQA = int(nh / nkv)
		}
	}
	order := llamaTensorOrder(in.Tensors)
	types := planMix(in.Tensors, order, ft, mp)
	out := &gguf.File{Version: 3, Metadata: withFileType(in.Metadata, ft)}
	for _, i := range order {
		ti := in.Tensors[i]
		ti.Type = types[i]
		ti.Offset = 0
		out.Tensors = append(out.Tensors, ti)
	}
	counts := map[gguf.Type]int{}
	for _, t := range types {
		counts[t]++
	}
	var tn []string
	for _, t := range gguf.AllTypes() {
		if counts[t] > 0 {
			tn = append(tn, fmt.Sprintf("%s×%d", t, counts[t]))
		}
	}
	sum.types = strings.Join(tn, " ")
	var f32 []float32
	var buf []byte
	err := writeFileAtomic(outPath, func(w io.Writer) error {
		return gguf.Write(w, out, func(k int, ti *gguf.TensorInfo, w io.Writer) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			src := &in.Tensors[order[k]]
			prog.step(k, src.Name)
			data, err := in.TensorData(src)
			if err != nil {
				return err
			}
			sum.inBytes += int64(len(data))
			sum.outBytes += ti.Bytes()
			if src.Type == ti.Type {
				_, err := w.Write(data)
				return err
			}
			rowLen := src.Dims[0]
			srcRow, _ := src.Type.RowBytes(rowLen)
			dstRow, _ := ti.Type.RowBytes(rowLen)
			rows := src.Rows()
			step := chunkRows(rowLen)
			for r := int64(0); r < rows; r += step {
				n := min(step, rows-r)
				f32 = growF32(f32, int(n*rowLen))
				if err := gguf.Dequantize(f32, data[r*srcRow:(r+n)*srcRow], src.Type); err != nil {
					return err
				}
				buf = growBytes(buf, int(n*dstRow))
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
		return sum, err
	}
	return sum, nil
}

func growF32(b []float32, n int) []float32 {
	if cap(b) < n {
		return make([]float32, n)
	}
	return b[:n]
}

func growBytes(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}

//go:build amd64

package cpuavx2

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/realmrt/realm/gguf"
	"github.com/realmrt/realm/internal/backend/reference"
	"github.com/realmrt/realm/internal/engine"
	"github.com/realmrt/realm/internal/refdata"
)

// packedCopy returns w in the packed layout (a copy; w is unchanged).
func packedCopy(t *testing.T, w *engine.Weight) *engine.Weight {
	t.Helper()
	if !packable(w) {
		t.Fatalf("%v %d×%d is not packable", w.Type, w.Rows, w.Cols)
	}
	p := *w
	p.Data = make([]byte, len(w.Data))
	packRows(p.Data, w.Data, w.Type, w.Rows, w.Cols)
	p.Layout = layoutP16
	return &p
}

// TestPackLayout checks that packing is lossless (every row restores to
// the GGUF bytes) and that rows past the last group stay in place.
func TestPackLayout(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, tc := range []struct {
		typ    gguf.Type
		shapes [][2]int
	}{
		{gguf.TypeQ4_0, [][2]int{{16, 32}, {35, 96}, {48, 2048}, {17, 64}}},
		{gguf.TypeQ8_0, [][2]int{{16, 32}, {35, 96}, {48, 2048}, {17, 64}}},
		{gguf.TypeQ4_K, [][2]int{{16, 256}, {35, 768}, {48, 2048}, {17, 512}}},
		{gguf.TypeQ6_K, [][2]int{{16, 256}, {35, 768}, {48, 2048}, {17, 512}}},
	} {
		typ := tc.typ
		for _, shape := range tc.shapes {
			rows, cols := shape[0], shape[1]
			t.Run(fmt.Sprintf("%v/%dx%d", typ, rows, cols), func(t *testing.T) {
				w := randWeight(rng, typ, rows, cols)
				p := packedCopy(t, w)
				rb := w.RowBytes()
				if bytes.Equal(p.Data[:16*rb], w.Data[:16*rb]) {
					t.Fatal("the first group is unchanged by packing")
				}
				full := rows / 16 * 16
				if !bytes.Equal(p.Data[full*rb:], w.Data[full*rb:]) {
					t.Fatal("rows past the last group moved")
				}
				row := make([]byte, rb)
				for r := 0; r < rows; r++ {
					if got := packedRow(row, p, r); !bytes.Equal(got, w.Data[r*rb:(r+1)*rb]) {
						t.Fatalf("row %d does not restore", r)
					}
				}
			})
		}
	}
}

// TestPackedMatMul multiplies packed weights on every kernel variant
// that packs (VNNI, AMX) against the reference kernels and against the
// same kernels on the GGUF layout: one and four activation rows at a
// time, the AMX tiles with a remainder, odd block counts and rows past
// the last whole group; GetRows must be exact.
func TestPackedMatMul(t *testing.T) {
	ref := reference.New()
	ks := variants(t, 2)
	delete(ks, "avx2")
	if len(ks) == 0 {
		t.Skip("no AVX512-VNNI on this CPU: weights are not packed")
	}
	for name, k := range variants(t, 1) {
		if name != "avx2" {
			ks[name+"/t1"] = k
		}
	}
	rng := rand.New(rand.NewPCG(13, 14))
	for _, tc := range []struct {
		typ     gguf.Type
		shapes  [][2]int
		batches []int
	}{
		{gguf.TypeQ4_0, [][2]int{{16, 32}, {35, 96}, {67, 512}, {256, 2816}}, []int{1, 2, 3, 4, 9, 17, 37}},
		{gguf.TypeQ8_0, [][2]int{{16, 32}, {35, 96}, {67, 512}, {256, 2816}}, []int{1, 2, 3, 4, 9, 17, 37}},
		{gguf.TypeQ4_K, [][2]int{{16, 256}, {35, 768}, {67, 512}, {256, 2816}}, []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 33}},
		{gguf.TypeQ6_K, [][2]int{{16, 256}, {35, 768}, {67, 512}, {256, 2816}}, []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 33}},
	} {
		typ := tc.typ
		for _, shape := range tc.shapes {
			rows, cols := shape[0], shape[1]
			w := randWeight(rng, typ, rows, cols)
			p := packedCopy(t, w)
			for _, batch := range tc.batches {
				x := randVec(rng, batch*cols)
				want := make([]float32, batch*rows)
				ref.MatMul(want, w, x, batch)
				for name, k := range ks {
					plain := make([]float32, batch*rows)
					k.MatMul(plain, w, x, batch)
					got := make([]float32, batch*rows+1)
					got[batch*rows] = 42
					k.MatMul(got, p, x, batch)
					if got[batch*rows] != 42 {
						t.Fatalf("%s %v: wrote past the output", name, typ)
					}
					what := fmt.Sprintf("%s %v %d×%d batch %d", name, typ, rows, cols, batch)
					if e := refdata.NMSE(got[:batch*rows], want); !(e <= 5e-4) {
						t.Errorf("%s: NMSE %.3g against the reference", what, e)
					}
					if e := refdata.NMSE(got[:batch*rows], plain); !(e <= 1e-10) {
						t.Errorf("%s: NMSE %.3g against the GGUF layout", what, e)
					}
				}
			}
			ids := []int32{0, int32(rows - 1), 15, int32(min(16, rows-1)), int32(rows / 2), 0}
			want := make([]float32, len(ids)*cols)
			ref.GetRows(want, w, ids)
			for name, k := range ks {
				got := make([]float32, len(ids)*cols)
				k.GetRows(got, p, ids)
				if e := refdata.NMSE(got, want); e != 0 {
					t.Errorf("%s %v %d×%d: GetRows NMSE %.3g, want exact", name, typ, rows, cols, e)
				}
			}
		}
	}
}

// TestPackedSharedInput multiplies one input by several packed weights
// in a row, as the engine does for Q, K and V: the per-input AMX scales
// and corrections are reused between them, and must be rebuilt when the
// weight type (the correction's offset) changes.
func TestPackedSharedInput(t *testing.T) {
	ref := reference.New()
	ks := variants(t, 2)
	delete(ks, "avx2")
	if len(ks) == 0 {
		t.Skip("no AVX512-VNNI on this CPU: weights are not packed")
	}
	rng := rand.New(rand.NewPCG(15, 16))
	const cols, batch = 512, 40
	x := randVec(rng, batch*cols)
	for name, k := range ks {
		for i, typ := range []gguf.Type{gguf.TypeQ4_0, gguf.TypeQ4_0, gguf.TypeQ8_0, gguf.TypeQ4_0, gguf.TypeQ8_0} {
			w := randWeight(rng, typ, 48, cols)
			want := make([]float32, batch*w.Rows)
			ref.MatMul(want, w, x, batch)
			got := make([]float32, batch*w.Rows)
			k.MatMul(got, packedCopy(t, w), x, batch)
			if e := refdata.NMSE(got, want); !(e <= 5e-4) {
				t.Errorf("%s weight %d (%v): NMSE %.3g", name, i, typ, e)
			}
		}
	}
}

// TestPackedModelQ4KM runs the small Q4_K_M llama of testdata/arch (its
// matrices Q4_K, the token embeddings too: GetRows reads packed rows,
// and Q6_K: the output, one attn_v and one ffn_down) through the engine
// with the weight copy, which packs the Q4_K and Q6_K matrices on a VNNI
// CPU without AMX, and with the weights left in the
// file mapping (GGUF layout): the greedy ids must equal llama.cpp's,
// and the prompt's logits must agree between the two.
func TestPackedModelQ4KM(t *testing.T) {
	root, err := refdata.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "testdata", "arch")
	b, err := os.ReadFile(filepath.Join(dir, "llama-q4_k_m.llamacpp.json"))
	if err != nil {
		t.Skip(err)
	}
	var ref struct {
		PromptIDs []int32 `json:"prompt_ids"`
		IDs       []int32 `json:"ids"`
	}
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "llama-q4_k_m.gguf")
	run := func(noCopy bool) ([]int32, []float32, bool) {
		ki, err := NewWithOptions(Options{Threads: 2, NoWeightCopy: noCopy})
		if err != nil {
			t.Fatal(err)
		}
		k := ki.(*Kernels)
		defer k.Close()
		be := engine.NewBackend(k, engine.Options{Name: Name, Threads: 2})
		ids, logits := greedy(t, be, path, ref.PromptIDs, len(ref.IDs))
		return ids, logits, !noCopy && k.packs(&engine.Weight{Type: gguf.TypeQ4_K, Rows: 16, Cols: 256, Data: make([]byte, 16*144)})
	}
	mapped, lm, _ := run(true)
	packed, lp, didPack := run(false)
	if !didPack {
		t.Log("Q4_K weights are not packed here (no VNNI, or AMX): the GGUF layout twice")
	}
	for i, id := range ref.IDs {
		if mapped[i] != id || packed[i] != id {
			t.Fatalf("token %d: %d in the GGUF layout, %d packed, llama.cpp %d\nmapped %v\npacked %v\nllama.cpp %v", i, mapped[i], packed[i], id, mapped, packed, ref.IDs)
		}
	}
	if e := refdata.NMSE(lp, lm); !(e <= 1e-8) {
		t.Errorf("prompt logits: NMSE %.3g packed against the GGUF layout", e)
	}
}

//go:build cgo && vulkan_headers

package vulkan

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/realmrt/realm/gguf"
	"github.com/realmrt/realm/internal/backend/reference"
	"github.com/realmrt/realm/internal/engine"
	"github.com/realmrt/realm/internal/refdata"
)

// testDevice opens the device once per test binary; the test skips only
// when the machine has no Vulkan loader or device at all.
func testDevice(t testing.TB) *Device {
	t.Helper()
	shared.once.Do(func() {
		shared.d, shared.infos, shared.err = OpenDevice(-1)
	})
	if shared.err != nil {
		if errNoVulkan(shared.err, shared.infos) {
			t.Skipf("no Vulkan device on this machine (install libvulkan1 mesa-vulkan-drivers for lavapipe, libvulkan-dev to build): %v", shared.err)
		}
		t.Fatalf("open device: %v", shared.err)
	}
	return shared.d
}

// shared is the test binary's device (tests only).
var shared struct {
	once  sync.Once
	d     *Device
	infos []DeviceInfo
	err   error
}

// errNoVulkan reports whether OpenDevice failed for want of a loader or
// any device (as opposed to a device that failed its checks).
func errNoVulkan(err error, infos []DeviceInfo) bool {
	return len(infos) == 0 && (strings.Contains(err.Error(), "no Vulkan loader") || strings.Contains(err.Error(), "no Vulkan device") ||
		strings.Contains(err.Error(), "vkCreateInstance"))
}

func randVec(r *rand.Rand, n int, scale float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64() * scale)
	}
	return v
}

func quantWeight(t *testing.T, typ gguf.Type, rows, cols int, vals []float32) *engine.Weight {
	t.Helper()
	rb, err := typ.RowBytes(int64(cols))
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, int(rb)*rows)
	if !gguf.CanQuantize(typ) {
		return randomBlocks(t, typ, rows, cols, data)
	}
	if err := gguf.Quantize(data, vals, typ); err != nil {
		t.Fatalf("quantize %v: %v", typ, err)
	}
	return &engine.Weight{Name: "w", Type: typ, Rows: rows, Cols: cols, Data: data}
}

// randomBlocks fills a weight of a type gguf cannot quantize with random
// blocks whose f16 scales are set to sane values.
func randomBlocks(t *testing.T, typ gguf.Type, rows, cols int, data []byte) *engine.Weight {
	t.Helper()
	scales := map[gguf.Type][]int{gguf.TypeQ2_K: {80, 82}, gguf.TypeQ3_K: {108}, gguf.TypeQ5_K: {0, 2}}
	offs, ok := scales[typ]
	if !ok {
		t.Fatalf("no random block layout for %v", typ)
	}
	r := rand.New(rand.NewPCG(uint64(typ), uint64(cols)))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	bs := typ.BlockBytes()
	for b := 0; b+bs <= len(data); b += bs {
		for _, o := range offs {
			h := gguf.F32ToF16(float32(r.Float64()*0.02 + 0.001))
			data[b+o], data[b+o+1] = byte(h), byte(h>>8)
		}
	}
	return &engine.Weight{Name: "w", Type: typ, Rows: rows, Cols: cols, Data: data}
}

func checkNMSE(t *testing.T, what string, got, want []float32, limit float64) {
	t.Helper()
	for i, v := range got {
		if math.IsNaN(float64(v)) {
			t.Fatalf("%s: NaN at %d", what, i)
		}
	}
	n := refdata.NMSE(got, want)
	if !(n <= limit) {
		t.Errorf("%s: NMSE %.3g > %.3g", what, n, limit)
	}
}

func TestMatMulAndGetRows(t *testing.T) {
	d := testDevice(t)
	k, ref := NewKernels(d), reference.New()
	r := rand.New(rand.NewPCG(1, 2))
	cases := []struct {
		typ        gguf.Type
		rows, cols int
		batch      int
		nmse       float64
	}{
		{gguf.TypeF32, 7, 13, 1, 1e-10},
		{gguf.TypeF32, 33, 67, 3, 1e-10},
		{gguf.TypeF16, 9, 35, 2, 1e-10},
		{gguf.TypeQ8_0, 11, 96, 3, 1e-10},
		{gguf.TypeQ4_0, 13, 64, 1, 1e-10},
		{gguf.TypeQ4_0, 5, 160, 4, 1e-10},
		{gguf.TypeQ4_K, 3, 512, 2, 1e-10},
		{gguf.TypeQ6_K, 5, 256, 3, 1e-10},
		{gguf.TypeBF16, 4, 33, 5, 1e-10},
		{gguf.TypeQ4_1, 3, 64, 2, 1e-10},
		{gguf.TypeQ5_0, 3, 96, 2, 1e-10},
		{gguf.TypeQ5_1, 3, 64, 6, 1e-10},
		{gguf.TypeQ2_K, 3, 256, 2, 1e-10},
		{gguf.TypeQ3_K, 3, 512, 1, 1e-10},
		{gguf.TypeQ5_K, 3, 256, 2, 1e-10},
		{gguf.TypeIQ4_NL, 5, 96, 3, 1e-10},
		{gguf.TypeIQ4_XS, 3, 512, 2, 1e-10},
		// Rows of ≥ 2048 take the 32-elements-per-thread path.
		{gguf.TypeF32, 2, 2080, 1, 1e-10},
		{gguf.TypeF16, 2, 2048, 5, 1e-10},
		{gguf.TypeQ8_0, 3, 2048, 2, 1e-10},
		{gguf.TypeQ4_0, 3, 2080, 3, 1e-10},
		{gguf.TypeQ4_K, 2, 2048, 1, 1e-10},
		{gguf.TypeQ6_K, 2, 2304, 2, 1e-10},
		{gguf.TypeQ5_K, 2, 2048, 4, 1e-10},
		{gguf.TypeIQ4_NL, 2, 2080, 2, 1e-10},
		{gguf.TypeIQ4_XS, 2, 2304, 5, 1e-10},
		{gguf.TypeF32, 2, 2049, 2, 1e-10},
		// Batches of ≥ tiledBatchMin take the tiled path: partial
		// tiles in rows, columns and k, several tiles each way.
		{gguf.TypeF32, 67, 35, 8, 1e-10},
		{gguf.TypeF32, 130, 67, 70, 1e-10},
		{gguf.TypeF16, 9, 35, 65, 1e-10},
		{gguf.TypeBF16, 64, 64, 64, 1e-10},
		{gguf.TypeQ8_0, 65, 96, 17, 1e-10},
		{gguf.TypeQ4_0, 70, 160, 129, 1e-10},
		{gguf.TypeQ4_K, 33, 512, 9, 1e-10},
		{gguf.TypeQ6_K, 5, 256, 64, 1e-10},
		{gguf.TypeQ5_K, 3, 256, 12, 1e-10},
		{gguf.TypeQ4_0, 3, 2080, 10, 1e-10},
		// Single columns of rows that are a multiple of 32 take the
		// four-rows-per-workgroup path: a partial last group of rows.
		{gguf.TypeQ8_0, 9, 2048, 1, 1e-10},
		{gguf.TypeF16, 6, 96, 1, 1e-10},
		{gguf.TypeQ6_K, 7, 256, 1, 1e-10},
		{gguf.TypeBF16, 4, 64, 1, 1e-10},
		{gguf.TypeQ5_0, 5, 4096, 1, 1e-10},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%v_%dx%dx%d", tc.typ, tc.rows, tc.cols, tc.batch), func(t *testing.T) {
			w := quantWeight(t, tc.typ, tc.rows, tc.cols, randVec(r, tc.rows*tc.cols, 1))
			x := randVec(r, tc.cols*tc.batch, 1)
			got := make([]float32, tc.rows*tc.batch)
			want := make([]float32, tc.rows*tc.batch)
			k.MatMul(got, w, x, tc.batch)
			ref.MatMul(want, w, x, tc.batch)
			checkNMSE(t, "matmul", got, want, tc.nmse)

			ids := []int32{int32(tc.rows - 1), 0, int32(tc.rows / 2), 0}
			g := make([]float32, len(ids)*tc.cols)
			gw := make([]float32, len(ids)*tc.cols)
			k.GetRows(g, w, ids)
			ref.GetRows(gw, w, ids)
			for i := range g {
				if g[i] != gw[i] {
					t.Fatalf("get_rows element %d = %g, want %g (exact)", i, g[i], gw[i])
				}
			}
		})
	}
}

func TestSplitWeight(t *testing.T) {
	// A weight split over several buffers must give the same product.
	d := testDevice(t)
	r := rand.New(rand.NewPCG(3, 4))
	w := quantWeight(t, gguf.TypeQ4_0, 37, 64, randVec(r, 37*64, 1))
	x := randVec(r, 64*2, 1)
	want := make([]float32, 37*2)
	reference.New().MatMul(want, w, x, 2)
	// Five rows of 36 bytes per buffer (the same device, another limit).
	small := &Device{Info: d.Info, inst: d.inst, vk: d.vk, pipes: d.pipes, segCap: 5 * 36}
	got := make([]float32, 37*2)
	k := &Kernels{d: small}
	k.MatMul(got, w, x, 2)
	checkNMSE(t, "split matmul", got, want, 1e-10)
	ids := []int32{36, 0, 5, 4, 20}
	g, gw := make([]float32, 5*64), make([]float32, 5*64)
	k.GetRows(g, w, ids)
	reference.New().GetRows(gw, w, ids)
	checkNMSE(t, "split get_rows", g, gw, 0)
}

func TestElementwise(t *testing.T) {
	d := testDevice(t)
	k, ref := NewKernels(d), reference.New()
	r := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{1, 63, 65, 1000} {
		a, b := randVec(r, n, 3), randVec(r, n, 3)
		for _, op := range []string{"add", "mul", "silu_mul"} {
			got, want := make([]float32, n), make([]float32, n)
			switch op {
			case "add":
				k.Add(got, a, b)
				ref.Add(want, a, b)
			case "mul":
				k.Mul(got, a, b)
				ref.Mul(want, a, b)
			default:
				k.SiLUMul(got, a, b)
				ref.SiLUMul(want, a, b)
			}
			checkNMSE(t, fmt.Sprintf("%s n=%d", op, n), got, want, 1e-12)
		}
	}
}

func TestNormSoftmaxRoPE(t *testing.T) {
	d := testDevice(t)
	k, ref := NewKernels(d), reference.New()
	r := rand.New(rand.NewPCG(7, 8))
	for _, sh := range []struct{ n, rows int }{{1, 1}, {7, 3}, {100, 5}, {300, 2}} {
		x, w := randVec(r, sh.n*sh.rows, 2), randVec(r, sh.n, 1)
		got, want := make([]float32, len(x)), make([]float32, len(x))
		k.RMSNorm(got, x, w, sh.n, 1e-5)
		ref.RMSNorm(want, x, w, sh.n, 1e-5)
		checkNMSE(t, fmt.Sprintf("rmsnorm %v", sh), got, want, 1e-12)

		s1 := append([]float32(nil), x...)
		s2 := append([]float32(nil), x...)
		s1[0] = float32(math.Inf(-1))
		s2[0] = s1[0]
		k.Softmax(s1, sh.n)
		ref.Softmax(s2, sh.n)
		checkNMSE(t, fmt.Sprintf("softmax %v", sh), s1, s2, 1e-12)
	}
	for _, sh := range []struct{ headDim, nHeads, nDims int }{{8, 3, 8}, {6, 2, 4}, {64, 5, 64}} {
		pos := []int32{0, 1, 7, 300}
		x := randVec(r, sh.headDim*sh.nHeads*len(pos), 1)
		y := append([]float32(nil), x...)
		k.RoPE(x, pos, sh.nHeads, sh.headDim, sh.nDims, 10000)
		ref.RoPE(y, pos, sh.nHeads, sh.headDim, sh.nDims, 10000)
		checkNMSE(t, fmt.Sprintf("rope %v", sh), x, y, 1e-12)
	}
}

func TestAttention(t *testing.T) {
	d := testDevice(t)
	k, ref := NewKernels(d), reference.New()
	r := rand.New(rand.NewPCG(9, 10))
	cases := []engine.AttentionParams{
		{NHead: 2, NHeadKV: 1, HeadDim: 8, Batch: 1, StartPos: 0},
		{NHead: 4, NHeadKV: 2, HeadDim: 6, Batch: 3, StartPos: 5},
		{NHead: 3, NHeadKV: 3, HeadDim: 70, Batch: 2, StartPos: 300}, // crosses a 256-key tile
	}
	for _, p := range cases {
		p.Scale = float32(1 / math.Sqrt(float64(p.HeadDim)))
		n := p.StartPos + p.Batch
		q := randVec(r, p.Batch*p.NHead*p.HeadDim, 1)
		kc, vc := randVec(r, n*p.NHeadKV*p.HeadDim, 1), randVec(r, n*p.NHeadKV*p.HeadDim, 1)
		got, want := make([]float32, len(q)), make([]float32, len(q))
		k.Attention(got, q, kc, vc, p)
		ref.Attention(want, q, kc, vc, p)
		checkNMSE(t, fmt.Sprintf("attention %+v", p), got, want, 1e-10)
	}
}

func TestKernelErrorsPanic(t *testing.T) {
	d := testDevice(t)
	k := NewKernels(d)
	defer func() {
		if recover() == nil {
			t.Fatal("a weight type without a shader did not panic")
		}
	}()
	w := &engine.Weight{Name: "w", Type: gguf.TypeQ8_K, Rows: 1, Cols: 256, Data: make([]byte, 292)}
	k.MatMul(make([]float32, 1), w, make([]float32, 256), 1)
}

package gguf

import (
	"encoding/binary"
	"math"
	"testing"
)

func tensorF32(t *testing.T, m *Mapped, ti *TensorInfo) []float32 {
	t.Helper()
	data, err := m.TensorData(ti)
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float32, ti.Elements())
	if err := Dequantize(x, data, ti.Type); err != nil {
		t.Fatalf("%s: %v", ti.Name, err)
	}
	return x
}

// TestDequantizeReference dequantizes the llama-quantize Q8_0 and Q4_0
// stories files and checks every element against the F32 original: the
// error must stay within half a quantization step (plus f16 rounding of
// the scale) of each block.
func TestDequantizeReference(t *testing.T) {
	src, err := Open(refModel(t, "stories260K.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	for _, name := range []string{"stories260K-Q8_0.gguf", "stories260K-Q4_0.gguf"} {
		t.Run(name, func(t *testing.T) {
			q, err := Open(refModel(t, name))
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			seen := map[Type]int{}
			for i := range q.Tensors {
				qt := &q.Tensors[i]
				st, ok := src.Tensor(qt.Name)
				if !ok {
					t.Fatalf("tensor %s missing from F32 file", qt.Name)
				}
				want := tensorF32(t, src, st)
				got := tensorF32(t, q, qt)
				seen[qt.Type]++
				data, _ := q.TensorData(qt)
				be, bb := qt.Type.BlockElems(), qt.Type.BlockBytes()
				for b := 0; b < len(got)/be; b++ {
					var step float64
					switch qt.Type {
					case TypeQ8_0, TypeQ4_0:
						step = math.Abs(float64(F16ToF32(binary.LittleEndian.Uint16(data[b*bb:]))))
					case TypeF16:
						step = math.Abs(float64(want[b])) * 1.0 / 1024
						step = max(step, 6e-8)
					case TypeF32:
						step = 0
					default:
						t.Fatalf("unexpected type %s", qt.Type)
					}
					var amax float64
					for j := b * be; j < (b+1)*be; j++ {
						amax = max(amax, math.Abs(float64(want[j])))
					}
					tol := step/2 + amax*1e-3 + 1e-7
					for j := b * be; j < (b+1)*be; j++ {
						etol := tol
						if qt.Type == TypeQ4_0 && math.Abs(float64(want[j])) > 7*step {
							// d = -max/8: the side opposite the extreme
							// only reaches 7|d| and clips.
							etol = step + amax*1e-3 + 1e-7
						}
						if e := math.Abs(float64(got[j] - want[j])); e > etol {
							t.Fatalf("%s %s element %d: got %g want %g (err %g > tol %g)", qt.Name, qt.Type, j, got[j], want[j], e, etol)
						}
					}
				}
			}
			if seen[TypeQ8_0] == 0 {
				t.Errorf("no Q8_0 tensors checked: %v", seen)
			}
			t.Logf("tensor types: %v", seen)
		})
	}
}

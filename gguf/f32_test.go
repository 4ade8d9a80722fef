package gguf

import (
	"bytes"
	"math"
	"testing"
)

func TestF32Bytes(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []float32
		want []byte
	}{
		{"empty", nil, []byte{}},
		{"one", []float32{1}, []byte{0x00, 0x00, 0x80, 0x3f}},
		{"signs", []float32{-2, float32(math.Inf(1))}, []byte{0x00, 0x00, 0x00, 0xc0, 0x00, 0x00, 0x80, 0x7f}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := F32Bytes(tc.in)
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("F32Bytes(%v) = % x, want % x", tc.in, got, tc.want)
			}
			back := make([]float32, len(tc.in))
			if err := Dequantize(back, got, TypeF32); err != nil {
				t.Fatal(err)
			}
			for i := range back {
				if math.Float32bits(back[i]) != math.Float32bits(tc.in[i]) {
					t.Fatalf("round trip [%d] = %v, want %v", i, back[i], tc.in[i])
				}
			}
		})
	}
}

//go:build vulkan && cgo

package vulkan

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/realmrt/realm/gguf"
)

func TestZZTiming(t *testing.T) {
	d := testDevice(t)
	k := NewKernels(d)
	r := rand.New(rand.NewPCG(1, 2))
	for _, typ := range []gguf.Type{gguf.TypeQ4_0, gguf.TypeF32} {
		w := quantWeight(t, typ, 32000, 256, randVec(r, 32000*256, 1))
		for _, b := range []int{1, 32} {
			x := randVec(r, 256*b, 1)
			out := make([]float32, 32000*b)
			k.MatMul(out, w, x, b)
			st := time.Now()
			k.MatMul(out, w, x, b)
			t.Logf("%v batch %d: %v", typ, b, time.Since(st))
		}
	}
}

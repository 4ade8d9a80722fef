package cpuneon

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/realmrt/realm/gguf"
)

// BenchmarkMatMul measures MatMul on a 4096×4096 weight (TinyLlama-ish
// rows) for decode (batch 1) and a prompt tile (batch 16), on each path
// this CPU runs. Bytes/op is the weight size, so MB/s is weight bandwidth.
// Under QEMU the numbers mean nothing; run it on arm64 hardware:
//
//	GOARCH=arm64 go test -c ./internal/backend/cpu-neon && ./cpu-neon.test -test.run '^$' -test.bench MatMul
func BenchmarkMatMul(b *testing.B) {
	const rows, cols = 4096, 4096
	rng := rand.New(rand.NewPCG(1, 1))
	for _, cfg := range configs() {
		k, err := newKernels(0, cfg.dot)
		if err != nil {
			b.Fatal(err)
		}
		for _, ty := range []gguf.Type{gguf.TypeF32, gguf.TypeF16, gguf.TypeQ8_0, gguf.TypeQ4_0, gguf.TypeQ4_K, gguf.TypeQ6_K} {
			b.Run(fmt.Sprintf("%s/%s", cfg.name, ty), func(b *testing.B) {
				w := quantWeight(b, rng, ty, rows, cols) // built only when selected
				for _, batch := range []int{1, 16} {
					x := randVec(rng, batch*cols, 1)
					out := make([]float32, batch*rows)
					b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
						b.SetBytes(int64(len(w.Data)))
						for b.Loop() {
							k.MatMul(out, w, x, batch)
						}
					})
				}
			})
		}
		k.Close()
	}
}

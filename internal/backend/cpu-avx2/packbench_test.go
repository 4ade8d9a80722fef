//go:build amd64

package cpuavx2

import (
	"math/rand/v2"
	"testing"

	"github.com/realmrt/realm/gguf"
)

// BenchmarkPackRows measures packing a 5632×2048 weight into the
// 16-row layout (done once per weight at load), bytes per second.
func BenchmarkPackRows(b *testing.B) {
	rng := rand.New(rand.NewPCG(9, 9))
	for _, typ := range []gguf.Type{gguf.TypeQ4_0, gguf.TypeQ8_0, gguf.TypeQ4_K, gguf.TypeQ6_K} {
		w := randWeight(rng, typ, 5632, 2048)
		dst := make([]byte, len(w.Data))
		b.Run(typ.String(), func(b *testing.B) {
			b.SetBytes(int64(len(w.Data)))
			for b.Loop() {
				packRows(dst, w.Data, w.Type, w.Rows, w.Cols)
			}
		})
	}
}

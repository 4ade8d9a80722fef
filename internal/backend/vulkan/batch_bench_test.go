//go:build cgo && vulkan_headers

package vulkan

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/realmrt/realm/backends"
)

// BenchmarkDecodeBatch compares n sessions decoding one token each as
// one merged pass (DecodeBatch) with the same tokens decoded session by
// session, on the model in $REALM_BENCH_MODEL (skipped when unset).
// Reports tokens/s.
func BenchmarkDecodeBatch(b *testing.B) {
	path := os.Getenv("REALM_BENCH_MODEL")
	if path == "" {
		b.Skip("set REALM_BENCH_MODEL to a GGUF file")
	}
	be := testBackend(b)
	ctx := context.Background()
	mi, err := be.LoadModel(ctx, backends.LoadRequest{Path: path})
	if err != nil {
		b.Fatal(err)
	}
	defer be.UnloadModel(ctx, mi.ID)
	for _, n := range []int{1, 4} {
		for _, merged := range []bool{false, true} {
			b.Run(fmt.Sprintf("sessions%d/merged=%t", n, merged), func(b *testing.B) {
				var items []BatchItem
				for i := range n {
					s, err := be.OpenSession(ctx, mi.ID, b.N+16)
					if err != nil {
						b.Fatal(err)
					}
					defer be.CloseSession(ctx, s)
					items = append(items, BatchItem{Session: s, Tokens: []int32{int32(1 + i)}})
				}
				b.ResetTimer()
				for range b.N {
					if merged {
						if _, err := be.DecodeBatch(ctx, items); err != nil {
							b.Fatal(err)
						}
						continue
					}
					for _, it := range items {
						if _, err := be.Decode(ctx, backends.DecodeRequest{Session: it.Session, Tokens: it.Tokens, Want: backends.WantLogits}); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "tok/s")
			})
		}
	}
}

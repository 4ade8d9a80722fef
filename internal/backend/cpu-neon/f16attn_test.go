package cpuneon

import (
	"testing"

	"github.com/realmrt/realm/internal/engine/kvtest"
)

// TestAttentionF16 checks the fused f16 attention (1 and 3 threads)
// against the reference kernels.
func TestAttentionF16(t *testing.T) {
	for _, threads := range []int{1, 3} {
		k, err := newKernels(threads, HasDotProd())
		if err != nil {
			t.Fatal(err)
		}
		kvtest.Check(t, k, 2e-6)
		k.Close()
	}
}

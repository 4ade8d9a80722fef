//go:build amd64

package cpuavx2

import (
	"testing"

	"github.com/realmrt/realm/internal/engine/kvtest"
)

// TestAttentionF16 checks the fused f16 attention (1 and 2 threads)
// against the reference kernels.
func TestAttentionF16(t *testing.T) {
	for _, threads := range []int{1, 2} {
		for name, k := range variants(t, threads) {
			t.Run(name, func(t *testing.T) { kvtest.Check(t, k, 2e-6) })
		}
	}
}

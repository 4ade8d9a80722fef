package reference_test

import (
	"testing"

	"github.com/realmrt/realm/internal/backend/reference"
	"github.com/realmrt/realm/internal/engine/kvtest"
)

// TestAttentionF16 checks the blocked online-softmax attention over f16
// blocks against the two-pass f32 Attention.
func TestAttentionF16(t *testing.T) {
	kvtest.Check(t, reference.Kernels{}, 1e-6)
}

package vulkan

import (
	"context"
	"fmt"

	"github.com/realmrt/realm/backends"
)

// Embed fails with ErrUnsupported: the device executor has no encoder
// (non-causal attention, LayerNorm, pooling) graph ops yet, so
// embedding models run on the CPU backends.
func (*Backend) Embed(_ context.Context, req backends.EmbedRequest) (*backends.EmbedResult, error) {
	return nil, fmt.Errorf("vulkan: model %d: %w: embeddings are not implemented on the vulkan backend (use a CPU backend)", req.Model, backends.ErrUnsupported)
}

package backends_test

import (
	"context"
	"slices"
	"testing"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/internal/backend/reference"
	"github.com/realmrt/realm/internal/engine"
)

// preparingBackend reports fixed models in Info.Preparing.
type preparingBackend struct {
	backends.Backend
	ids []backends.ModelID
}

func (p preparingBackend) Info(ctx context.Context) (*backends.Info, error) {
	info, err := p.Backend.Info(ctx)
	if err == nil {
		info.Preparing = p.ids
	}
	return info, err
}

// TestPreparingOverGRPC checks that Info.Preparing crosses the plugin
// protocol unchanged, and is empty when nothing is being prepared.
func TestPreparingOverGRPC(t *testing.T) {
	ctx := context.Background()
	for _, ids := range [][]backends.ModelID{nil, {3}, {1, 7, 1 << 40}} {
		c := connect(t, preparingBackend{Backend: engine.NewBackend(reference.New(), engine.Options{Name: "reference"}), ids: ids})
		info, err := c.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(info.Preparing, ids) {
			t.Errorf("Preparing = %v, want %v", info.Preparing, ids)
		}
	}
}

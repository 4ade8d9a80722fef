//go:build !cgo || !vulkan_headers

package vulkan

import (
	"context"
	"errors"
	"fmt"

	"github.com/realmrt/realm/backends"
)

// errNotBuilt is what every call returns in a build without Vulkan.
var errNotBuilt = errors.New("vulkan: this binary was built without Vulkan support: it needs cgo and the vulkan_headers build tag, which the Makefile sets when the Vulkan headers are installed (Debian: apt-get install libvulkan-dev, then make)")

// Backend is the Vulkan backend; in this build (without cgo or without
// the vulkan_headers tag) it has no
// device and every call but Info fails, so the host's
// probe vetoes it with the reason.
type Backend struct{}

var _ backends.Backend = (*Backend)(nil)

// New returns a Backend without a device.
func New(Options) *Backend { return &Backend{} }

// Close does nothing.
func (*Backend) Close() error { return nil }

// Err says that this build has no Vulkan support.
func (*Backend) Err() error { return errNotBuilt }

// Devices returns nothing: no device was probed.
func (*Backend) Devices() []DeviceInfo { return nil }

// Info reports the backend with no devices.
func (*Backend) Info(ctx context.Context) (*backends.Info, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return &backends.Info{Name: Name, Version: Version, ProtocolVersion: backends.ProtocolVersion, Ops: backends.Ops()}, nil
}

// LoadModel fails: no device.
func (*Backend) LoadModel(context.Context, backends.LoadRequest) (*backends.ModelInfo, error) {
	return nil, errNotBuilt
}

// UnloadModel fails: nothing is loaded.
func (*Backend) UnloadModel(_ context.Context, id backends.ModelID) error {
	return fmt.Errorf("vulkan: model %d: %w", id, backends.ErrNotFound)
}

// OpenSession fails: no device.
func (*Backend) OpenSession(context.Context, backends.ModelID, int) (backends.SessionID, error) {
	return 0, errNotBuilt
}

// Decode fails: no device.
func (*Backend) Decode(context.Context, backends.DecodeRequest) (*backends.DecodeResult, error) {
	return nil, errNotBuilt
}

// Truncate fails: no session exists.
func (*Backend) Truncate(_ context.Context, id backends.SessionID, _ int) error {
	return fmt.Errorf("vulkan: session %d: %w", id, backends.ErrNotFound)
}

// CloseSession fails: no session exists.
func (*Backend) CloseSession(_ context.Context, id backends.SessionID) error {
	return fmt.Errorf("vulkan: session %d: %w", id, backends.ErrNotFound)
}

// TensorOp fails: no device.
func (*Backend) TensorOp(context.Context, backends.TensorOpRequest) (*backends.TensorOpResult, error) {
	return nil, errNotBuilt
}

// Command realm-backend-vulkan is the Vulkan GPU backend plugin: the
// engine's forward-pass graph of every architecture recorded into
// command buffers of compute shaders on the best usable Vulkan device
// (REALM_VULKAN_DEVICE=<index> pins one; REALM_VULKAN_MEMORY_LIMIT=<bytes>
// caps the device memory it uses), served over go-plugin/gRPC.
// The SDK points descriptor 1 at stderr before anything else runs, so
// the Vulkan loader's and drivers' stdout output cannot corrupt the
// handshake. The Realm host starts it; it is not meant to be run by hand.
package main

import (
	"fmt"
	"os"
	"strconv"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/backends/sdk"
	"github.com/realmrt/realm/internal/backend/vulkan"
)

func main() {
	sdk.Serve(sdk.Config{
		Name:    vulkan.Name,
		Version: vulkan.Version,
		NewBackend: func(int) (backends.Backend, error) {
			opts := vulkan.Options{Device: -1}
			if v := os.Getenv("REALM_VULKAN_DEVICE"); v != "" {
				n, err := strconv.Atoi(v)
				if err != nil || n < 0 {
					return nil, fmt.Errorf("REALM_VULKAN_DEVICE=%q is not a device index", v)
				}
				opts.Device = n
			}
			if v := os.Getenv("REALM_VULKAN_MEMORY_LIMIT"); v != "" {
				n, err := strconv.ParseUint(v, 10, 64)
				if err != nil {
					return nil, fmt.Errorf("REALM_VULKAN_MEMORY_LIMIT=%q is not a byte count", v)
				}
				opts.MemoryLimit = n
			}
			b := vulkan.New(opts)
			if err := b.Err(); err != nil {
				fmt.Fprintf(os.Stderr, "vulkan: no usable device: %v\n", err)
			}
			for _, d := range b.Devices() {
				if d.Err != "" {
					fmt.Fprintf(os.Stderr, "vulkan: device %d (%s) rejected: %s\n", d.Index, d.Name, d.Err)
				}
			}
			return b, nil
		},
	})
}

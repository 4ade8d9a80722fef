// Command realm-backend-cpu-neon is the arm64 NEON backend plugin: the
// kernels of internal/backend/cpu-neon (SDOT integer dot products when the CPU
// has them, SMULL/SADALP otherwise) behind the shared forward pass,
// served over go-plugin/gRPC. The Realm host starts it; it is not meant
// to be run by hand. It builds on every architecture (with portable
// kernels off arm64), but plugins.hcl declares it for arm64 only.
package main

import (
	"github.com/realmrt/realm/backends/sdk"
	"github.com/realmrt/realm/internal/engine"

	cpuneon "github.com/realmrt/realm/internal/backend/cpu-neon"
)

// version is the cpu-neon plugin's version.
const version = "0.1.0"

func main() {
	sdk.Serve(sdk.Config{
		Name:     cpuneon.Name,
		Version:  version,
		Features: cpuneon.Features(),
		NewKernels: func(threads int) (engine.Kernels, error) {
			return cpuneon.New(threads)
		},
	})
}

// Command realm-backend-cpu-avx2 is the AVX2 CPU backend plugin: the
// assembly kernels of internal/backend/cpu-avx2 behind the shared forward pass,
// served over go-plugin/gRPC. The Realm host starts it; it is not meant
// to be run by hand.
package main

import (
	"os"

	"github.com/realmrt/realm/backends/sdk"
	cpuavx2 "github.com/realmrt/realm/internal/backend/cpu-avx2"
	"github.com/realmrt/realm/internal/engine"
)

// version is the cpu-avx2 plugin's version.
const version = "0.1.0"

func main() {
	sdk.Serve(sdk.Config{
		Name:     cpuavx2.Name,
		Version:  version,
		Features: cpuavx2.Features(),
		NewKernels: func(threads int) (engine.Kernels, error) {
			return cpuavx2.NewWithOptions(cpuavx2.Options{
				Threads:      threads,
				NoWeightCopy: os.Getenv("REALM_AVX2_NO_WEIGHT_COPY") != "",
				NoRepack:     os.Getenv("REALM_AVX2_NO_REPACK") != "",
			})
		},
	})
}

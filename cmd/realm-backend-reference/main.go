// Command realm-backend-reference is the reference backend plugin: the
// scalar, obviously-correct kernels of internal/backend/reference behind the
// shared forward pass, served over go-plugin/gRPC. The Realm host starts
// it; it is not meant to be run by hand.
package main

import (
	"github.com/realmrt/realm/backends/sdk"
	"github.com/realmrt/realm/internal/backend/reference"
	"github.com/realmrt/realm/internal/engine"
)

// version is the reference plugin's version.
const version = "0.1.0"

func main() {
	sdk.Serve(sdk.Config{
		Name:    "reference",
		Version: version,
		NewKernels: func(int) (engine.Kernels, error) {
			return reference.New(), nil
		},
	})
}

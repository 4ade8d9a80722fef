//go:build !amd64

package cpuavx2

import (
	"fmt"
	"runtime"

	"github.com/realmrt/realm/internal/engine"
)

// New fails: the kernels exist only for amd64.
func New(threads int) (engine.Kernels, error) {
	return NewWithOptions(Options{Threads: threads})
}

// NewWithOptions fails: the kernels exist only for amd64.
func NewWithOptions(opts Options) (engine.Kernels, error) {
	return nil, fmt.Errorf("cpuavx2: not available on %s", runtime.GOARCH)
}

// hasAMX reports false: the AMX kernels exist only for amd64.
func hasAMX() bool { return false }

// Package cpuneon implements the engine.Kernels interface for arm64 with
// NEON: matrix products over F32, F16, Q8_0, Q4_0, Q4_K and Q6_K weights
// (integer dot products with SDOT when the CPU has the dot-product
// extension, SMULL/SADALP otherwise) and vectorised element-wise kernels.
// On other architectures the same code runs with portable Go versions of
// the vector primitives, so the package builds and tests everywhere.
package cpuneon

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/realmrt/realm/backends/engine"
)

// Path names one dot-product code path.
type Path int

// The dot-product code paths counted by Stats.
const (
	PathF32     Path = iota // NEON FMLA over f32 (F32 weights)
	PathF16                 // FCVTL widening then FMLA (F16 weights)
	PathSDOT                // integer block dot with SDOT (ASIMDDP)
	PathSMULL               // integer block dot with SMULL/SADALP (plain NEON)
	PathGo                  // portable Go (non-arm64 build)
	PathDequant             // dequantize row + f32 dot (other weight types)
	numPaths
)

// String returns the name of p.
func (p Path) String() string {
	switch p {
	case PathF32:
		return "f32-fmla"
	case PathF16:
		return "f16-fcvtl"
	case PathSDOT:
		return "sdot"
	case PathSMULL:
		return "smull"
	case PathGo:
		return "go"
	case PathDequant:
		return "dequant"
	}
	return fmt.Sprintf("path(%d)", int(p))
}

// Stats counts, per code path, how many weight rows × activation rows
// were computed through it since the kernels were created.
type Stats struct {
	Rows [numPaths]uint64
}

// Get returns the count for path p.
func (s Stats) Get(p Path) uint64 {
	if p < 0 || p >= numPaths {
		return 0
	}
	return s.Rows[p]
}

// String formats the non-zero counters, e.g. "sdot=120 f32-fmla=64".
func (s Stats) String() string {
	out := ""
	for p := Path(0); p < numPaths; p++ {
		if s.Rows[p] == 0 {
			continue
		}
		if out != "" {
			out += " "
		}
		out += fmt.Sprintf("%s=%d", p, s.Rows[p])
	}
	if out == "" {
		return "none"
	}
	return out
}

// Kernels is the NEON implementation of engine.Kernels. Create it with
// New and Close it to stop its worker pool. It is safe for concurrent
// use; concurrent MatMul calls are serialized (each already uses every
// thread).
type Kernels struct {
	pool    *pool
	dot     bool // use the SDOT path
	threads int
	counts  [numPaths]atomic.Uint64
	mu      sync.Mutex // serializes MatMul (shared scratch and activation buffers)
	scratch []scratch  // per worker
	act     q8Act      // quantized activations of the current MatMul
	xh      []float32  // f16-rounded activations of the current MatMul
}

var _ engine.Kernels = (*Kernels)(nil)
var _ engine.Closer = (*Kernels)(nil)
var _ engine.TypeLister = (*Kernels)(nil)

// New returns NEON kernels running on threads worker threads (threads ≤ 0
// means runtime.NumCPU()). The SDOT path is used when the CPU reports the
// ASIMDDP feature.
func New(threads int) (engine.Kernels, error) {
	return newKernels(threads, HasDotProd())
}

// HasDotProd reports whether this CPU has the Armv8.2 dot-product
// instructions (ASIMDDP) and this build can use them.
func HasDotProd() bool { return hasDotProd() }

// Features returns the cpuid feature names (klauspost/cpuid FeatureID
// spelling) the kernels use on this CPU: "ASIMD" on arm64, plus "ASIMDDP"
// when the SDOT path is active; none elsewhere.
func Features() []string {
	if runtime.GOARCH != "arm64" {
		return nil
	}
	if hasDotProd() {
		return []string{"ASIMD", "ASIMDDP"}
	}
	return []string{"ASIMD"}
}

func newKernels(threads int, dot bool) (*Kernels, error) {
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	if threads > 256 {
		return nil, fmt.Errorf("cpuneon: %d threads is more than the supported 256", threads)
	}
	return &Kernels{pool: newPool(threads), dot: dot && hasDotProd(), threads: threads,
		scratch: make([]scratch, threads)}, nil
}

// Threads returns the number of threads the kernels use.
func (k *Kernels) Threads() int { return k.threads }

// DotProd reports whether MatMul uses the SDOT path.
func (k *Kernels) DotProd() bool { return k.dot }

// Stats returns a snapshot of the per-path counters.
func (k *Kernels) Stats() Stats {
	var s Stats
	for i := range k.counts {
		s.Rows[i] = k.counts[i].Load()
	}
	return s
}

// Close stops the worker pool. The kernels must not be used afterwards.
func (k *Kernels) Close() error {
	k.pool.close()
	return nil
}

func (k *Kernels) count(p Path, n int) {
	k.counts[p].Add(uint64(n))
}

// Package cpuavx2 implements engine.Kernels for x86-64 CPUs with AVX2,
// FMA and F16C, in hand-written Go assembly (no cgo).
//
// Matrix multiplication works on the weights in place (usually the
// memory-mapped model file): Q4_0 and Q8_0 weights are multiplied with
// activations quantized to Q8_0 blocks, Q4_K and Q6_K with activations
// quantized to Q8_K, F16 with activations rounded to f16 and F32
// directly, all as llama.cpp does on x86, so logits stay close to
// llama.cpp's. Other weight types are dequantized one row at a time and
// multiplied in f32. A batch of activation rows is multiplied by a tiled
// kernel that reuses each unpacked weight block across four activation
// rows. Where the CPU has AVX512-VNNI (with AVX512-VL), the Q4_0/Q8_0
// kernels use VPDPBUSD; where it also has AMX-INT8 (and Linux grants the
// tile state), batches of 16 or more rows of Q4_0, Q8_0, Q4_K and Q6_K
// weights go through AMX tiles (TDPBSSD). The AVX2 kernels remain for
// other CPUs.
//
// Work is split across a persistent pool of threads created by New and
// stopped by Close; each operation hands out row chunks through an
// atomic counter.
package cpuavx2

import (
	"runtime"

	"github.com/klauspost/cpuid/v2"
)

// Name is the backend name.
const Name = "cpu-avx2"

// Options configures the kernels.
type Options struct {
	// Threads is the number of threads (the caller's goroutine
	// included); ≤ 0 means runtime.NumCPU().
	Threads int
	// DisableVNNI forces the AVX2 integer dot products even where the
	// CPU has AVX512-VNNI (used by tests and benchmarks to compare).
	DisableVNNI bool
	// DisableAMX keeps the AVX-512 kernels where the CPU has AMX-INT8
	// tiles (used by tests and benchmarks to compare). AMX is used only
	// with the VNNI kernels.
	DisableAMX bool
	// NoWeightCopy keeps the weights in the model's file mapping instead
	// of copying them into huge pages at load (Linux; used by tests of
	// the mapped path, and by the plugin when REALM_AVX2_NO_WEIGHT_COPY
	// is set).
	NoWeightCopy bool
	// NoRepack copies Q4_0/Q8_0 (and Q4_K/Q6_K) weights as they are instead of in the
	// packed 16-row layout of the AVX-512 matrix–vector kernels (used by
	// tests and benchmarks to compare, and by the plugin when
	// REALM_AVX2_NO_REPACK is set). Without VNNI nothing is repacked.
	NoRepack bool
}

// RequiredFeatures lists the CPU features the kernels need, as cpuid
// feature names: what Supported checks, and what plugins.hcl's
// `requires` for cpu-avx2 must say (a loader test pins the two equal).
func RequiredFeatures() []string {
	return []string{"AVX2", "FMA3", "F16C"}
}

// OptionalFeatures lists the CPU features faster kernels use when
// present (AVX512-VNNI dot products, AMX tiles); plugins.hcl's `prefers`
// names only features of this list.
func OptionalFeatures() []string {
	return []string{"AVX512F", "AVX512VL", "AVX512VNNI", "AMXTILE", "AMXINT8"}
}

// Supported reports whether the CPU running this process can use the
// kernels.
func Supported() bool {
	if runtime.GOARCH != "amd64" {
		return false
	}
	for _, name := range RequiredFeatures() {
		if id := cpuid.ParseFeature(name); id == cpuid.UNKNOWN || !cpuid.CPU.Supports(id) {
			return false
		}
	}
	return true
}

// hasVNNI reports whether the AVX512-VNNI kernels can run.
func hasVNNI() bool {
	return cpuid.CPU.Supports(cpuid.AVX512F, cpuid.AVX512VL, cpuid.AVX512VNNI)
}

// Features lists the CPU features the kernels would use on this CPU.
func Features() []string {
	f := RequiredFeatures()
	if hasVNNI() {
		f = append(f, "AVX512F", "AVX512VL", "AVX512VNNI")
		if hasAMX() {
			f = append(f, "AMXTILE", "AMXINT8")
		}
	}
	return f
}

func threadCount(n int) int {
	if n <= 0 {
		n = runtime.NumCPU()
	}
	return max(n, 1)
}

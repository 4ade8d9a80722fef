package core

import (
	"math"
	"testing"

	"github.com/realmrt/realm/abi"
	"github.com/realmrt/realm/backends"
)

// TestCheckResult pins which backend results reach the guest: a shape
// the ABI can carry that matches the data.
func TestCheckResult(t *testing.T) {
	for _, tc := range []struct {
		name  string
		shape []int
		n     int
		ok    bool
	}{
		{"vector", []int{3}, 3, true},
		{"matrix", []int{2, 3}, 6, true},
		{"rank-4", []int{1, 2, 1, 2}, 4, true},
		{"no-shape", nil, 0, false},
		{"rank-5", []int{1, 1, 1, 1, 1}, 1, false},
		{"short-data", []int{2, 3}, 5, false},
		{"long-data", []int{2}, 3, false},
		{"zero-dim", []int{0}, 0, false},
		{"negative-dim", []int{-1, -1}, 1, false},
		{"dim-over-i32", []int{math.MaxInt32 + 1}, 0, false},
		{"product-over-u32", []int{1 << 16, 1 << 16, 2}, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkResult(&backends.TensorOpResult{Shape: tc.shape, Data: make([]float32, tc.n)})
			if (err == nil) != tc.ok {
				t.Fatalf("checkResult(%v, %d values) = %v, want ok=%v", tc.shape, tc.n, err, tc.ok)
			}
			if err != nil && errnoOf(err) != abi.ErrnoBackend {
				t.Fatalf("errno = %v, want %v", errnoOf(err), abi.ErrnoBackend)
			}
		})
	}
}

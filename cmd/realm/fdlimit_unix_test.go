//go:build unix

package main

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestRaiseFDLimit lowers the soft open-file limit and checks that
// raiseFDLimit brings it back up to the hard limit.
func TestRaiseFDLimit(t *testing.T) {
	var orig unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Setrlimit(unix.RLIMIT_NOFILE, &orig) })
	if orig.Max <= 256 {
		t.Skipf("hard limit %d leaves nothing to raise", orig.Max)
	}
	low := unix.Rlimit{Cur: 256, Max: orig.Max}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	got, err := raiseFDLimit()
	if err != nil {
		t.Skipf("this system refuses the hard limit: %v", err) // macOS above OPEN_MAX
	}
	var now unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &now); err != nil {
		t.Fatal(err)
	}
	if got != orig.Max || now.Cur != orig.Max {
		t.Errorf("raiseFDLimit = %d, soft limit now %d, want the hard limit %d", got, now.Cur, orig.Max)
	}
}

//go:build unix

package main

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// raiseFDLimit raises the soft limit on open files to the hard limit
// (a server holds a descriptor per connection) and returns the limit
// now in force.
func raiseFDLimit() (uint64, error) {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return 0, fmt.Errorf("getrlimit: %w", err)
	}
	if rl.Cur < rl.Max {
		want := rl
		want.Cur = rl.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &want); err != nil {
			// macOS refuses more than OPEN_MAX whatever the hard limit.
			return rl.Cur, fmt.Errorf("setrlimit %d: %w", want.Cur, err)
		}
		rl = want
	}
	return rl.Cur, nil
}

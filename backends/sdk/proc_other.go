//go:build unix && !linux

package sdk

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// redirectStdout duplicates descriptor 1 for the go-plugin handshake
// and points descriptor 1 at stderr.
func redirectStdout() (*os.File, error) {
	fd, err := unix.Dup(1)
	if err != nil {
		return nil, fmt.Errorf("dup stdout: %w", err)
	}
	unix.CloseOnExec(fd)
	if err := unix.Dup2(2, 1); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("dup stderr onto stdout: %w", err)
	}
	return os.NewFile(uintptr(fd), "handshake-stdout"), nil
}

// setParentDeathSignal does nothing where the kernel has no
// parent-death signal; the parent pid watch covers it.
func setParentDeathSignal() error { return nil }

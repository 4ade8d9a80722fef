package sdk

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// redirectStdout duplicates descriptor 1 (kept close-on-exec for the
// go-plugin handshake) and points descriptor 1 at stderr, so writes to
// "stdout" by Go code or C libraries land in the log stream instead.
func redirectStdout() (*os.File, error) {
	fd, err := unix.FcntlInt(1, unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return nil, fmt.Errorf("dup stdout: %w", err)
	}
	if err := unix.Dup3(2, 1, 0); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("dup stderr onto stdout: %w", err)
	}
	return os.NewFile(uintptr(fd), "handshake-stdout"), nil
}

// setParentDeathSignal asks the kernel to SIGKILL this process when its
// parent exits.
func setParentDeathSignal() error {
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_PDEATHSIG): %w", err)
	}
	return nil
}

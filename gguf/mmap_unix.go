//go:build unix

package gguf

import (
	"os"

	"golang.org/x/sys/unix"
)

// openNonblock keeps Open from waiting on a FIFO or device.
const openNonblock = unix.O_NONBLOCK

// mmapFile maps size bytes of f read-only and shared.
func mmapFile(f *os.File, size int) ([]byte, error) {
	return unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ, unix.MAP_SHARED)
}

func munmap(b []byte) error { return unix.Munmap(b) }

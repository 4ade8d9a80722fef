//go:build !unix

package gguf

import (
	"errors"
	"os"
)

// openNonblock is not needed where there are no FIFOs to block on.
const openNonblock = 0

// mmapFile is unavailable here: Open falls back to reading the file.
func mmapFile(*os.File, int) ([]byte, error) {
	return nil, errors.New("mmap is not supported on this platform")
}

func munmap([]byte) error { return nil }

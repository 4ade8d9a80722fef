//go:build linux || darwin || freebsd

package chat

import (
	"os"
	"strconv"
	"strings"
	"syscall"
)

// limitMemory caps the process's address space at what it uses now plus
// extra bytes, so a runaway allocation fails instead of exhausting the
// machine. (The Go runtime reserves much of its address space at start.)
func limitMemory(extra uint64) {
	var cur uint64
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmSize:" {
				if kb, err := strconv.ParseUint(f[1], 10, 64); err == nil {
					cur = kb << 10
				}
			}
		}
	}
	if cur == 0 {
		cur = 4 << 30
	}
	lim := syscall.Rlimit{Cur: cur + extra, Max: cur + extra}
	_ = syscall.Setrlimit(syscall.RLIMIT_AS, &lim)
}

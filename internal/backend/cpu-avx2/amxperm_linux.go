//go:build linux && amd64

package cpuavx2

import "golang.org/x/sys/unix"

// amxPermit asks Linux for permission to use the AMX tile data state
// (arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)); the permission
// is per process and idempotent. It reports whether the tiles may be
// used.
func amxPermit() bool {
	const (
		archReqXcompPerm  = 0x1023
		xfeatureXtiledata = 18
	)
	_, _, errno := unix.Syscall(unix.SYS_ARCH_PRCTL, archReqXcompPerm, xfeatureXtiledata, 0)
	return errno == 0
}

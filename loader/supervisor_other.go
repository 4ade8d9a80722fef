//go:build !linux

package loader

import "syscall"

// sysProcAttr returns nil where there is no parent-death signal; the
// plugin SDK's parent-pid watch ends orphaned plugins there.
func sysProcAttr() *syscall.SysProcAttr { return nil }

package loader

import "syscall"

// sysProcAttr makes the kernel SIGKILL a plugin when the host thread
// that started it (and so the host) goes away.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

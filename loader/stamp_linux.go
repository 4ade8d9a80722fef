package loader

import (
	"os"
	"syscall"
)

// fileIdentity returns what tells file versions apart beyond size and
// mtime: the inode (a file replaced by rename) and the inode change
// time (contents rewritten in place with the mtime set back, which no
// unprivileged process can fake).
func fileIdentity(st os.FileInfo) (ino uint64, ctime int64) {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return s.Ino, s.Ctim.Nano()
	}
	return 0, 0
}

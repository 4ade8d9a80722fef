// The plugins' Unix socket directory: short enough for sun_path, and
// stale ones left by hosts that were killed are swept.

package loader

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/hashicorp/go-hclog"
)

// maxSocketPath is the longest Unix socket path the kernel accepts
// (sun_path is 108 bytes on Linux, 104 on the BSDs, with the NUL).
const maxSocketPath = 103

// sockDirPrefix names the socket directories: realm-plugins-<host pid>-<random>.
const sockDirPrefix = "realm-plugins-"

// pluginSocketName is the longest name go-plugin gives a socket in the
// directory: "plugin" and a random uint32.
const pluginSocketName = "/plugin4294967295"

// socketDir creates the private directory the plugins put their sockets
// in, under os.TempDir() when the socket paths fit, otherwise under
// /tmp (a long TMPDIR would make every plugin fail with "bind: invalid
// argument"), saying so in the log. It first removes directories that
// hosts which died without cleaning up (SIGKILL) left behind.
func socketDir(log hclog.Logger) (string, error) {
	pattern := sockDirPrefix + strconv.Itoa(os.Getpid()) + "-"
	// MkdirTemp appends up to 10 digits.
	need := func(base string) int { return len(base) + 1 + len(pattern) + 10 + len(pluginSocketName) }
	var errs []error
	for i, base := range socketBases() {
		if need(base) > maxSocketPath {
			errs = append(errs, fmt.Errorf("%s: socket paths would be %d bytes, the limit is %d", base, need(base), maxSocketPath))
			continue
		}
		sweepSocketDirs(log, base)
		dir, err := os.MkdirTemp(base, pattern)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if i > 0 {
			log.Warn("plugin sockets are not under the temporary directory", "dir", dir, "why", errors.Join(errs...))
		}
		return dir, nil
	}
	return "", errors.Join(errs...)
}

// socketBases lists where the socket directory may go, preferred first.
func socketBases() []string {
	bases := []string{os.TempDir()}
	for _, b := range []string{"/tmp", "/var/tmp", "/dev/shm"} {
		if b != bases[0] {
			if st, err := os.Stat(b); err == nil && st.IsDir() {
				bases = append(bases, b)
			}
		}
	}
	return bases
}

// sweepSocketDirs removes socket directories under base whose host
// process no longer exists. Errors are ignored: another user's
// directory, or one being swept concurrently, is left alone.
func sweepSocketDirs(log hclog.Logger, base string) {
	ents, err := os.ReadDir(base)
	if err != nil {
		return
	}
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), sockDirPrefix)
		if !ok || !e.IsDir() {
			continue
		}
		pidStr, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if !ok || err != nil || pid <= 0 || pid == os.Getpid() || processAlive(pid) {
			continue
		}
		p := filepath.Join(base, e.Name())
		if os.RemoveAll(p) == nil {
			log.Debug("removed the socket directory of a dead host", "dir", p, "pid", pid)
		}
	}
}

// processAlive reports whether a process with this pid exists (EPERM
// means it does, owned by someone else).
func processAlive(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	defer p.Release() // a pidfd where the OS has them
	err = p.Signal(syscall.Signal(0))
	return err == nil || errors.Is(err, syscall.EPERM)
}

package loader

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// TestSocketDirLongTMPDIR: a TMPDIR too long for Unix socket paths
// (before: every plugin failed with "bind: invalid argument") moves the
// socket directory to a short base, and the log says why.
func TestSocketDirLongTMPDIR(t *testing.T) {
	long := filepath.Join(t.TempDir(), strings.Repeat("d", 90))
	if err := os.MkdirAll(long, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TMPDIR", long)
	var logBuf strings.Builder
	log := hclog.New(&hclog.LoggerOptions{Output: &logBuf})
	dir, err := socketDir(log)
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if strings.HasPrefix(dir, long) {
		t.Fatalf("socket dir %s is under the long TMPDIR", dir)
	}
	if n := len(dir) + len(pluginSocketName); n > maxSocketPath {
		t.Fatalf("socket paths of %d bytes in %s", n, dir)
	}
	if !strings.Contains(logBuf.String(), "socket paths would be") {
		t.Errorf("log does not say why: %q", logBuf.String())
	}
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("socket dir: %v %v", st.Mode(), err)
	}
}

// TestSocketDirSweep: a directory left by a host that was SIGKILLed is
// removed by the next host; a live host's is kept.
func TestSocketDirSweep(t *testing.T) {
	base := t.TempDir()
	t.Setenv("TMPDIR", base)
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skip("no true command:", err)
	}
	dead := filepath.Join(base, sockDirPrefix+strconv.Itoa(cmd.Process.Pid)+"-123")
	live := filepath.Join(base, sockDirPrefix+strconv.Itoa(os.Getppid())+"-456")
	other := filepath.Join(base, "realm-plugins-notapid")
	for _, d := range []string{dead, live, other} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	dir, err := socketDir(hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Errorf("dead host's directory kept: %v", err)
	}
	for _, d := range []string{live, other, dir} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s: %v", d, err)
		}
	}
}

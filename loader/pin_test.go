package loader_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/realmrt/realm/internal/refdata"
	"github.com/realmrt/realm/loader"
)

// TestPinHoldsAcrossRestart: a model pinned by sha256 is verified again
// when the supervisor reloads it into a restarted plugin. A file swapped
// meanwhile is refused (before: the restarted plugin served whatever
// file then had the name), and once the right file is back the model
// serves again without a host restart (before: broken for good).
func TestPinHoldsAcrossRestart(t *testing.T) {
	src, err := refdata.Path("models", "stories260K.gguf")
	if err != nil {
		t.Fatal(err)
	}
	orig, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "models"), 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "models", "m.gguf")
	if err := os.WriteFile(file, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := loader.ParseConfig([]byte(`models_dir = "models"
backend "fake" {}
model "m" {
  path   = "m.gguf"
  sha256 = "270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d"
}
`), filepath.Join(dir, "plugins.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	s := supStart(t, supConfig(t, supSpec("fake", "fake")))
	c := loader.NewModelCache(loader.CacheConfig{Registry: loader.NewRegistry(cfg), Backend: s, Active: s.Active})
	defer c.Close()
	ctx := context.Background()
	m, err := c.Acquire(ctx, "m")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release(m)

	// Same size, different bytes: only the hash can tell.
	swapped := append([]byte(nil), orig...)
	swapped[len(swapped)-1] ^= 0xff
	if err := os.WriteFile(file, swapped, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(s.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	supWaitFor(t, "the restart", 20*time.Second, func() bool { return s.Restarts() == 1 && s.PID() != 0 })
	if _, err := s.OpenSession(ctx, m.Info.ID, 8); !errors.Is(err, loader.ErrChecksum) {
		t.Fatalf("session on a swapped file: %v", err)
	}
	// The listing says the name is not servable, and why.
	if l := c.List(ctx); len(l) != 1 || !strings.Contains(l[0].Error, "checksum") {
		t.Errorf("listing while broken: %+v", l)
	}
	if err := os.WriteFile(file, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	supWaitFor(t, "the model to serve again", 20*time.Second, func() bool {
		sid, err := s.OpenSession(ctx, m.Info.ID, 8)
		if err == nil {
			_ = s.CloseSession(ctx, sid)
		}
		return err == nil
	})
	if l := c.List(ctx); len(l) != 1 || l[0].Error != "" {
		t.Errorf("listing after recovery: %+v", l)
	}
	if m.Serving() != "fake" || m.Serving() != s.Active() {
		t.Errorf("serving %q, active %q", m.Serving(), s.Active())
	}
}

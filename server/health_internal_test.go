package server

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/core"
	"github.com/realmrt/realm/loader"
)

// fakeBackend is a plugin whose process is up (pid > 0) and whose Info
// answers, fails or hangs until the caller gives up.
type fakeBackend struct {
	pid  int
	info func(ctx context.Context) error
}

func (f *fakeBackend) Active() string { return "fake" }
func (f *fakeBackend) Restarts() int  { return 0 }
func (f *fakeBackend) PID() int       { return f.pid }
func (f *fakeBackend) Info(ctx context.Context) (*backends.Info, error) {
	if err := f.info(ctx); err != nil {
		return nil, err
	}
	return &backends.Info{Name: "fake"}, nil
}

// noModels serves no model.
type noModels struct{}

func (noModels) Acquire(context.Context, string) (*loader.Model, error) {
	return nil, loader.ErrNotFound
}
func (noModels) Release(*loader.Model)                    {}
func (noModels) List(context.Context) []loader.ModelEntry { return nil }

type noHostModels struct{}

func (noHostModels) Acquire(context.Context, string) (*core.Model, error) {
	return nil, loader.ErrNotFound
}
func (noHostModels) Release(*core.Model)                    {}
func (noHostModels) List(context.Context) ([]string, error) { return nil, nil }

// TestHealthAsksThePlugin: /health is ok only when the plugin answers;
// a process that is up but hung (SIGSTOP, a deadlock) is 503 within
// healthTimeout, as is one with no process.
func TestHealthAsksThePlugin(t *testing.T) {
	// The smallest WASI command (an empty _start): the default app is
	// never run here.
	module := []byte("\x00asm\x01\x00\x00\x00" +
		"\x01\x04\x01\x60\x00\x00" + // types: () -> ()
		"\x03\x02\x01\x00" + // functions: one of type 0
		"\x07\x0a\x01\x06_start\x00\x00" + // exports: _start = func 0
		"\x0a\x04\x01\x02\x00\x0b") // code: no locals, end
	wasm := filepath.Join(t.TempDir(), "empty.wasm")
	if err := os.WriteFile(wasm, module, 0o644); err != nil {
		t.Fatal(err)
	}
	fb := &fakeBackend{pid: 42}
	srv, err := NewFrom(context.Background(), Runtime{Models: noModels{}, HostModels: noHostModels{}, Backend: fb, BackendName: "fake", Config: &loader.Config{}},
		Options{DefaultWASM: wasm})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close(context.Background())
	h := srv.Handler()
	for _, c := range []struct {
		name   string
		pid    int
		info   func(ctx context.Context) error
		status int
	}{
		{"answers", 42, func(context.Context) error { return nil }, 200},
		{"hung", 42, func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }, 503},
		{"fails", 42, func(context.Context) error { return errors.New("broken") }, 503},
		{"no process", 0, func(context.Context) error { return nil }, 503},
	} {
		t.Run(c.name, func(t *testing.T) {
			fb.pid, fb.info = c.pid, c.info
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/health", nil))
			if rec.Code != c.status {
				t.Errorf("status %d, want %d: %s", rec.Code, c.status, rec.Body)
			}
		})
	}
}

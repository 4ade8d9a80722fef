package sdk

import (
	"context"
	"runtime"
	"testing"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/backends/backendtest"
	"github.com/realmrt/realm/internal/engine"
)

func TestReadSettings(t *testing.T) {
	for _, tc := range []struct {
		env     map[string]string
		threads int
		host    int
		bad     bool
	}{
		{env: nil, threads: runtime.NumCPU()},
		{env: map[string]string{backends.EnvThreads: "0"}, threads: runtime.NumCPU()},
		{env: map[string]string{backends.EnvThreads: "3", backends.EnvHostPID: "42"}, threads: 3, host: 42},
		{env: map[string]string{backends.EnvThreads: "-1"}, bad: true},
		{env: map[string]string{backends.EnvThreads: "x"}, bad: true},
		{env: map[string]string{backends.EnvHostPID: "0"}, bad: true},
	} {
		s, err := readSettings(func(k string) string { return tc.env[k] })
		if (err != nil) != tc.bad {
			t.Errorf("%v: err = %v", tc.env, err)
			continue
		}
		if !tc.bad && (s.threads != tc.threads || s.hostPID != tc.host) {
			t.Errorf("%v: got %+v", tc.env, s)
		}
	}
}

func TestBuild(t *testing.T) {
	fake := func(int) (backends.Backend, error) { return backendtest.New(4), nil }
	kern := func(int) (engine.Kernels, error) { return nil, nil }
	if _, _, err := build(Config{}, 1); err == nil {
		t.Error("neither constructor: no error")
	}
	if _, _, err := build(Config{NewBackend: fake, NewKernels: kern}, 1); err == nil {
		t.Error("both constructors: no error")
	}
	b, done, err := build(Config{NewBackend: fake}, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	ib := &infoBackend{Backend: b, cfg: Config{Name: "n", Version: "v", Features: []string{"AVX2"}}, threads: 5}
	info, err := ib.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// The fake names itself; the SDK fills only what the backend left out.
	if info.Name != "fake" || info.Version != "0" || info.ProtocolVersion != backends.ProtocolVersion || info.Threads != 1 || info.Features[0] != "AVX2" {
		t.Fatalf("info = %+v", info)
	}
}

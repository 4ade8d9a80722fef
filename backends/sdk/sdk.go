// Package sdk turns a set of kernels into a Realm backend plugin: a
// backend's main is a call to Serve.
//
//	func main() {
//		sdk.Serve(sdk.Config{
//			Name: "reference", Version: "0.1.0",
//			NewKernels: func(threads int) (engine.Kernels, error) { return reference.New(), nil },
//		})
//	}
//
// Serve does what every plugin needs before and around go-plugin:
//
//   - stdout carries only the go-plugin handshake. Before anything else
//     it keeps a duplicate of file descriptor 1 for the handshake and
//     points descriptor 1 at stderr, so a stray fmt.Println or a C
//     library's printf cannot corrupt the handshake line.
//   - logs are hclog JSON on stderr; the host re-emits them under its
//     logger named after the plugin and keeps the last error lines.
//   - the plugin never outlives the host: PR_SET_PDEATHSIG (Linux) and a
//     watch on the parent pid (every platform) end it when the host goes.
//   - configuration comes from the host once, as environment variables
//     read at start: REALM_THREADS (compute threads; 0 or unset: one per
//     CPU) and REALM_HOST_PID (the host's pid).
package sdk

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/internal/engine"
)

// Config describes a backend plugin. Exactly one of NewKernels and
// NewBackend must be set.
type Config struct {
	// Name and Version are reported by Info.
	Name    string
	Version string
	// Features are the CPU features the kernels were compiled for and use
	// (cpuid FeatureID names), reported by Info.
	Features []string
	// NewKernels builds the kernels with the given number of threads;
	// Serve runs the shared forward pass (engine.NewBackend) over them.
	NewKernels func(threads int) (engine.Kernels, error)
	// NewBackend builds a complete backend instead (a backend that does
	// not use the shared forward pass, or a test double).
	NewBackend func(threads int) (backends.Backend, error)
}

// settings is what the host passes to the plugin, parsed once at start.
type settings struct {
	threads int
	hostPID int // 0 when not started by a Realm host
}

func readSettings(getenv func(string) string) (settings, error) {
	var s settings
	if v := getenv(backends.EnvThreads); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return s, fmt.Errorf("sdk: %s=%q is not a thread count", backends.EnvThreads, v)
		}
		s.threads = n
	}
	if s.threads == 0 {
		s.threads = runtime.NumCPU()
	}
	if v := getenv(backends.EnvHostPID); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return s, fmt.Errorf("sdk: %s=%q is not a pid", backends.EnvHostPID, v)
		}
		s.hostPID = n
	}
	return s, nil
}

// Serve runs the plugin until the host shuts it down, then exits the
// process. It does not return.
func Serve(cfg Config) {
	os.Exit(serve(cfg))
}

func serve(cfg Config) int {
	if hs := backends.Handshake(); os.Getenv(hs.MagicCookieKey) != hs.MagicCookieValue {
		fmt.Fprintf(os.Stderr, "%s is a Realm backend plugin: the Realm host starts it (see `realm backends`); it is not meant to be run by hand.\n", os.Args[0])
		return 1
	}
	// Then, before anything can write to it: keep stdout for the handshake only.
	handshake, err := redirectStdout()
	if err != nil {
		fmt.Fprintf(os.Stderr, "realm plugin: redirecting stdout: %v\n", err)
		return 1
	}
	defer runtime.KeepAlive(handshake)

	logger := hclog.New(&hclog.LoggerOptions{
		Name:       cfg.Name,
		Level:      hclog.Debug,
		Output:     os.Stderr,
		JSONFormat: true,
	})
	st, err := readSettings(os.Getenv)
	if err != nil {
		logger.Error("bad plugin environment", "error", err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := watchParent(ctx, st.hostPID, logger); err != nil {
		logger.Error("parent watch", "error", err)
		return 1
	}

	impl, closeFn, err := build(cfg, st.threads)
	if err != nil {
		logger.Error("backend initialisation failed", "error", err)
		return 1
	}
	defer closeFn()
	logger.Debug("serving", "name", cfg.Name, "version", cfg.Version, "threads", st.threads, "pid", os.Getpid())

	sc := backends.ServeConfig(&infoBackend{Backend: impl, cfg: cfg, threads: st.threads})
	sc.Logger = logger
	// go-plugin prints the handshake line to os.Stdout and then replaces
	// os.Stdout with its own pipe; until then os.Stdout is the saved
	// descriptor, descriptor 1 already goes to stderr.
	os.Stdout = handshake
	plugin.Serve(sc)
	return 0
}

// build makes the served backend and the function that releases it.
func build(cfg Config, threads int) (backends.Backend, func(), error) {
	switch {
	case cfg.NewBackend != nil && cfg.NewKernels != nil:
		return nil, nil, errors.New("sdk: both NewKernels and NewBackend set")
	case cfg.NewBackend != nil:
		b, err := cfg.NewBackend(threads)
		if err != nil {
			return nil, nil, fmt.Errorf("sdk: new backend: %w", err)
		}
		return b, func() {}, nil
	case cfg.NewKernels != nil:
		k, err := cfg.NewKernels(threads)
		if err != nil {
			return nil, nil, fmt.Errorf("sdk: new kernels: %w", err)
		}
		b := engine.NewBackend(k, engine.Options{
			Name:            cfg.Name,
			Version:         cfg.Version,
			ProtocolVersion: backends.ProtocolVersion,
			Features:        cfg.Features,
			Threads:         threads,
		})
		return b, func() {
			if c, ok := k.(engine.Closer); ok {
				_ = c.Close()
			}
		}, nil
	}
	return nil, nil, errors.New("sdk: neither NewKernels nor NewBackend set")
}

// infoBackend fills the fields of Info that the plugin knows better than
// the backend it serves (left empty by a NewBackend backend).
type infoBackend struct {
	backends.Backend
	cfg     Config
	threads int
}

// Info implements backends.Backend.
func (b *infoBackend) Info(ctx context.Context) (*backends.Info, error) {
	info, err := b.Backend.Info(ctx)
	if err != nil {
		return nil, err
	}
	if info.Name == "" {
		info.Name = b.cfg.Name
	}
	if info.Version == "" {
		info.Version = b.cfg.Version
	}
	if info.ProtocolVersion == 0 {
		info.ProtocolVersion = backends.ProtocolVersion
	}
	if info.Features == nil {
		info.Features = b.cfg.Features
	}
	if info.Threads == 0 {
		info.Threads = b.threads
	}
	return info, nil
}

// watchParent ends the process when the host goes away: at once if the
// parent is already not the host, through the kernel's parent-death
// signal where there is one, and by polling the parent pid otherwise
// (and as a backstop: the death signal follows the host *thread* that
// started us).
func watchParent(ctx context.Context, hostPID int, logger hclog.Logger) error {
	if err := setParentDeathSignal(); err != nil {
		return err
	}
	parent := os.Getppid()
	if hostPID != 0 && parent != hostPID {
		return fmt.Errorf("sdk: parent is pid %d, not the host %d (host already gone?)", parent, hostPID)
	}
	go func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if p := os.Getppid(); p != parent {
					logger.Error("host process went away; exiting", "old_parent", parent, "parent", p)
					os.Exit(3)
				}
			}
		}
	}()
	return nil
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/internal/backend/reference"
	"github.com/realmrt/realm/internal/engine"
	"github.com/realmrt/realm/loader"
)

// openGenerateBackend returns the backend that runs `realm generate` and
// the id of the model at path loaded into it, with a function that
// releases both.
//
// With a configuration (--config, REALM_CONFIG, or ./plugins.hcl when it
// exists) the model runs in the selected backend plugin under the
// loader's supervisor, like `realm run`; --backend / REALM_BACKEND pins
// one. Without any configuration it runs in-process on the scalar
// reference kernels, so that generate works on a bare checkout.
func openGenerateBackend(ctx context.Context, env *cliEnv, path, cfgFlag, pinFlag string) (backends.Backend, backends.ModelID, func(), error) {
	cfgPath := loaderConfigPath(env, cfgFlag)
	explicit := cfgFlag != "" || env.Getenv("REALM_CONFIG") != ""
	if !explicit {
		if _, err := os.Stat(cfgPath); errors.Is(err, fs.ErrNotExist) {
			if pin := loaderPin(env, pinFlag); pin != "" {
				return nil, 0, nil, fmt.Errorf("backend %q pinned but no configuration (%s) names backends", pin, cfgPath)
			}
			return openInProcessBackend(ctx, path)
		}
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, 0, nil, err
	}
	rt, err := openRuntime(ctx, env, cfgFlag, pinFlag, 0, cliLogger(env, hclog.Warn, false))
	if err != nil {
		return nil, 0, nil, err
	}
	// A model the selected backend cannot run loads on the next eligible
	// one that can (the loader logs which and why).
	b, _, mi, err := rt.LoadModel(ctx, backends.LoadRequest{Path: abs})
	if err != nil {
		_ = rt.Close()
		return nil, 0, nil, err
	}
	return b, mi.ID, func() {
		_ = b.UnloadModel(context.WithoutCancel(ctx), mi.ID)
		_ = rt.Close()
	}, nil
}

// resolveModelArg turns -m into a file path: an existing file is used as
// it is; otherwise a valid model name is resolved through the
// configuration's registry (model blocks, then <models_dir>/<name>.gguf,
// with the registry's rules: the file must stay inside models_dir).
func resolveModelArg(env *cliEnv, model, cfgFlag string) (string, error) {
	if _, err := os.Stat(model); err == nil {
		return model, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	if loader.ValidName(model) != nil {
		return "", fmt.Errorf("model %q: no such file, and not a model name", model)
	}
	cfgPath := loaderConfigPath(env, cfgFlag)
	cfg, err := loader.LoadConfig(cfgPath)
	if err != nil {
		return "", fmt.Errorf("model %q is not a file; resolving it as a name needs a configuration: %w", model, err)
	}
	res, err := loader.NewRegistry(cfg).Resolve(model)
	if err != nil {
		return "", err
	}
	return res.Path, nil
}

// openInProcessBackend loads the model at path into the in-process
// engine over the scalar reference kernels.
func openInProcessBackend(ctx context.Context, path string) (backends.Backend, backends.ModelID, func(), error) {
	b := engine.NewBackend(reference.New(), engine.Options{Name: "reference", Version: version, ProtocolVersion: backends.ProtocolVersion, Threads: 1})
	mi, err := b.LoadModel(ctx, backends.LoadRequest{Path: path})
	if err != nil {
		return nil, 0, nil, err
	}
	return b, mi.ID, func() { _ = b.UnloadModel(context.WithoutCancel(ctx), mi.ID) }, nil
}

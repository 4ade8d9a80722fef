package cluster

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// maxAppBytes bounds a guest module fetched from the cluster.
const maxAppBytes = 64 << 20

// Digest names a guest module's bytes: "sha256-<hex>".
func Digest(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256-" + hex.EncodeToString(s[:])
}

// PublishApp stores a guest module in the object store under its digest
// (once) and points the manifest's name at it.
func (f *Frontend) PublishApp(ctx context.Context, name string, wasm []byte) (string, error) {
	if !validID(name) {
		return "", fmt.Errorf("cluster: app name %q: use letters, digits, - or _", name)
	}
	obs, err := appStore(ctx, f.js, f.cfg.Replicas, true)
	if err != nil {
		return "", fmt.Errorf("cluster: the app store: %w", err)
	}
	man, err := manifestBucket(ctx, f.js, f.cfg.Replicas, true)
	if err != nil {
		return "", fmt.Errorf("cluster: the app manifest: %w", err)
	}
	d := Digest(wasm)
	if _, err := obs.GetInfo(ctx, d); errors.Is(err, jetstream.ErrObjectNotFound) {
		if _, err := obs.PutBytes(ctx, d, wasm); err != nil {
			return "", fmt.Errorf("cluster: storing app %s: %w", name, err)
		}
	} else if err != nil {
		return "", fmt.Errorf("cluster: app %s: %w", name, err)
	}
	if _, err := man.PutString(ctx, name, d); err != nil {
		return "", fmt.Errorf("cluster: app %s in the manifest: %w", name, err)
	}
	return d, nil
}

// FetchApp returns the path of the guest module the cluster's manifest
// names for app, downloading it by digest into dir once and checking the
// bytes against the digest. It fails with jetstream.ErrKeyNotFound (or
// ErrBucketNotFound) when no front end published the app.
func FetchApp(ctx context.Context, nc *nats.Conn, name, dir string) (path, digest string, err error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return "", "", fmt.Errorf("cluster: %w", err)
	}
	man, err := js.KeyValue(ctx, ManifestBucket)
	if err != nil {
		return "", "", fmt.Errorf("cluster: the app manifest: %w", err)
	}
	e, err := man.Get(ctx, name)
	if err != nil {
		return "", "", fmt.Errorf("cluster: app %s: %w", name, err)
	}
	digest = string(e.Value())
	path = filepath.Join(dir, digest+".wasm")
	if b, err := os.ReadFile(path); err == nil && Digest(b) == digest {
		return path, digest, nil
	}
	obs, err := js.ObjectStore(ctx, AppsBucket)
	if err != nil {
		return "", "", fmt.Errorf("cluster: the app store: %w", err)
	}
	info, err := obs.GetInfo(ctx, digest)
	if err != nil {
		return "", "", fmt.Errorf("cluster: app %s (%s): %w", name, digest, err)
	}
	if info.Size > maxAppBytes {
		return "", "", fmt.Errorf("cluster: app %s is %d bytes, over the %d limit", name, info.Size, maxAppBytes)
	}
	b, err := obs.GetBytes(ctx, digest)
	if err != nil {
		return "", "", fmt.Errorf("cluster: fetching app %s: %w", name, err)
	}
	if got := Digest(b); got != digest {
		return "", "", fmt.Errorf("cluster: app %s: the store's bytes hash to %s, not %s", name, got, digest)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", fmt.Errorf("cluster: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".app-*")
	if err != nil {
		return "", "", fmt.Errorf("cluster: %w", err)
	}
	_, werr := bytes.NewReader(b).WriteTo(tmp)
	cerr := tmp.Close()
	if werr != nil || cerr != nil {
		os.Remove(tmp.Name())
		return "", "", fmt.Errorf("cluster: writing app %s: %w", name, errors.Join(werr, cerr))
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return "", "", fmt.Errorf("cluster: %w", err)
	}
	return path, digest, nil
}

package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Names shared by front ends and workers.
const (
	// StateBucket is the key-value bucket of worker state, one key per
	// worker id.
	StateBucket = "realm_workers"
	// AppsBucket is the object store of guest apps, one object per
	// digest ("sha256-<hex>").
	AppsBucket = "realm_apps"
	// ManifestBucket maps app names to digests.
	ManifestBucket = "realm_manifest"
	// subjectPrefix starts every subject Realm uses.
	subjectPrefix = "realm."
)

// Timing defaults.
const (
	// StateTTL is how long a worker's state key lives without a refresh.
	StateTTL = 3 * time.Second
	// StateInterval is how often a worker refreshes its key.
	StateInterval = time.Second
	// Heartbeat is how often a worker sends a heartbeat frame on a
	// request's stream while nothing else was sent; the front end gives
	// up after 3 missed ones.
	Heartbeat = 500 * time.Millisecond
)

// reqSubject is where a worker takes requests.
func reqSubject(id string) string { return subjectPrefix + "worker." + id + ".req" }

// metricsSubject is where a worker answers with its metrics text.
func metricsSubject(id string) string { return subjectPrefix + "worker." + id + ".metrics" }

// Connect dials NATS at urls (comma-separated allowed) with sec's TLS and
// credentials, reconnecting for ever.
func Connect(ctx context.Context, name, urls string, sec Security) (*nats.Conn, error) {
	var list []string
	for _, u := range strings.Split(urls, ",") {
		if u = strings.TrimSpace(u); u == "" {
			continue
		}
		pu, err := url.Parse(u)
		if err != nil || pu.Host == "" {
			return nil, fmt.Errorf("cluster: %q is not a nats://host:port URL", u)
		}
		if err := sec.check(pu.Hostname()); err != nil {
			return nil, err
		}
		list = append(list, u)
	}
	if len(list) == 0 {
		return nil, errors.New("cluster: no NATS URL to join")
	}
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(100 * time.Millisecond),
		nats.RetryOnFailedConnect(true),
		nats.DontRandomize(),
		nats.PingInterval(2 * time.Second),
		nats.MaxPingsOutstanding(2),
		nats.ReconnectBufSize(8 << 20),
	}
	switch {
	case sec.User != "":
		opts = append(opts, nats.UserInfo(sec.User, sec.Password))
	case sec.Token != "":
		opts = append(opts, nats.Token(sec.Token))
	}
	if sec.CAFile != "" {
		opts = append(opts, nats.RootCAs(sec.CAFile))
	}
	if sec.CertFile != "" && sec.CAFile != "" {
		opts = append(opts, nats.ClientCert(sec.CertFile, sec.KeyFile))
	}
	nc, err := nats.Connect(strings.Join(list, ","), opts...)
	if err != nil {
		return nil, fmt.Errorf("cluster: connecting to %s: %w", urls, err)
	}
	// RetryOnFailedConnect returns at once; wait for the first connection.
	for !nc.IsConnected() {
		select {
		case <-ctx.Done():
			nc.Close()
			return nil, fmt.Errorf("cluster: connecting to %s: %w", urls, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nc, nil
}

// stateBucket creates (or binds) the worker state bucket, retrying while
// JetStream elects its leaders. replicas is capped by the cluster size.
func stateBucket(ctx context.Context, js jetstream.JetStream, replicas int, create bool) (jetstream.KeyValue, error) {
	return retry(ctx, func(ctx context.Context) (jetstream.KeyValue, error) {
		if !create {
			return js.KeyValue(ctx, StateBucket)
		}
		return js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: StateBucket, Description: "realm worker state", History: 1,
			TTL: StateTTL, Storage: jetstream.MemoryStorage, Replicas: replicas,
			LimitMarkerTTL: StateTTL,
		})
	})
}

// manifestBucket creates (or binds) the app manifest bucket.
func manifestBucket(ctx context.Context, js jetstream.JetStream, replicas int, create bool) (jetstream.KeyValue, error) {
	return retry(ctx, func(ctx context.Context) (jetstream.KeyValue, error) {
		if !create {
			return js.KeyValue(ctx, ManifestBucket)
		}
		return js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: ManifestBucket, Description: "realm app digests", History: 1,
			Storage: jetstream.FileStorage, Replicas: replicas,
		})
	})
}

// appStore creates (or binds) the app object store.
func appStore(ctx context.Context, js jetstream.JetStream, replicas int, create bool) (jetstream.ObjectStore, error) {
	return retry(ctx, func(ctx context.Context) (jetstream.ObjectStore, error) {
		if !create {
			return js.ObjectStore(ctx, AppsBucket)
		}
		return js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
			Bucket: AppsBucket, Description: "realm guest apps by digest",
			Storage: jetstream.FileStorage, Replicas: replicas,
		})
	})
}

// retry calls f until it succeeds or ctx ends (JetStream answers
// "unavailable" while a cluster elects its leaders).
func retry[T any](ctx context.Context, f func(context.Context) (T, error)) (T, error) {
	var zero T
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		v, err := f(actx)
		cancel()
		if err == nil {
			return v, nil
		}
		select {
		case <-ctx.Done():
			return zero, fmt.Errorf("cluster: %w (last error: %v)", ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// ReadMembers returns the state of the workers whose keys are in the
// bucket now, sorted by id.
func ReadMembers(ctx context.Context, nc *nats.Conn) ([]WorkerState, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	kv, err := js.KeyValue(ctx, StateBucket)
	if err != nil {
		return nil, fmt.Errorf("cluster: the state bucket: %w", err)
	}
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("cluster: listing workers: %w", err)
	}
	var out []WorkerState
	for k := range lister.Keys() {
		e, err := kv.Get(ctx, k)
		if err != nil {
			continue // gone since listed
		}
		var st WorkerState
		if json.Unmarshal(e.Value(), &st) == nil {
			out = append(out, st)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// WaitReady waits until a front end created the state bucket (so the
// apps it publishes are in the object store) or ctx ends.
func WaitReady(ctx context.Context, nc *nats.Conn) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	_, err = stateBucket(ctx, js, 0, false)
	return err
}

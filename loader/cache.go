package loader

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/gguf"
	"github.com/realmrt/realm/model"
)

// Cache errors.
var (
	// ErrOverBudget: loading the model would exceed the memory budget
	// even after evicting every idle model. Errors wrapping it also wrap
	// backends.ErrOutOfMemory.
	ErrOverBudget = errors.New("model memory budget exceeded")
	// ErrCacheClosed: the cache is closed.
	ErrCacheClosed = errors.New("model cache closed")
	// ErrWrongBackend: the model block requires a backend other than the
	// one running.
	ErrWrongBackend = errors.New("model requires another backend")
)

// CacheConfig configures a ModelCache.
type CacheConfig struct {
	// Registry resolves names to files.
	Registry *Registry
	// Backend loads the models.
	Backend backends.Backend
	// BackendName names Backend; models whose block requires another
	// backend are refused. A Backend that names its live plugin (a
	// Supervisor, a model.Activer, which may have fallen back to
	// another) is judged by that name while it has one.
	BackendName string
	// BudgetBytes caps the bytes of loaded models (0: no cap).
	BudgetBytes int64
	// Logger receives load/evict events (nil: discard).
	Logger hclog.Logger
	// Fallbacks are the backends, best first, that a model is loaded on
	// when Backend refuses it as unsupported (see Fallback); a model
	// whose block names a backend never falls back.
	Fallbacks []Fallback
}

// ModelCache loads models by name through a backend. A name is loaded
// once: concurrent Acquires coalesce into one load, later ones share the
// loaded model and count a reference. Released models stay loaded until
// the budget needs their room (least recently used first) or Close.
// It is safe for concurrent use.
type ModelCache struct {
	cfg CacheConfig
	log hclog.Logger

	mu       sync.Mutex
	entries  map[string]*cacheEntry
	used     int64 // bytes of loaded models, loads in flight and KV caches
	kvBytes  int64 // the KV caches' share of used
	tick     uint64
	verified map[string]fileStamp
	failures map[string]loadFailure // recent failed loads, by name
	closed   bool
}

// loadFailure is a failed load, remembered so that a name whose file is
// broken is not loaded (hashed, parsed) again on every request.
type loadFailure struct {
	err error
	at  time.Time
	n   int // failures in a row
}

// failureDelay is how long after its n-th failure in a row a name is
// loaded again: 1s, doubling, at most 10s.
func failureDelay(n int) time.Duration {
	if n >= 5 {
		return 10 * time.Second
	}
	return min(time.Second<<max(n-1, 0), 10*time.Second)
}

// cacheEntry is one name: loading (model nil, done open) or loaded.
type cacheEntry struct {
	name    string
	done    chan struct{} // closed when the load finished
	err     error         // load error, once done
	model   *model.Model
	waiters int // holders counted when the load finishes
	refs    int
	lastUse uint64
	cost    int64
}

// fileStamp identifies a file version whose checksum was verified.
type fileStamp struct {
	size  int64
	mtime time.Time
	ino   uint64
	ctime int64
}

func stampOf(st os.FileInfo) fileStamp {
	ino, ctime := fileIdentity(st)
	return fileStamp{st.Size(), st.ModTime(), ino, ctime}
}

// NewModelCache returns an empty cache.
func NewModelCache(cfg CacheConfig) *ModelCache {
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &ModelCache{
		cfg:      cfg,
		log:      log.Named("models"),
		entries:  map[string]*cacheEntry{},
		verified: map[string]fileStamp{},
		failures: map[string]loadFailure{},
	}
}

// Acquire returns the named model, loading it if needed, and counts a
// reference that the caller gives back with Release. Errors wrap
// ErrInvalidName, ErrNotFound, ErrOutsideModelsDir, ErrChecksum,
// ErrOverBudget, ErrWrongBackend, ErrCacheClosed, backends.ErrInvalidModel or
// the backend's error.
func (c *ModelCache) Acquire(ctx context.Context, name string) (*model.Model, error) {
	if err := ValidName(name); err != nil {
		return nil, fmt.Errorf("loader: %w", err)
	}
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, fmt.Errorf("loader: %w", ErrCacheClosed)
		}
		e := c.entries[name]
		if e != nil && e.model != nil {
			e.refs++
			c.tick++
			e.lastUse = c.tick
			c.mu.Unlock()
			return e.model, nil
		}
		if f, ok := c.failures[name]; e == nil && ok {
			if wait := failureDelay(f.n) - time.Since(f.at); wait > 0 {
				c.mu.Unlock()
				return nil, fmt.Errorf("loader: %w (failed %v ago; retried in %v)", f.err, time.Since(f.at).Round(time.Millisecond), wait.Round(time.Millisecond))
			}
		}
		if e == nil {
			e = &cacheEntry{name: name, done: make(chan struct{}), waiters: 1}
			c.entries[name] = e
			c.mu.Unlock()
			m, err := c.load(ctx, e)
			if err != nil {
				return nil, fmt.Errorf("loader: %w", err)
			}
			return m, nil
		}
		e.waiters++
		c.mu.Unlock()

		select {
		case <-e.done:
		case <-ctx.Done():
			c.mu.Lock()
			select {
			case <-e.done: // finished meanwhile: our reference is counted
			default:
				e.waiters--
				c.mu.Unlock()
				return nil, fmt.Errorf("loader: waiting for model %q: %w", name, ctx.Err())
			}
			c.mu.Unlock()
		}
		if e.err == nil {
			return e.model, nil
		}
		// The load we joined failed. If it failed only because the
		// loading caller gave up, and we have not, try again.
		if isContextErr(e.err) && ctx.Err() == nil {
			continue
		}
		return nil, fmt.Errorf("loader: %w", e.err)
	}
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// load runs the load of e in the calling goroutine and publishes the
// outcome to the waiters.
func (c *ModelCache) load(ctx context.Context, e *cacheEntry) (*model.Model, error) {
	m, cost, err := c.doLoad(ctx, e.name)

	c.mu.Lock()
	if err == nil && c.closed {
		err = ErrCacheClosed
		c.used -= cost
		c.mu.Unlock()
		c.unload(context.WithoutCancel(ctx), m)
		c.mu.Lock()
		cost = 0
	}
	if err != nil {
		if c.entries[e.name] == e {
			delete(c.entries, e.name)
		}
		if !isContextErr(err) && !errors.Is(err, ErrCacheClosed) && !errors.Is(err, ErrOverBudget) {
			f := c.failures[e.name]
			c.failures[e.name] = loadFailure{err: err, at: time.Now(), n: f.n + 1}
		}
		e.err = err
		close(e.done)
		c.mu.Unlock()
		return nil, err
	}
	delete(c.failures, e.name)
	e.model, e.cost = m, cost
	e.refs = e.waiters
	c.tick++
	e.lastUse = c.tick
	close(e.done)
	c.mu.Unlock()
	c.log.Info("model loaded", "name", m.Name, "path", m.Path, "bytes", m.SizeBytes, "backend", m.BackendName, "id", m.Info.ID)
	return m, nil
}

// doLoad resolves, verifies, reserves budget and loads one model. On
// success the returned cost is counted in c.used.
func (c *ModelCache) doLoad(ctx context.Context, name string) (*model.Model, int64, error) {
	res, err := c.cfg.Registry.Resolve(name)
	if err != nil {
		return nil, 0, err
	}
	active := c.backendName()
	if res.Backend != "" && active != "" && res.Backend != active {
		return nil, 0, fmt.Errorf("%w: model %q is configured for backend %q, running %q", ErrWrongBackend, name, res.Backend, active)
	}
	if res.SHA256 != "" {
		if err := c.verify(ctx, res); err != nil {
			return nil, 0, err
		}
	}
	meta, size, err := readHeader(res.Path)
	if err != nil {
		return nil, 0, fmt.Errorf("model %q: %w", name, err)
	}
	tok, err := buildTokenizer(meta)
	if err != nil {
		return nil, 0, fmt.Errorf("model %q: tokenizer: %w", name, err)
	}
	if err := c.reserve(ctx, fmt.Sprintf("model %q", name), size); err != nil {
		return nil, 0, err
	}
	req := backends.LoadRequest{Path: res.Path, KVBudget: uint64(max(res.KVBudget, 0))}
	be, beName := c.cfg.Backend, active
	info, err := c.loadOn(ctx, be, res, req)
	if err != nil && errors.Is(err, backends.ErrUnsupported) && res.Backend == "" && ctx.Err() == nil {
		be, beName, info, err = c.fallback(ctx, name, res, req, active, err)
		if err != nil {
			c.mu.Lock()
			c.used -= size
			c.mu.Unlock()
			return nil, 0, err
		}
	}
	if err != nil {
		c.mu.Lock()
		c.used -= size
		c.mu.Unlock()
		return nil, 0, fmt.Errorf("model %q: backend %s: %w", name, active, err)
	}
	cost := size
	if extra := int64(info.ExtraBytes); extra > 0 {
		cost += extra
		c.mu.Lock()
		c.used += extra
		c.mu.Unlock()
	}
	return &model.Model{
		Name:         name,
		Path:         res.Path,
		Backend:      be,
		BackendName:  beName,
		Info:         *info,
		Tokenizer:    tok,
		Meta:         meta,
		TensorShapes: tensorShapes(meta),
		SizeBytes:    cost,
	}, cost, nil
}

// VerifyingLoader is a backend that may load a model again by itself
// (the Supervisor, after a plugin restart): verify runs before each such
// reload, and a model whose file fails it is not served.
type VerifyingLoader interface {
	LoadModelVerified(ctx context.Context, req backends.LoadRequest, verify func(context.Context) error) (*backends.ModelInfo, error)
}

// tensorShapes maps each tensor of a GGUF header to its shape.
func tensorShapes(meta *gguf.File) map[string][]int {
	shapes := make(map[string][]int, len(meta.Tensors))
	for _, ti := range meta.Tensors {
		s := make([]int, len(ti.Dims))
		for i, d := range ti.Dims {
			s[i] = int(d)
		}
		shapes[ti.Name] = s
	}
	return shapes
}

// backendName names the backend serving now.
func (c *ModelCache) backendName() string {
	return model.ServingName(c.cfg.Backend, c.cfg.BackendName)
}

// reserve counts size bytes against the budget, evicting idle models
// least recently used first to make room. When even evicting every idle
// model would not make room, it fails without evicting any.
func (c *ModelCache) reserve(ctx context.Context, name string, size int64) error {
	budget := c.cfg.BudgetBytes
	c.mu.Lock()
	if budget > 0 && size > budget {
		c.mu.Unlock()
		return fmt.Errorf("%w: %s needs %s, the budget is %s: %w", ErrOverBudget, name, FormatSize(size), FormatSize(budget), backends.ErrOutOfMemory)
	}
	if budget > 0 {
		var idle int64
		for _, e := range c.entries {
			if e.model != nil && e.refs == 0 {
				idle += e.cost
			}
		}
		if c.used-idle+size > budget {
			used := c.used
			c.mu.Unlock()
			return fmt.Errorf("%w: %s needs %s, %s of %s held by models and KV caches in use: %w",
				ErrOverBudget, name, FormatSize(size), FormatSize(used-idle), FormatSize(budget), backends.ErrOutOfMemory)
		}
	}
	var victims []*model.Model
	for budget > 0 && c.used+size > budget {
		var lru *cacheEntry
		for _, e := range c.entries {
			if e.model != nil && e.refs == 0 && (lru == nil || e.lastUse < lru.lastUse) {
				lru = e
			}
		}
		if lru == nil {
			break
		}
		delete(c.entries, lru.name)
		c.used -= lru.cost
		victims = append(victims, lru.model)
	}
	c.used += size
	c.mu.Unlock()
	c.unloadAll(ctx, victims, "evicted")
	return nil
}

// ReserveKV counts bytes of KV cache (a session about to be opened)
// against the memory budget, evicting idle models least recently used
// first to make room, and returns the function that gives them back
// (call it once the session is closed). The error wraps ErrOverBudget
// and backends.ErrOutOfMemory when they cannot fit. It implements
// core.KVReserver.
func (c *ModelCache) ReserveKV(ctx context.Context, bytes int64) (func(), error) {
	if bytes <= 0 {
		return func() {}, nil
	}
	if err := c.reserve(ctx, "a KV cache of "+FormatSize(bytes), bytes); err != nil {
		return nil, fmt.Errorf("loader: %w", err)
	}
	c.mu.Lock()
	c.kvBytes += bytes
	c.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			c.used -= bytes
			c.kvBytes -= bytes
			c.mu.Unlock()
		})
	}, nil
}

// unloadAll unloads models that were removed from the cache.
func (c *ModelCache) unloadAll(ctx context.Context, ms []*model.Model, why string) error {
	var errs []error
	for _, m := range ms {
		c.log.Info("model "+why, "name", m.Name, "bytes", m.SizeBytes)
		errs = append(errs, c.unload(context.WithoutCancel(ctx), m))
	}
	return errors.Join(errs...)
}

func (c *ModelCache) unload(ctx context.Context, m *model.Model) error {
	if err := m.Backend.UnloadModel(ctx, m.Info.ID); err != nil {
		c.log.Warn("unload failed", "name", m.Name, "error", err)
		return fmt.Errorf("loader: unload %q: %w", m.Name, err)
	}
	return nil
}

// verify checks the file's sha256 against the configured digest, once per
// file version (size, modification time, inode and inode change time:
// the fast path; any change and the file is hashed again).
func (c *ModelCache) verify(ctx context.Context, res Resolved) error {
	f, err := os.Open(res.Path)
	if err != nil {
		return fmt.Errorf("model %q: %w: %w", res.Name, ErrNotFound, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("model %q: %w", res.Name, err)
	}
	stamp := stampOf(st)
	c.mu.Lock()
	ok := c.verified[res.Path] == stamp
	c.mu.Unlock()
	if ok {
		return nil
	}
	got, err := hashFile(ctx, f)
	if err != nil {
		return fmt.Errorf("model %q: checksum: %w", res.Name, err)
	}
	if got != res.SHA256 {
		return fmt.Errorf("%w: model %q (%s) has sha256 %s, configured %s", ErrChecksum, res.Name, res.Path, got, res.SHA256)
	}
	c.mu.Lock()
	c.verified[res.Path] = stamp
	c.mu.Unlock()
	return nil
}

// hashFile streams r through sha256, checking ctx between chunks.
func hashFile(ctx context.Context, r io.Reader) (string, error) {
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		n, err := r.Read(buf)
		h.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Release gives back a reference taken by Acquire. The model stays
// loaded; it becomes evictable when no reference is left.
func (c *ModelCache) Release(m *model.Model) {
	if m == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[m.Name]
	if e == nil || e.model != m {
		c.log.Warn("release of a model the cache does not hold", "name", m.Name)
		return
	}
	if e.refs == 0 {
		c.log.Warn("release of a model with no references", "name", m.Name)
		return
	}
	e.refs--
	c.tick++
	e.lastUse = c.tick
}

// List returns the registry's servable models with their cache state.
// Loaded models whose file has since vanished from the registry are
// listed too. A registry error is logged and only loaded models are
// listed.
func (c *ModelCache) List(ctx context.Context) []ModelEntry {
	_ = ctx // listing reads the file system only; kept for symmetry
	list, err := c.cfg.Registry.List()
	if err != nil {
		c.log.Warn("listing models", "error", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := map[string]bool{}
	for i := range list {
		seen[list[i].Name] = true
		if e := c.entries[list[i].Name]; e != nil && e.model != nil {
			list[i].Loaded, list[i].Refs = true, e.refs
			if me, ok := e.model.Backend.(interface{ ModelErr(backends.ModelID) error }); ok && list[i].Error == "" {
				if err := me.ModelErr(e.model.Info.ID); err != nil {
					list[i].Error = err.Error() // loaded, but lost to a plugin restart
				}
			}
		}
	}
	for name, e := range c.entries {
		if e.model == nil || seen[name] {
			continue
		}
		list = append(list, ModelEntry{Name: name, Path: e.model.Path, Size: e.model.SizeBytes, Type: quantName(e.model.Meta), Loaded: true, Refs: e.refs})
	}
	return list
}

// KVBytes returns the KV cache bytes reserved with ReserveKV (part of Used).
func (c *ModelCache) KVBytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.kvBytes
}

// Used returns the bytes counted against the budget (loaded models,
// loads in flight and reserved KV caches).
func (c *ModelCache) Used() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.used
}

// Close unloads every loaded model; later Acquires fail with ErrCacheClosed.
// Loads in flight finish and are unloaded at once.
func (c *ModelCache) Close() error {
	c.mu.Lock()
	c.closed = true
	var ms []*model.Model
	for name, e := range c.entries {
		if e.model != nil {
			ms = append(ms, e.model)
			c.used -= e.cost
			delete(c.entries, name)
		}
	}
	c.mu.Unlock()
	return c.unloadAll(context.Background(), ms, "unloaded")
}

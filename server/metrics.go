package server

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/core"
)

// Histogram buckets (upper bounds).
var (
	ttftBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}
	tpsBuckets  = []float64{1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000}
)

// Metrics collects the server's counters and histograms and writes them
// in the Prometheus text exposition format. It is safe for concurrent
// use. Labels are only ever model names the registry resolved, backend
// names, endpoints, status codes and error kinds, so their number stays
// bounded.
type Metrics struct {
	mu           sync.Mutex
	requests     map[string]uint64 // labels: endpoint, model, backend, code
	errors       map[string]uint64 // labels: kind, model, backend
	tokens       map[string]uint64 // labels: model, backend
	promptTokens map[string]uint64
	decodes      map[string]uint64 // backend Decode calls, counted live
	streamBytes  map[string]uint64 // guest output bytes, counted live
	ttft         map[string]*histogram
	tps          map[string]*histogram
}

// histogram is a cumulative-bucket histogram.
type histogram struct {
	bounds []float64
	counts []uint64 // per bucket, not cumulative; len(bounds)+1 (+Inf)
	sum    float64
	n      uint64
}

func (h *histogram) observe(v float64) {
	i := sort.SearchFloat64s(h.bounds, v)
	h.counts[i]++
	h.sum += v
	h.n++
}

// NewMetrics returns empty metrics.
func NewMetrics() *Metrics {
	return &Metrics{
		requests: map[string]uint64{}, errors: map[string]uint64{},
		tokens: map[string]uint64{}, promptTokens: map[string]uint64{},
		decodes: map[string]uint64{}, streamBytes: map[string]uint64{},
		ttft: map[string]*histogram{}, tps: map[string]*histogram{},
	}
}

// labels renders a label set; pairs is name, value, name, value, ...
func labels(pairs ...string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i+1 < len(pairs); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(pairs[i])
		b.WriteString(`="`)
		b.WriteString(escapeLabel(pairs[i+1]))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`).Replace(s)
}

func (m *Metrics) request(endpoint, model, backend string, code int) {
	m.mu.Lock()
	m.requests[labels("endpoint", endpoint, "model", model, "backend", backend, "code", strconv.Itoa(code))]++
	m.mu.Unlock()
}

func (m *Metrics) error(kind, model, backend string) {
	m.mu.Lock()
	m.errors[labels("kind", kind, "model", model, "backend", backend)]++
	m.mu.Unlock()
}

// run records a finished run.
func (m *Metrics) run(model, backend string, prompt, generated int, ttft time.Duration, genTime time.Duration) {
	l := labels("model", model, "backend", backend)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tokens[l] += uint64(generated)
	m.promptTokens[l] += uint64(prompt)
	if ttft > 0 {
		h := m.ttft[l]
		if h == nil {
			h = &histogram{bounds: ttftBuckets, counts: make([]uint64, len(ttftBuckets)+1)}
			m.ttft[l] = h
		}
		h.observe(ttft.Seconds())
	}
	if generated > 1 && genTime > 0 {
		h := m.tps[l]
		if h == nil {
			h = &histogram{bounds: tpsBuckets, counts: make([]uint64, len(tpsBuckets)+1)}
			m.tps[l] = h
		}
		h.observe(float64(generated-1) / genTime.Seconds())
	}
}

func (m *Metrics) streamed(model, backend string, n int) {
	m.mu.Lock()
	m.streamBytes[labels("model", model, "backend", backend)] += uint64(n)
	m.mu.Unlock()
}

func (m *Metrics) decode(model, backend string) {
	m.mu.Lock()
	m.decodes[labels("model", model, "backend", backend)]++
	m.mu.Unlock()
}

// gauge is one sample of a gauge computed at scrape time.
type gauge struct {
	labels string
	value  float64
}

// scrapeState is what the server reports at scrape time.
type scrapeState struct {
	queued, running []gauge // per model
	restarts        []gauge // per backend
	up              []gauge // per backend
}

// write writes the exposition.
func (m *Metrics) write(w io.Writer, st scrapeState) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var b strings.Builder
	counter := func(name, help string, vals map[string]uint64) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s counter\n", name, help, name)
		for _, k := range sortedKeys(vals) {
			fmt.Fprintf(&b, "%s%s %d\n", name, k, vals[k])
		}
	}
	gauges := func(name, typ, help string, gs []gauge) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
		for _, g := range gs {
			fmt.Fprintf(&b, "%s%s %s\n", name, g.labels, strconv.FormatFloat(g.value, 'g', -1, 64))
		}
	}
	hist := func(name, help string, hs map[string]*histogram) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name)
		for _, k := range sortedKeys(hs) {
			h := hs[k]
			inner := strings.TrimSuffix(strings.TrimPrefix(k, "{"), "}")
			var cum uint64
			for i, ub := range h.bounds {
				cum += h.counts[i]
				fmt.Fprintf(&b, "%s_bucket{%s,le=\"%s\"} %d\n", name, inner, strconv.FormatFloat(ub, 'g', -1, 64), cum)
			}
			cum += h.counts[len(h.bounds)]
			fmt.Fprintf(&b, "%s_bucket{%s,le=\"+Inf\"} %d\n", name, inner, cum)
			fmt.Fprintf(&b, "%s_sum%s %s\n", name, k, strconv.FormatFloat(h.sum, 'g', -1, 64))
			fmt.Fprintf(&b, "%s_count%s %d\n", name, k, h.n)
		}
	}
	counter("realm_requests_total", "HTTP requests answered, by endpoint, model, backend and status code.", m.requests)
	counter("realm_request_errors_total", "Failed requests by error kind.", m.errors)
	counter("realm_tokens_generated_total", "Tokens generated by finished runs.", m.tokens)
	counter("realm_prompt_tokens_total", "Prompt tokens of finished runs.", m.promptTokens)
	counter("realm_backend_decodes_total", "Decode calls made to the backend (counted as they happen; one per generated token after the prefill).", m.decodes)
	counter("realm_stream_bytes_total", "Bytes of generated text written by guests (counted as they happen).", m.streamBytes)
	hist("realm_time_to_first_token_seconds", "Time from request arrival to the first generated text.", m.ttft)
	hist("realm_tokens_per_second", "Generation speed of each run (tokens after the first over the time after it).", m.tps)
	gauges("realm_queue_depth", "gauge", "Requests waiting for a slot, per model.", st.queued)
	gauges("realm_requests_running", "gauge", "Requests running, per model.", st.running)
	gauges("realm_backend_restarts_total", "counter", "Times the backend plugin was restarted after a failure.", st.restarts)
	gauges("realm_backend_up", "gauge", "Whether the backend plugin is running (1) or down/restarting (0).", st.up)
	_, err := io.WriteString(w, b.String())
	return err
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// InstrumentModels wraps a core.Models so that every Decode the host
// makes on a model's backend is counted live in m (per model and
// backend): the server's view of the generation in progress, which
// stops when a run is cancelled.
func InstrumentModels(inner core.Models, m *Metrics) core.Models {
	return instrumented{inner: inner, m: m}
}

type instrumented struct {
	inner core.Models
	m     *Metrics
}

func (i instrumented) Acquire(ctx context.Context, name string) (*core.Model, error) {
	cm, err := i.inner.Acquire(ctx, name)
	if err != nil {
		return nil, err
	}
	c := *cm
	c.Backend = countingBackend{Backend: cm.Backend, m: i.m, model: cm.Name, backend: cm.BackendName}
	c.Ref = cm
	return &c, nil
}

func (i instrumented) Release(cm *core.Model) {
	if inner, ok := cm.Ref.(*core.Model); ok {
		i.inner.Release(inner)
	}
}

func (i instrumented) List(ctx context.Context) ([]string, error) { return i.inner.List(ctx) }

// countingBackend counts Decode calls.
type countingBackend struct {
	backends.Backend
	m              *Metrics
	model, backend string
}

func (c countingBackend) Decode(ctx context.Context, req backends.DecodeRequest) (*backends.DecodeResult, error) {
	c.m.decode(c.model, c.backend)
	return c.Backend.Decode(ctx, req)
}

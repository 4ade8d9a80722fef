package server

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func scrape(t *testing.T, h http.Handler, accept string) (string, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	b, _ := io.ReadAll(rec.Body)
	return rec.Header().Get("Content-Type"), string(b)
}

// TestMetricsExposition: counters and histograms come out in the text
// format with escaped label values, OpenMetrics when asked for, and two
// Metrics never share counts (each has its own registry).
func TestMetricsExposition(t *testing.T) {
	m, other := NewMetrics(), NewMetrics()
	m.request("chat", "m\"1\n", "reference", 200)
	m.run("m1", "reference", 5, 3, 20*time.Millisecond, time.Second)
	ct, text := scrape(t, m.Handler(), "")
	if !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("content type %q", ct)
	}
	for _, want := range []string{
		`realm_requests_total{backend="reference",code="200",endpoint="chat",model="m\"1\n"} 1`,
		`realm_tokens_generated_total{backend="reference",model="m1"} 3`,
		`realm_prompt_tokens_total{backend="reference",model="m1"} 5`,
		`realm_time_to_first_token_seconds_bucket{backend="reference",model="m1",le="0.025"} 1`,
		`realm_time_to_first_token_seconds_bucket{backend="reference",model="m1",le="0.01"} 0`,
		`realm_tokens_per_second_sum{backend="reference",model="m1"} 2`,
		"# TYPE realm_tokens_per_second histogram",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("exposition lacks %s", want)
		}
	}
	ct, om := scrape(t, m.Handler(), "application/openmetrics-text; version=1.0.0")
	if !strings.HasPrefix(ct, "application/openmetrics-text") || !strings.HasSuffix(strings.TrimSpace(om), "# EOF") {
		t.Errorf("OpenMetrics negotiation: content type %q", ct)
	}
	if _, text := scrape(t, other.Handler(), ""); strings.Contains(text, "realm_requests_total{") {
		t.Error("a second Metrics shares the first one's counts")
	}
}

// TestMetricsRequestLatency: instrument records each request's latency
// by endpoint and status code.
func TestMetricsRequestLatency(t *testing.T) {
	m := NewMetrics()
	h := m.instrument(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/v1/chat/completions", nil))
	if _, text := scrape(t, m.Handler(), ""); !strings.Contains(text, `realm_request_duration_seconds_count{code="418",endpoint="chat"} 1`) {
		t.Errorf("no latency sample:\n%s", text)
	}
}

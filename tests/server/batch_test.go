package server_test

import (
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/realmrt/realm/server"
)

// TestBatchBackendCrash runs max_concurrent (4) generations of one model
// at once, which the plugin decodes in merged steps, and SIGKILLs the
// plugin: every one of them fails with 503 backend_unavailable, and
// after the restart 4 concurrent requests are answered as before.
func TestBatchBackendCrash(t *testing.T) {
	ts, _ := startServer(t, server.Options{MaxConcurrent: 4})
	sup := testEnv.rt.Supervisor
	type answer struct {
		resp *http.Response
		body []byte
	}
	const n = 4
	done := make(chan answer, n)
	for range n {
		go func() {
			resp, b := post(t, ts.URL+"/v1/apps/longgen/completions", `{"model":"stories260k","prompt":"Once upon a time","max_tokens":200}`)
			done <- answer{resp, b}
		}()
	}
	running := `realm_requests_running{model="stories260k"}`
	decodes := `realm_backend_decodes_total{backend="reference",model="stories260k"}`
	if !waitFor(10*time.Second, func() bool {
		return metricValue(t, ts.URL, running) == n && metricValue(t, ts.URL, decodes) > 200
	}) {
		t.Fatalf("%d generations did not run at once (running %v)", n, metricValue(t, ts.URL, running))
	}
	p, err := os.FindProcess(sup.PID())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	for range n {
		var a answer
		select {
		case a = <-done:
		case <-time.After(15 * time.Second):
			t.Fatal("no answer after the plugin died")
		}
		if a.resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("status %d: %s", a.resp.StatusCode, a.body)
			continue
		}
		if e := decode[struct{ Error *apiErr }](t, a.body).Error; e == nil || e.Code == nil || *e.Code != "backend_unavailable" {
			t.Errorf("%s", a.body)
		}
	}
	if !waitFor(20*time.Second, func() bool {
		r, _ := get(t, ts.URL+"/health")
		return r.StatusCode == 200
	}) {
		t.Fatal("the backend did not come back")
	}
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, b := post(t, ts.URL+"/v1/completions", `{"model":"stories260k","prompt":"Once upon a time","max_tokens":5,"temperature":0}`)
			if resp.StatusCode != 200 || !strings.Contains(string(b), ", there was a") {
				t.Errorf("after the restart: %d %s", resp.StatusCode, b)
			}
		}()
	}
	wg.Wait()
	if v := metricValue(t, ts.URL, `realm_request_errors_total{backend="reference",kind="backend_unavailable",model="stories260k"}`); v != n {
		t.Errorf("backend_unavailable errors %v, want %d", v, n)
	}
}

// TestBatchClientDisconnect disconnects one streamed generation while
// three other requests of the same model decode with it in merged
// steps: the others finish with exactly the text each gets alone, and
// the disconnected run ends cancelled.
func TestBatchClientDisconnect(t *testing.T) {
	ts, _ := startServer(t, server.Options{MaxConcurrent: 4})
	bodies := []string{
		`{"model":"stories260k","prompt":"Once upon a time","max_tokens":40,"temperature":0}`,
		`{"model":"stories260k","prompt":"One day, a little girl","max_tokens":40,"temperature":0}`,
		`{"model":"stories260k","prompt":"The cat","max_tokens":40,"temperature":0}`,
	}
	alone := make([]string, len(bodies))
	for i, b := range bodies {
		resp, out := post(t, ts.URL+"/v1/completions", b)
		if resp.StatusCode != 200 {
			t.Fatalf("alone: %d %s", resp.StatusCode, out)
		}
		alone[i] = decode[struct{ Choices []struct{ Text string } }](t, out).Choices[0].Text
	}
	resp, cancel := openStream(t, ts.URL)
	defer resp.Body.Close()
	got := make([]string, len(bodies))
	var wg sync.WaitGroup
	for i, b := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, out := post(t, ts.URL+"/v1/completions", b)
			if r.StatusCode != 200 {
				t.Errorf("request %d: %d %s", i, r.StatusCode, out)
				return
			}
			got[i] = decode[struct{ Choices []struct{ Text string } }](t, out).Choices[0].Text
		}()
	}
	running := `realm_requests_running{model="stories260k"}`
	if !waitFor(10*time.Second, func() bool { return metricValue(t, ts.URL, running) == 4 }) {
		t.Error("the four requests did not run at once")
	}
	cancel()
	resp.Body.Close()
	wg.Wait()
	for i := range bodies {
		if got[i] != alone[i] {
			t.Errorf("request %d beside a disconnected stream: %q, alone %q", i, got[i], alone[i])
		}
	}
	if !waitFor(5*time.Second, func() bool { return metricValue(t, ts.URL, running) == 0 }) {
		t.Fatal("the disconnected run did not end")
	}
	cancelled := `realm_request_errors_total{backend="reference",kind="cancelled",model="stories260k"}`
	if v := metricValue(t, ts.URL, cancelled); v != 1 {
		t.Errorf("cancelled errors %v, want 1", v)
	}
}

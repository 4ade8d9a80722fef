package server_test

import (
	"bufio"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/realmrt/realm/gguf"
	"github.com/realmrt/realm/internal/refdata"
	"github.com/realmrt/realm/server"
	"github.com/realmrt/realm/tokenizer"
)

// TestErrors checks every error status and the OpenAI error shape.
func TestErrors(t *testing.T) {
	ts, _ := startServer(t, server.Options{})
	chat, comp := ts.URL+"/v1/chat/completions", ts.URL+"/v1/completions"
	msgs := `"messages":[{"role":"user","content":"Hi"}]`
	cases := []struct {
		name, url, body string
		status          int
		param, code     string
	}{
		{"bad json", chat, `{"model":`, 400, "", ""},
		{"trailing data", chat, `{"model":"stories260k",` + msgs + `} {}`, 400, "", ""},
		{"not an object", chat, `[1,2]`, 400, "", ""},
		{"no model", chat, `{` + msgs + `}`, 400, "model", ""},
		{"no messages", chat, `{"model":"stories260k"}`, 400, "messages", ""},
		{"empty messages", chat, `{"model":"stories260k","messages":[]}`, 400, "messages", ""},
		{"bad role", chat, `{"model":"stories260k","messages":[{"role":"wizard","content":"x"}]}`, 400, "messages[0].role", ""},
		{"image part", chat, `{"model":"stories260k","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}`, 400, "messages[0].content", ""},
		{"n beyond the policy", chat, `{"model":"stories260k",` + msgs + `,"n":9}`, 400, "n", ""},
		{"n=0", comp, `{"model":"stories260k","prompt":"x","n":0}`, 400, "n", ""},
		{"temperature", chat, `{"model":"stories260k",` + msgs + `,"temperature":3}`, 400, "temperature", ""},
		{"top_p", chat, `{"model":"stories260k",` + msgs + `,"top_p":0}`, 400, "top_p", ""},
		{"max_tokens 0", chat, `{"model":"stories260k",` + msgs + `,"max_tokens":0}`, 400, "max_tokens", ""},
		{"max_tokens type", chat, `{"model":"stories260k",` + msgs + `,"max_tokens":"many"}`, 400, "max_tokens", ""},
		{"empty stop", comp, `{"model":"stories260k","prompt":"x","stop":""}`, 400, "stop", ""},
		{"stop type", comp, `{"model":"stories260k","prompt":"x","stop":5}`, 400, "stop", ""},
		{"batched prompt", comp, `{"model":"stories260k","prompt":["a","b"]}`, 400, "prompt", ""},
		{"no prompt", comp, `{"model":"stories260k"}`, 400, "prompt", ""},
		{"stream_options without stream", comp, `{"model":"stories260k","prompt":"x","stream_options":{"include_usage":true}}`, 400, "stream_options", ""},
		{"context exceeded", comp, `{"model":"stories260k","prompt":"` + strings.Repeat("Lily saw a cat. ", 400) + `"}`, 400, "prompt", "context_length_exceeded"},
		{"unknown model", chat, `{"model":"no-such-model",` + msgs + `}`, 404, "model", "model_not_found"},
		{"invalid model name", comp, `{"model":"../etc/passwd","prompt":"x"}`, 404, "model", "model_not_found"},
		{"unknown app", ts.URL + "/v1/apps/nope/completions", `{"model":"stories260k","prompt":"x"}`, 404, "", "app_not_found"},
		{"model not allowed to app", ts.URL + "/v1/apps/restricted/completions", `{"model":"stories260k","prompt":"x"}`, 404, "model", "model_not_found"},
		{"unknown endpoint", ts.URL + "/v1/images/generations", `{}`, 404, "", ""},
		{"app fails (guest memory too small)", ts.URL + "/v1/apps/starved/completions", `{"model":"stories260k","prompt":"x"}`, 500, "", ""},
		{"wrong method", ts.URL + "/v1/models", `{}`, 405, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, b := post(t, c.url, c.body)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, b)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			e := decode[struct{ Error *apiErr }](t, b).Error
			if e == nil || e.Message == "" || e.Type == "" {
				t.Fatalf("not an OpenAI error: %s", b)
			}
			if c.param != "" && (e.Param == nil || *e.Param != c.param) {
				t.Errorf("param %v, want %q (%s)", e.Param, c.param, b)
			}
			if c.code != "" && (e.Code == nil || *e.Code != c.code) {
				t.Errorf("code %v, want %q (%s)", e.Code, c.code, b)
			}
		})
	}
}

// TestEndpoints checks the GET endpoints and a plain chat and text
// completion with their usage counts.
func TestEndpoints(t *testing.T) {
	ts, _ := startServer(t, server.Options{})
	ref, err := refdata.LoadOutput("stories260K.once-upon")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("health", func(t *testing.T) {
		resp, b := get(t, ts.URL+"/health")
		if resp.StatusCode != 200 || !strings.Contains(string(b), `"ok"`) {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
	})
	t.Run("models", func(t *testing.T) {
		resp, b := get(t, ts.URL+"/v1/models")
		l := decode[struct {
			Object string
			Data   []struct{ ID, Object, OwnedBy string }
		}](t, b)
		if resp.StatusCode != 200 || l.Object != "list" {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
		var ids []string
		for _, m := range l.Data {
			if m.Object != "model" {
				t.Errorf("object %q", m.Object)
			}
			ids = append(ids, m.ID)
		}
		if strings.Join(ids, ",") != "stories-alt,stories260k" {
			t.Errorf("models %v", ids)
		}
		if resp, b := get(t, ts.URL+"/v1/models/stories260k"); resp.StatusCode != 200 || !strings.Contains(string(b), `"id":"stories260k"`) {
			t.Errorf("GET model: %d %s", resp.StatusCode, b)
		}
		if resp, b := get(t, ts.URL+"/v1/models/nope"); resp.StatusCode != 404 {
			t.Errorf("GET unknown model: %d %s", resp.StatusCode, b)
		}
	})
	t.Run("completion matches the reference", func(t *testing.T) {
		resp, b := post(t, ts.URL+"/v1/completions", `{"model":"stories260k","prompt":"Once upon a time","max_tokens":20,"temperature":0}`)
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
		c := decode[completion](t, b)
		if c.Object != "text_completion" || len(c.Choices) != 1 || c.Choices[0].Text == nil {
			t.Fatalf("shape: %s", b)
		}
		text := *c.Choices[0].Text
		want := ref.GenText[:len(", there was a little girl named Lily")]
		if !strings.HasPrefix(text, want) || !strings.HasPrefix(ref.GenText, text) {
			t.Errorf("text %q, want a prefix of %q", text, ref.GenText)
		}
		if c.Usage.PromptTokens != len(ref.PromptIDs) || c.Usage.CompletionTokens != 20 || c.Usage.TotalTokens != len(ref.PromptIDs)+20 {
			t.Errorf("usage %+v, want prompt %d completion 20", c.Usage, len(ref.PromptIDs))
		}
		if c.Choices[0].FinishReason != "length" {
			t.Errorf("finish_reason %q", c.Choices[0].FinishReason)
		}
	})
	t.Run("stop string", func(t *testing.T) {
		resp, b := post(t, ts.URL+"/v1/completions", `{"model":"stories260k","prompt":"Once upon a time","max_tokens":40,"temperature":0,"stop":["Lily"]}`)
		c := decode[completion](t, b)
		if resp.StatusCode != 200 || *c.Choices[0].Text != ", there was a little girl named " || c.Choices[0].FinishReason != "stop" {
			t.Errorf("%d %s", resp.StatusCode, b)
		}
	})
	t.Run("chat", func(t *testing.T) {
		resp, b := post(t, ts.URL+"/v1/chat/completions", `{"model":"stories260k","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}],"max_tokens":7,"temperature":0,"seed":1}`)
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
		c := decode[completion](t, b)
		if c.Object != "chat.completion" || !strings.HasPrefix(c.ID, "chatcmpl-") || c.Model != "stories260k" ||
			len(c.Choices) != 1 || c.Choices[0].Message == nil || c.Choices[0].Message.Role != "assistant" || c.Choices[0].Message.Content == "" {
			t.Fatalf("shape: %s", b)
		}
		// The prompt count is the model tokenizer's, on the fallback
		// template (the stories model has no chat template).
		prompt := "Be brief.\n\nUser: Hi\nAssistant:"
		if n := countTokens(t, prompt); c.Usage.PromptTokens != n {
			t.Errorf("prompt_tokens %d, want %d", c.Usage.PromptTokens, n)
		}
		if c.Usage.CompletionTokens != 7 || c.Usage.TotalTokens != c.Usage.PromptTokens+7 {
			t.Errorf("usage %+v", c.Usage)
		}
	})
	t.Run("seed", func(t *testing.T) {
		gen := func(seed string) string {
			resp, b := post(t, ts.URL+"/v1/completions", `{"model":"stories260k","prompt":"Once upon a time","max_tokens":24,"temperature":1`+seed+`}`)
			if resp.StatusCode != 200 {
				t.Fatalf("%d %s", resp.StatusCode, b)
			}
			return *decode[completion](t, b).Choices[0].Text
		}
		if a, b := gen(`,"seed":42`), gen(`,"seed":42`); a != b {
			t.Errorf("one seed, two answers: %q, %q", a, b)
		}
		// Without a seed each request samples afresh.
		if a, b, c := gen(""), gen(""), gen(""); a == b && b == c {
			t.Errorf("three unseeded requests gave the same text %q", a)
		}
	})
	t.Run("app by model name", func(t *testing.T) {
		// stories-alt is claimed by app "tight" (max_tokens = 3).
		resp, b := post(t, ts.URL+"/v1/completions", `{"model":"stories-alt","prompt":"Once upon a time","max_tokens":30,"temperature":0}`)
		c := decode[completion](t, b)
		if resp.StatusCode != 200 || c.Usage.CompletionTokens != 3 || c.Choices[0].FinishReason != "length" {
			t.Errorf("%d %s", resp.StatusCode, b)
		}
	})
	t.Run("app by route", func(t *testing.T) {
		resp, b := post(t, ts.URL+"/v1/apps/tight/completions", `{"model":"stories-alt","prompt":"Once upon a time","max_tokens":30,"temperature":0}`)
		c := decode[completion](t, b)
		if resp.StatusCode != 200 || c.Usage.CompletionTokens != 3 {
			t.Errorf("%d %s", resp.StatusCode, b)
		}
	})
	t.Run("metrics", func(t *testing.T) {
		resp, b := get(t, ts.URL+"/metrics")
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
			t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		for _, s := range []string{
			`realm_requests_total{backend="reference",code="200",endpoint="completions",model="stories260k"}`,
			`realm_tokens_generated_total{backend="reference",model="stories260k"}`,
			`realm_time_to_first_token_seconds_bucket{backend="reference",model="stories260k",le="+Inf"}`,
			`realm_tokens_per_second_count{backend="reference",model="stories260k"}`,
			`realm_queue_depth{model="stories260k"} 0`,
			`realm_backend_restarts_total{backend="reference"} `, // other tests of the package may have restarted it
			`realm_backend_up{backend="reference"} 1`,
			`realm_kv_pool_budget_bytes{model="stories260k"} 6.7108864e+07`,
			`realm_kv_prefix_hits_total{model="stories260k"}`,
			`realm_kv_evictions_total{model="stories260k"} 0`,
			"# TYPE realm_time_to_first_token_seconds histogram",
			`realm_request_duration_seconds_count{code="200",endpoint="completions"}`,
			"# TYPE realm_request_duration_seconds histogram",
		} {
			if !strings.Contains(string(b), s) {
				t.Errorf("metrics lack %s", s)
			}
		}
		if v := metricValue(t, ts.URL, `realm_tokens_generated_total{backend="reference",model="stories260k"}`); v < 27 {
			t.Errorf("tokens generated %v, want ≥ 27", v)
		}
	})
}

// countTokens counts the tokens of text with the stories model's
// tokenizer, as the model would see it (with its default BOS).
func countTokens(t *testing.T, text string) int {
	t.Helper()
	p, err := refdata.Path("models", "stories260K.gguf")
	if err != nil {
		t.Fatal(err)
	}
	m, err := gguf.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	tok, err := tokenizer.FromGGUF(m.File)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := tok.Encode(text, tok.AddBOSDefault(), true)
	if err != nil {
		t.Fatal(err)
	}
	return len(ids)
}

// TestStreaming checks the SSE framing of streamed chat and text
// completions and that the streamed text equals the non-streamed one.
func TestStreaming(t *testing.T) {
	ts, _ := startServer(t, server.Options{})
	for _, chat := range []bool{true, false} {
		name, url := "completions", ts.URL+"/v1/completions"
		body := `"model":"stories260k","prompt":"Once upon a time","max_tokens":30,"temperature":0`
		if chat {
			name, url = "chat", ts.URL+"/v1/chat/completions"
			body = `"model":"stories260k","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":30,"temperature":0`
		}
		t.Run(name, func(t *testing.T) {
			resp, plain := post(t, url, "{"+body+"}")
			if resp.StatusCode != 200 {
				t.Fatalf("%d %s", resp.StatusCode, plain)
			}
			want := decode[completion](t, plain)
			wantText := ""
			if chat {
				wantText = want.Choices[0].Message.Content
			} else {
				wantText = *want.Choices[0].Text
			}

			resp, b := post(t, url, "{"+body+`,"stream":true,"stream_options":{"include_usage":true}}`)
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
				t.Fatalf("%d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
			}
			events := sseEvents(t, b)
			if len(events) < 4 || events[len(events)-1] != "[DONE]" {
				t.Fatalf("events: %q", events)
			}
			var text strings.Builder
			var finish string
			var id string
			for i, ev := range events[:len(events)-1] {
				c := decode[streamChunk](t, []byte(ev))
				if c.Error != nil {
					t.Fatalf("error event %s", ev)
				}
				wantObj := "text_completion"
				if chat {
					wantObj = "chat.completion.chunk"
				}
				if c.Object != wantObj || c.Model != "stories260k" {
					t.Errorf("event %d: %s", i, ev)
				}
				if id == "" {
					id = c.ID
				} else if c.ID != id {
					t.Errorf("event %d: id %q, want %q", i, c.ID, id)
				}
				if i == len(events)-2 { // the usage chunk
					if c.Usage == nil || len(c.Choices) != 0 {
						t.Fatalf("last chunk is not the usage chunk: %s", ev)
					}
					if c.Usage.PromptTokens != want.Usage.PromptTokens || c.Usage.CompletionTokens != 30 || c.Usage.TotalTokens != want.Usage.TotalTokens {
						t.Errorf("usage %+v, want %+v", *c.Usage, want.Usage)
					}
					continue
				}
				if c.Usage != nil || len(c.Choices) != 1 {
					t.Fatalf("event %d: %s", i, ev)
				}
				ch := c.Choices[0]
				if chat && i == 0 {
					if ch.Delta.Role == nil || *ch.Delta.Role != "assistant" {
						t.Errorf("first chunk has no assistant role: %s", ev)
					}
				} else if ch.Delta.Role != nil {
					t.Errorf("event %d: role again: %s", i, ev)
				}
				if finish != "" {
					t.Errorf("event %d after the finish chunk: %s", i, ev)
				}
				if ch.FinishReason != nil {
					finish = *ch.FinishReason
				}
				if ch.Delta.Content != nil {
					text.WriteString(*ch.Delta.Content)
				}
				if ch.Text != nil {
					text.WriteString(*ch.Text)
				}
			}
			if finish != "length" {
				t.Errorf("finish_reason %q", finish)
			}
			if text.String() != wantText {
				t.Errorf("streamed %q, plain %q", text.String(), wantText)
			}
		})
	}
}

// TestAPIKeys checks 401 without a valid bearer key.
func TestAPIKeys(t *testing.T) {
	keys := filepath.Join(t.TempDir(), "keys.txt")
	if err := os.WriteFile(keys, []byte("# operators\nsk-one\n\n  sk-two  \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	list, err := server.ReadAPIKeys(keys)
	if err != nil {
		t.Fatal(err)
	}
	ts, _ := startServer(t, server.Options{APIKeys: list})
	body := `{"model":"stories260k","prompt":"Once","max_tokens":2}`
	for _, c := range []struct {
		name   string
		hdr    []string
		status int
	}{
		{"none", nil, 401},
		{"wrong", []string{"Authorization", "Bearer sk-three"}, 401},
		{"prefix of a key", []string{"Authorization", "Bearer sk-"}, 401},
		{"not bearer", []string{"Authorization", "Basic sk-one"}, 401},
		{"comment is no key", []string{"Authorization", "Bearer # operators"}, 401},
		{"first", []string{"Authorization", "Bearer sk-one"}, 200},
		{"second", []string{"Authorization", "Bearer sk-two"}, 200},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, b := post(t, ts.URL+"/v1/completions", body, c.hdr...)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, b)
			}
			if c.status == 401 {
				e := decode[struct{ Error *apiErr }](t, b).Error
				if e == nil || e.Code == nil || *e.Code != "invalid_api_key" {
					t.Errorf("%s", b)
				}
			}
			resp, _ = get(t, ts.URL+"/v1/models", c.hdr...)
			if resp.StatusCode != c.status {
				t.Errorf("models: status %d, want %d", resp.StatusCode, c.status)
			}
		})
	}
	// With keys configured, the probes need one too (Options.PublicProbes
	// opens them).
	if resp, _ := get(t, ts.URL+"/health"); resp.StatusCode != 401 {
		t.Errorf("health without a key: %d", resp.StatusCode)
	}
	if resp, _ := get(t, ts.URL+"/health", "Authorization", "Bearer sk-one"); resp.StatusCode != 200 {
		t.Errorf("health with a key: %d", resp.StatusCode)
	}
}

// openStream starts a streamed request on the longgen app and returns
// once its first content chunk arrived.
func openStream(t *testing.T, base string) (*http.Response, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/apps/longgen/completions",
		strings.NewReader(`{"model":"stories260k","prompt":"Once upon a time","max_tokens":200,"stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		cancel()
		t.Fatalf("status %d", resp.StatusCode)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "data: {") {
		cancel()
		t.Fatalf("first chunk %q: %v", line, err)
	}
	return resp, cancel
}

// TestQueueFull checks the per-model limit and the 429 of a full queue.
func TestQueueFull(t *testing.T) {
	zero := 0
	ts, _ := startServer(t, server.Options{MaxConcurrent: 1, MaxQueue: &zero})
	resp, cancel := openStream(t, ts.URL)
	defer resp.Body.Close()
	defer cancel()
	start := time.Now()
	r2, b := post(t, ts.URL+"/v1/completions", `{"model":"stories260k","prompt":"Once","max_tokens":2}`)
	if r2.StatusCode != http.StatusTooManyRequests || r2.Header.Get("Retry-After") == "" {
		t.Fatalf("status %d Retry-After %q: %s", r2.StatusCode, r2.Header.Get("Retry-After"), b)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("429 took %v; it must answer at once", d)
	}
	if e := decode[struct{ Error *apiErr }](t, b).Error; e == nil || e.Type != "rate_limit_error" {
		t.Errorf("%s", b)
	}
	// Another model has its own slots.
	if r3, b := post(t, ts.URL+"/v1/completions", `{"model":"stories-alt","prompt":"Once","max_tokens":2}`); r3.StatusCode != 200 {
		t.Errorf("other model: %d %s", r3.StatusCode, b)
	}
	cancel()
	resp.Body.Close()
	// The slot comes back once the cancelled run ended.
	ok := waitFor(5*time.Second, func() bool {
		r, _ := post(t, ts.URL+"/v1/completions", `{"model":"stories260k","prompt":"Once","max_tokens":2}`)
		return r.StatusCode == 200
	})
	if !ok {
		t.Error("the slot was not released after the client went away")
	}
}

// TestClientDisconnect closes a long streamed generation after its
// first chunk and checks, through the live backend decode counter, that
// the generation stops at once and the run ends cancelled.
func TestClientDisconnect(t *testing.T) {
	ts, _ := startServer(t, server.Options{})
	decodes := `realm_backend_decodes_total{backend="reference",model="stories260k"}`
	cancelled := `realm_request_errors_total{backend="reference",kind="cancelled",model="stories260k"}`
	running := `realm_requests_running{model="stories260k"}`
	resp, cancel := openStream(t, ts.URL)
	time.Sleep(200 * time.Millisecond) // let it generate a while
	before := metricValue(t, ts.URL, decodes)
	if before <= 0 {
		t.Fatalf("no decodes counted while generating (%v)", before)
	}
	cancel()
	resp.Body.Close()
	closed := time.Now()
	if !waitFor(3*time.Second, func() bool { return metricValue(t, ts.URL, running) == 0 }) {
		t.Fatal("the run did not end within 3s of the disconnect")
	}
	ended := time.Since(closed)
	if v := metricValue(t, ts.URL, cancelled); v != 1 {
		t.Errorf("cancelled errors %v, want 1", v)
	}
	stopped := metricValue(t, ts.URL, decodes)
	time.Sleep(300 * time.Millisecond)
	if after := metricValue(t, ts.URL, decodes); after != stopped {
		t.Errorf("decodes still increasing after the disconnect: %v → %v", stopped, after)
	}
	// The app would run 1000 rounds of 200 tokens: it was cut short.
	if stopped > 20000 {
		t.Errorf("%v decodes: the generation was not cut short", stopped)
	}
	t.Logf("run ended %v after the disconnect; %v decodes before, %v in all", ended, before, stopped)
}

// TestBackendCrash kills the plugin in the middle of a generation: the
// request fails with 503 and Retry-After, the supervisor restarts the
// plugin, and the server serves again.
func TestBackendCrash(t *testing.T) {
	ts, _ := startServer(t, server.Options{})
	sup := testEnv.rt.Supervisor
	restarts := sup.Restarts()
	type answer struct {
		resp *http.Response
		body []byte
	}
	done := make(chan answer, 1)
	go func() {
		resp, b := post(t, ts.URL+"/v1/apps/longgen/completions", `{"model":"stories260k","prompt":"Once upon a time","max_tokens":200}`)
		done <- answer{resp, b}
	}()
	decodes := `realm_backend_decodes_total{backend="reference",model="stories260k"}`
	if !waitFor(10*time.Second, func() bool { return metricValue(t, ts.URL, decodes) > 50 }) {
		t.Fatal("the generation did not start")
	}
	pid := sup.PID()
	if pid <= 0 {
		t.Fatal("no plugin process")
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	var a answer
	select {
	case a = <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("no answer after the plugin died")
	}
	if a.resp.StatusCode != http.StatusServiceUnavailable || a.resp.Header.Get("Retry-After") == "" {
		t.Fatalf("status %d Retry-After %q: %s", a.resp.StatusCode, a.resp.Header.Get("Retry-After"), a.body)
	}
	if e := decode[struct{ Error *apiErr }](t, a.body).Error; e == nil || e.Code == nil || *e.Code != "backend_unavailable" {
		t.Errorf("%s", a.body)
	}
	if !waitFor(20*time.Second, func() bool {
		r, _ := get(t, ts.URL+"/health")
		return r.StatusCode == 200
	}) {
		t.Fatal("the backend did not come back")
	}
	resp, b := post(t, ts.URL+"/v1/completions", `{"model":"stories260k","prompt":"Once upon a time","max_tokens":5,"temperature":0}`)
	if resp.StatusCode != 200 || !strings.Contains(string(b), ", there was a") {
		t.Errorf("after the restart: %d %s", resp.StatusCode, b)
	}
	if v := metricValue(t, ts.URL, `realm_backend_restarts_total{backend="reference"}`); v != float64(restarts+1) {
		t.Errorf("restarts metric %v, want %d", v, restarts+1)
	}
	if v := metricValue(t, ts.URL, `realm_request_errors_total{backend="reference",kind="backend_unavailable",model="stories260k"}`); v != 1 {
		t.Errorf("backend_unavailable errors %v, want 1", v)
	}
}

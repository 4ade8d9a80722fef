// Package server_test drives realm serve end to end: the reference
// backend plugin, the model registry, the WASM host and the chat app
// guest, over real HTTP on 127.0.0.1.
package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/realmrt/realm/internal/servetest"
	"github.com/realmrt/realm/loader"
	"github.com/realmrt/realm/server"
)

// env is what TestMain builds once for every test.
type env struct {
	dir      string // temp dir
	chat     string // chat.wasm
	longgen  string // longgen.wasm
	cacheDir string
	rt       *loader.Runtime
}

var testEnv env

func TestMain(m *testing.M) {
	flag.Parse()
	code, err := setup()
	if err != nil {
		fmt.Fprintln(os.Stderr, "tests/server setup:", err)
		os.Exit(1)
	}
	os.Exit(code(m))
}

// setup builds the plugin and guests, writes plugins.hcl and opens the
// loader runtime; it returns the function running the tests and
// cleaning up.
func setup() (func(*testing.M) int, error) {
	dir, err := os.MkdirTemp("", "realm-serve-test")
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(dir, "bin")
	if err := servetest.Build(bin, servetest.Reference, servetest.Chat, servetest.LongGen,
		servetest.Target{Out: "echo.wasm", Pkg: "./tests/server/testdata/echo", WASM: true}); err != nil {
		return nil, err
	}
	models := filepath.Join(dir, "models")
	// stories-alt is the same model under a name the "tight" app claims.
	if _, err := servetest.Models(models, "stories260k", "stories-alt"); err != nil {
		return nil, err
	}
	chat, longgen := filepath.Join(bin, "chat.wasm"), filepath.Join(bin, "longgen.wasm")
	cfg := fmt.Sprintf(`
models_dir = %q
kv_budget  = "64MiB"
backend "reference" {
  binary   = %q
  arch     = "any"
  priority = 10
}
app "tight" {
  wasm       = %q
  models     = ["stories-alt"]
  max_tokens = 3
  timeout    = "30s"
  memory     = "64MiB"
}
app "longgen" {
  wasm    = %q
  models  = ["*"]
  timeout = "60s"
  memory  = "64MiB"
}
app "starved" {
  wasm   = %q
  models = ["*"]
  memory = "2MiB"
}
app "restricted" {
  wasm   = %q
  models = ["stories-alt"]
}
server {
  max_concurrent = 4
  max_queue      = 16
}
`, models, filepath.Join(bin, "realm-backend-reference"), chat, longgen, chat, chat)
	cfgPath := filepath.Join(dir, "plugins.hcl")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "serve-test", Output: os.Stderr, Level: hclog.Warn})
	rt, err := loader.Open(context.Background(), loader.Options{ConfigPath: cfgPath, Pin: "reference", Logger: log})
	if err != nil {
		return nil, err
	}
	testEnv = env{dir: dir, chat: chat, longgen: longgen, cacheDir: filepath.Join(dir, "wazero"), rt: rt}
	return func(m *testing.M) int {
		code := m.Run()
		rt.Close()
		os.RemoveAll(dir)
		return code
	}, nil
}

// startServer starts a server on 127.0.0.1 over the shared runtime.
func startServer(t testing.TB, opts server.Options) (*httptest.Server, *server.Server) {
	t.Helper()
	opts.DefaultWASM = testEnv.chat
	opts.CacheDir = testEnv.cacheDir
	if testing.Verbose() {
		opts.Logger = hclog.New(&hclog.LoggerOptions{Name: "serve", Output: os.Stderr, Level: hclog.Debug})
	}
	srv, err := server.New(context.Background(), testEnv.rt, opts)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ts.Close()
		srv.Close(context.Background())
	})
	return ts, srv
}

// post sends a JSON body and returns the response with its body read.
func post(t testing.TB, url, body string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func get(t testing.TB, url string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// sseEvents splits an SSE body into its data payloads, checking the
// framing ("data: ..." lines separated by blank lines).
func sseEvents(t testing.TB, body []byte) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	expectBlank := false
	for sc.Scan() {
		line := sc.Text()
		if expectBlank {
			if line != "" {
				t.Fatalf("SSE: event not followed by a blank line: %q", line)
			}
			expectBlank = false
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			t.Fatalf("SSE: unexpected line %q", line)
		}
		out = append(out, data)
		expectBlank = true
	}
	return out
}

// streamChunk is the part of a chunk the tests look at.
type streamChunk struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Model   string `json:"model"`
	Choices []struct {
		Index int `json:"index"`
		Delta struct {
			Role    *string `json:"role"`
			Content *string `json:"content"`
		} `json:"delta"`
		Text         *string `json:"text"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
		TotalTokens      int `json:"total_tokens"`
	} `json:"usage"`
	Error *apiErr `json:"error"`
}

type apiErr struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

// completion is a non-streamed response.
type completion struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Model   string `json:"model"`
	Choices []struct {
		Message *struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"message"`
		Text         *string `json:"text"`
		FinishReason string  `json:"finish_reason"`
	} `json:"choices"`
	Usage struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
		TotalTokens      int `json:"total_tokens"`
	} `json:"usage"`
}

func decode[T any](t testing.TB, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	return v
}

// metricValue returns the value of one sample of a /metrics exposition
// (the line starting with name+labels), or -1 when absent.
func metricValue(t testing.TB, base, series string) float64 {
	t.Helper()
	_, b := get(t, base+"/metrics")
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			var v float64
			if _, err := fmt.Sscan(rest, &v); err != nil {
				t.Fatalf("metric %s: %v", line, err)
			}
			return v
		}
	}
	return -1
}

// waitFor polls cond until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cond()
}

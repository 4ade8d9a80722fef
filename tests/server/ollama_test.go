package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/realmrt/realm/internal/refdata"
	"github.com/realmrt/realm/server"
)

// ollamaNodeResult is what node/ollama.mjs prints.
type ollamaNodeResult struct {
	Version string
	List    []struct{ Name, Format, Family string }
	Chat    struct {
		Text  string
		Parts int
		Done  *struct {
			Reason       string
			Prompt, Eval int
		}
	}
	Generate struct {
		Text         string
		Reason       string
		Prompt, Eval int
		Done         bool
	}
	Raw struct {
		Text  string
		Parts int
		Done  *struct {
			Reason string
			Eval   int
		}
	}
}

// nodeInstall installs the npm clients of tests/server/node once.
func nodeInstall(t *testing.T, ctx context.Context, pkg string) string {
	t.Helper()
	nodeDir, err := filepath.Abs("node")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(nodeDir, "node_modules", pkg, "package.json")); err != nil {
		cmd := exec.CommandContext(ctx, "npm", "install", "--no-audit", "--no-fund", "--loglevel=error")
		cmd.Dir = nodeDir
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm install (node and npm are needed, and the registry on first run): %v\n%s", err, b)
		}
	}
	return nodeDir
}

// TestOllamaNodeClient drives the Ollama API with the official ollama
// npm package: version, list, a streamed chat, a non-streamed raw
// generate and a streamed raw generate with a stop string, all greedy.
// The answers must be those of the OpenAI endpoints for the same
// requests (one generation path) and, for the raw prompt, llama.cpp's
// reference continuation. The server requires an API key, which the
// client sends as a header.
func TestOllamaNodeClient(t *testing.T) {
	ref, err := refdata.LoadOutput("stories260K.once-upon")
	if err != nil {
		t.Fatal(err)
	}
	ts, _ := startServer(t, server.Options{APIKeys: []string{"sk-ollama"}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	nodeDir := nodeInstall(t, ctx, "ollama")
	cmd := exec.CommandContext(ctx, "node", "ollama.mjs", ts.URL, "stories260k")
	cmd.Dir = nodeDir
	cmd.Env = append(os.Environ(), "REALM_TEST_KEY=sk-ollama")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node ollama client: %v\n%s\n%s", err, out, stderr.Bytes())
	}
	t.Logf("node: %s", out)
	res := decode[ollamaNodeResult](t, out)

	if res.Version != server.OllamaVersion {
		t.Errorf("version %q", res.Version)
	}
	found := false
	for _, m := range res.List {
		if m.Name == "stories260k" {
			found = m.Format == "gguf" && m.Family == "llama"
		}
	}
	if !found {
		t.Errorf("list: %+v", res.List)
	}

	// The streamed chat is the OpenAI chat completion of the same
	// request, token for token.
	auth := []string{"Authorization", "Bearer sk-ollama"}
	_, b := post(t, ts.URL+"/v1/chat/completions", `{"model":"stories260k","messages":[{"role":"user","content":"Tell me a story."}],"max_tokens":24,"temperature":0}`, auth...)
	oc := decode[completion](t, b)
	c := res.Chat
	if c.Text == "" || c.Text != oc.Choices[0].Message.Content || c.Parts < 4 || c.Done == nil ||
		c.Done.Reason != "length" || c.Done.Eval != 24 || c.Done.Prompt != oc.Usage.PromptTokens {
		t.Errorf("chat: %+v, OpenAI answered %q (usage %+v)", c, oc.Choices[0].Message.Content, oc.Usage)
	}

	// The raw generate: llama.cpp's continuation of the prompt.
	want := ", there was a little girl named Lily"
	g := res.Generate
	if !strings.HasPrefix(g.Text, want) || !strings.HasPrefix(ref.GenText, g.Text) || !g.Done || g.Reason != "length" ||
		g.Eval != 40 || g.Prompt != len(ref.PromptIDs) {
		t.Errorf("generate: %+v, want a prefix of %q and %d prompt tokens", g, ref.GenText, len(ref.PromptIDs))
	}
	// Streamed, stopped at "Lily": the text before it, reason stop.
	if r := res.Raw; r.Text != ", there was a little girl named " || r.Done == nil || r.Done.Reason != "stop" || r.Parts < 3 {
		t.Errorf("raw stream: %+v", r)
	}
}

// ndjson splits an NDJSON body into its objects.
func ndjson(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("NDJSON line %q: %v", sc.Bytes(), err)
		}
		out = append(out, m)
	}
	return out
}

// TestOllamaAPI checks the Ollama endpoints' shapes and errors over
// HTTP: streamed and non-streamed chat, show, ps, a load-only generate,
// refused fields and options (named, never ignored), unknown models, the
// app policy and the metrics.
func TestOllamaAPI(t *testing.T) {
	ts, _ := startServer(t, server.Options{})
	chat := `"messages":[{"role":"user","content":"Hi"}]`

	// The default stream is NDJSON, one object per piece, the last done.
	resp, b := post(t, ts.URL+"/api/chat", `{"model":"stories260k",`+chat+`,"options":{"temperature":0,"num_predict":8}}`)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("chat: %d %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	lines := ndjson(t, b)
	var text strings.Builder
	for i, l := range lines {
		done := l["done"] == true
		if done != (i == len(lines)-1) || l["model"] != "stories260k" {
			t.Fatalf("line %d: %v", i, l)
		}
		text.WriteString(l["message"].(map[string]any)["content"].(string))
	}
	last := lines[len(lines)-1]
	if last["eval_count"] != 8.0 || last["done_reason"] != "length" || last["prompt_eval_count"].(float64) < 2 || last["total_duration"].(float64) <= 0 {
		t.Errorf("last line: %v", last)
	}
	// Not streamed: one object with the same text.
	resp, b = post(t, ts.URL+"/api/chat", `{"model":"stories260k",`+chat+`,"stream":false,"options":{"temperature":0,"num_predict":8}}`)
	one := decode[map[string]any](t, b)
	if resp.StatusCode != 200 || one["done"] != true || one["message"].(map[string]any)["content"] != text.String() || one["eval_count"] != 8.0 {
		t.Errorf("chat not streamed: %s, streamed text %q", b, text.String())
	}

	// A generate with no prompt loads the model; ps lists it then.
	resp, b = post(t, ts.URL+"/api/generate", `{"model":"stories-alt"}`)
	if resp.StatusCode != 200 || decode[map[string]any](t, b)["done_reason"] != "load" {
		t.Errorf("load: %d %s", resp.StatusCode, b)
	}
	resp, b = get(t, ts.URL+"/api/ps")
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"name":"stories-alt"`) {
		t.Errorf("ps: %d %s", resp.StatusCode, b)
	}

	resp, b = post(t, ts.URL+"/api/show", `{"model":"stories260k"}`)
	show := decode[struct {
		Details   struct{ Format, Family string }
		ModelInfo map[string]any `json:"model_info"`
	}](t, b)
	if resp.StatusCode != 200 || show.Details.Format != "gguf" || show.ModelInfo["general.architecture"] != "llama" ||
		show.ModelInfo["llama.context_length"] == nil || show.ModelInfo["general.parameter_count"].(float64) < 200000 {
		t.Errorf("show: %d %s", resp.StatusCode, b)
	}

	for _, c := range []struct {
		name, url, body string
		status          int
		want            string // in the error message
	}{
		{"unknown option", "/api/chat", `{"model":"stories260k",` + chat + `,"options":{"mirostat":2}}`, 400, `"mirostat"`},
		{"format", "/api/chat", `{"model":"stories260k",` + chat + `,"format":"yaml"}`, 400, "format"},
		{"format schema", "/api/chat", `{"model":"stories260k",` + chat + `,"format":{"type":"string","format":"email"}}`, 400, `"format" is not supported`},
		{"tools", "/api/chat", `{"model":"stories260k",` + chat + `,"tools":[{"type":"function","function":{"name":"f"}}]}`, 400, "does not render tools"},
		{"keep_alive", "/api/generate", `{"model":"stories260k","prompt":"x","keep_alive":"5m"}`, 400, `"keep_alive"`},
		{"images", "/api/chat", `{"model":"stories260k","messages":[{"role":"user","content":"x","images":["aGk="]}]}`, 400, "images"},
		{"num_predict 0", "/api/generate", `{"model":"stories260k","prompt":"x","options":{"num_predict":0}}`, 400, "num_predict"},
		{"bad temperature", "/api/generate", `{"model":"stories260k","prompt":"x","options":{"temperature":7}}`, 400, "temperature"},
		{"no model", "/api/chat", `{` + chat + `}`, 400, "model"},
		{"bad json", "/api/chat", `{"model":`, 400, "JSON"},
		{"unknown model", "/api/chat", `{"model":"nope",` + chat + `}`, 404, "nope"},
		{"unknown model, streamed", "/api/generate", `{"model":"nope","prompt":"x","stream":true}`, 404, "nope"},
		{"unknown model, show", "/api/show", `{"model":"nope"}`, 404, "nope"},
		{"app policy: tight caps max_tokens", "/api/generate", `{"model":"stories-alt","prompt":"Once","raw":true,"stream":false,"options":{"num_predict":50}}`, 200, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, b := post(t, ts.URL+c.url, c.body)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, b)
			}
			if c.status != 200 {
				e := decode[struct{ Error string }](t, b)
				if !strings.Contains(e.Error, c.want) {
					t.Errorf("error %q, want it to name %s", e.Error, c.want)
				}
				return
			}
			// stories-alt is the "tight" app's: its policy caps a run
			// at 3 tokens.
			if r := decode[map[string]any](t, b); r["eval_count"] != 3.0 || r["done_reason"] != "length" {
				t.Errorf("%s", b)
			}
		})
	}
	if resp, b := post(t, ts.URL+"/api/chat", `{"model":"stories260k","messages":[{"role":"user","content":"`+strings.Repeat("a", 9<<20)+`"}]}`); resp.StatusCode != 413 {
		t.Errorf("9 MiB body: %d %.200s", resp.StatusCode, b)
	}
	if resp, _ := get(t, ts.URL+"/api/chat"); resp.StatusCode != 405 {
		t.Errorf("GET /api/chat: %d", resp.StatusCode)
	}
	if v := metricValue(t, ts.URL, `realm_requests_total{backend="reference",code="200",endpoint="ollama_chat",model="stories260k"}`); v != 2 {
		t.Errorf("ollama_chat requests metric: %v", v)
	}
}

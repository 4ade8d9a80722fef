package server_test

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/realmrt/realm/internal/refdata"
	"github.com/realmrt/realm/loader"
	"github.com/realmrt/realm/server"
)

// embedRef is testdata/arch/bert.llamacpp.json: llama.cpp's pooled
// embeddings of the synthetic bert model.
type embedRef struct {
	Inputs []struct {
		Text      string    `json:"text"`
		IDs       []int32   `json:"ids"`
		Embedding []float32 `json:"embedding"`
	} `json:"inputs"`
}

func loadEmbedRef(t *testing.T) (*embedRef, string) {
	t.Helper()
	root, err := refdata.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "testdata", "arch", "bert.llamacpp.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r embedRef
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return &r, filepath.Join(root, "testdata", "arch", "bert.gguf")
}

// startEmbedServer starts a server over its own runtime whose models
// directory holds bert-tiny (testdata/arch/bert.gguf) and stories260k,
// with an app "stories-only" that may use stories260k alone.
func startEmbedServer(t *testing.T, opts server.Options) *httptest.Server {
	t.Helper()
	_, bert := loadEmbedRef(t)
	stories, err := refdata.Path("models", "stories260K.gguf")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	models := filepath.Join(dir, "models")
	if err := os.MkdirAll(models, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, src := range map[string]string{"bert-tiny": bert, "stories260k": stories} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(models, name+".gguf"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := fmt.Sprintf(`
models_dir = %q
backend "reference" {
  binary   = %q
  arch     = "any"
  priority = 10
}
app "stories-only" {
  wasm   = %q
  models = ["stories260k"]
}
`, models, filepath.Join(testEnv.dir, "bin", "realm-backend-reference"), testEnv.chat)
	cfgPath := filepath.Join(dir, "plugins.hcl")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "embed-test", Output: os.Stderr, Level: hclog.Warn})
	rt, err := loader.Open(context.Background(), loader.Options{ConfigPath: cfgPath, Pin: "reference", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	opts.DefaultWASM, opts.CacheDir = testEnv.chat, testEnv.cacheDir
	srv, err := server.New(context.Background(), rt, opts)
	if err != nil {
		rt.Close()
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ts.Close()
		srv.Close(context.Background())
		rt.Close()
	})
	return ts
}

// cosine is a·b/(|a||b|); norm2 is |a|².
func cosine(a, b []float32) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += float64(a[i]) * float64(b[i])
		aa += float64(a[i]) * float64(a[i])
		bb += float64(b[i]) * float64(b[i])
	}
	return ab / math.Sqrt(aa*bb)
}

func norm2(a []float32) float64 {
	var s float64
	for _, v := range a {
		s += float64(v) * float64(v)
	}
	return s
}

// checkVec requires v to match llama.cpp's vector want in direction
// (cosine ≥ 0.9999) and, when unit, to have unit length.
func checkVec(t *testing.T, what string, v, want []float32, unit bool) {
	t.Helper()
	if len(v) != len(want) {
		t.Errorf("%s: %d elements, want %d", what, len(v), len(want))
		return
	}
	if c := cosine(v, want); c < 0.9999 {
		t.Errorf("%s: cosine %.6f with llama.cpp", what, c)
	}
	if n := norm2(v); unit && math.Abs(n-1) > 1e-4 {
		t.Errorf("%s: |v|² = %g, want 1", what, n)
	}
}

// TestEmbeddings drives /v1/embeddings and /api/embed(dings) over HTTP:
// every input shape, both encodings, usage, batch order, and the
// vectors against llama.cpp's.
func TestEmbeddings(t *testing.T) {
	ref, _ := loadEmbedRef(t)
	ts := startEmbedServer(t, server.Options{})
	a, b := ref.Inputs[1], ref.Inputs[2]
	type item struct {
		Object    string
		Index     int
		Embedding json.RawMessage
	}
	type list struct {
		Object string
		Model  string
		Data   []item
		Usage  struct{ PromptTokens, TotalTokens int } `json:"usage"`
	}
	parse := func(t *testing.T, body []byte) list {
		var l struct {
			Object string
			Model  string
			Data   []item
			Usage  struct {
				PromptTokens int `json:"prompt_tokens"`
				TotalTokens  int `json:"total_tokens"`
			}
		}
		if err := json.Unmarshal(body, &l); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		return list{Object: l.Object, Model: l.Model, Data: l.Data, Usage: struct{ PromptTokens, TotalTokens int }{l.Usage.PromptTokens, l.Usage.TotalTokens}}
	}
	floats := func(t *testing.T, raw json.RawMessage) []float32 {
		var v []float32
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatalf("%v: %s", err, raw)
		}
		return v
	}
	ids, _ := json.Marshal(a.IDs)
	idsB, _ := json.Marshal(b.IDs)
	for _, c := range []struct {
		name, input string
		want        [][]float32
		tokens      int
	}{
		{"string", fmt.Sprintf("%q", a.Text), [][]float32{a.Embedding}, len(a.IDs)},
		{"strings", fmt.Sprintf("[%q,%q]", a.Text, b.Text), [][]float32{a.Embedding, b.Embedding}, len(a.IDs) + len(b.IDs)},
		{"token array", string(ids), [][]float32{a.Embedding}, len(a.IDs)},
		{"token arrays", "[" + string(ids) + "," + string(idsB) + "]", [][]float32{a.Embedding, b.Embedding}, len(a.IDs) + len(b.IDs)},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, body := post(t, ts.URL+"/v1/embeddings", `{"model":"bert-tiny","input":`+c.input+`}`)
			if resp.StatusCode != 200 {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
			l := parse(t, body)
			if l.Object != "list" || l.Model != "bert-tiny" || len(l.Data) != len(c.want) || l.Usage.PromptTokens != c.tokens || l.Usage.TotalTokens != c.tokens {
				t.Fatalf("shape: %s", body)
			}
			for i, d := range l.Data {
				if d.Object != "embedding" || d.Index != i {
					t.Errorf("item %d: %+v", i, d)
				}
				checkVec(t, fmt.Sprintf("item %d", i), floats(t, d.Embedding), c.want[i], true)
			}
		})
	}
	t.Run("base64", func(t *testing.T) {
		_, fb := post(t, ts.URL+"/v1/embeddings", fmt.Sprintf(`{"model":"bert-tiny","input":%q,"encoding_format":"float"}`, a.Text))
		resp, body := post(t, ts.URL+"/v1/embeddings", fmt.Sprintf(`{"model":"bert-tiny","input":%q,"encoding_format":"base64"}`, a.Text))
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		var s string
		if err := json.Unmarshal(parse(t, body).Data[0].Embedding, &s); err != nil {
			t.Fatalf("not a base64 string: %s", body)
		}
		raw, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(raw) != 4*64 {
			t.Fatalf("base64: %v, %d bytes", err, len(raw))
		}
		want := floats(t, parse(t, fb).Data[0].Embedding)
		for i := range want {
			if got := math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:])); got != want[i] {
				t.Fatalf("element %d: base64 %g, float %g", i, got, want[i])
			}
		}
	})
	t.Run("ollama embed", func(t *testing.T) {
		resp, body := post(t, ts.URL+"/api/embed", fmt.Sprintf(`{"model":"bert-tiny","input":[%q,%q]}`, a.Text, b.Text))
		var r struct {
			Model           string
			Embeddings      [][]float32
			PromptEvalCount int `json:"prompt_eval_count"`
		}
		if resp.StatusCode != 200 || json.Unmarshal(body, &r) != nil || r.Model != "bert-tiny" || len(r.Embeddings) != 2 || r.PromptEvalCount != len(a.IDs)+len(b.IDs) {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		checkVec(t, "0", r.Embeddings[0], a.Embedding, true)
		checkVec(t, "1", r.Embeddings[1], b.Embedding, true)
	})
	t.Run("ollama embeddings (legacy, not normalized)", func(t *testing.T) {
		resp, body := post(t, ts.URL+"/api/embeddings", fmt.Sprintf(`{"model":"bert-tiny","prompt":%q}`, a.Text))
		var r struct{ Embedding []float32 }
		if resp.StatusCode != 200 || json.Unmarshal(body, &r) != nil {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		checkVec(t, "legacy", r.Embedding, a.Embedding, false)
		if n, w := norm2(r.Embedding), norm2(a.Embedding); math.Abs(n-w) > 1e-3*w {
			t.Errorf("legacy |v|² %g, llama.cpp's %g", n, w)
		}
	})
	t.Run("metrics per endpoint", func(t *testing.T) {
		_, body := get(t, ts.URL+"/metrics")
		for _, ep := range []string{"embeddings", "ollama_embed", "ollama_embeddings"} {
			if !strings.Contains(string(body), `realm_requests_total{backend="reference",code="200",endpoint="`+ep+`",model="bert-tiny"}`) {
				t.Errorf("no 200 count for endpoint %s", ep)
			}
		}
	})
}

// TestEmbeddingsBadRequests: malformed and impossible requests get
// OpenAI-shaped (or Ollama-shaped) errors before anything runs.
func TestEmbeddingsBadRequests(t *testing.T) {
	ts := startEmbedServer(t, server.Options{})
	long := strings.Repeat("word ", 600) // > 512 tokens
	for _, c := range []struct {
		name, path, body string
		status           int
		param, code      string
	}{
		{"empty string", "/v1/embeddings", `{"model":"bert-tiny","input":""}`, 400, "input", ""},
		{"empty array", "/v1/embeddings", `{"model":"bert-tiny","input":[]}`, 400, "input", ""},
		{"empty item", "/v1/embeddings", `{"model":"bert-tiny","input":["a",""]}`, 400, "input", ""},
		{"empty token array", "/v1/embeddings", `{"model":"bert-tiny","input":[[]]}`, 400, "input", ""},
		{"mixed items", "/v1/embeddings", `{"model":"bert-tiny","input":["a",[1]]}`, 400, "input", ""},
		{"no input", "/v1/embeddings", `{"model":"bert-tiny"}`, 400, "input", ""},
		{"input not text", "/v1/embeddings", `{"model":"bert-tiny","input":{"a":1}}`, 400, "input", ""},
		{"no model", "/v1/embeddings", `{"input":"a"}`, 400, "model", ""},
		{"bad json", "/v1/embeddings", `{"model":`, 400, "", ""},
		{"bad encoding", "/v1/embeddings", `{"model":"bert-tiny","input":"a","encoding_format":"int8"}`, 400, "encoding_format", ""},
		{"dimensions", "/v1/embeddings", `{"model":"bert-tiny","input":"a","dimensions":32}`, 400, "dimensions", ""},
		{"unknown field", "/v1/embeddings", `{"model":"bert-tiny","input":"a","pooling":"cls"}`, 400, "pooling", ""},
		{"too long", "/v1/embeddings", fmt.Sprintf(`{"model":"bert-tiny","input":%q}`, long), 400, "input", "context_length_exceeded"},
		{"token out of vocabulary", "/v1/embeddings", `{"model":"bert-tiny","input":[101,99999999,102]}`, 400, "input", ""},
		{"negative token", "/v1/embeddings", `{"model":"bert-tiny","input":[[101,-5]]}`, 400, "input", ""},
		{"not an embedding model", "/v1/embeddings", `{"model":"stories260k","input":"a"}`, 400, "model", "model_not_embedding"},
		{"unknown model", "/v1/embeddings", `{"model":"nope","input":"a"}`, 404, "model", "model_not_found"},
		{"too many inputs", "/v1/embeddings", `{"model":"bert-tiny","input":[` + strings.Repeat(`"a",`, 2048) + `"a"]}`, 400, "input", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, body := post(t, ts.URL+c.path, c.body)
			var e struct {
				Error struct {
					Type, Message string
					Param, Code   *string
				}
			}
			if resp.StatusCode != c.status || json.Unmarshal(body, &e) != nil || e.Error.Message == "" || e.Error.Type == "" {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
			if (c.param != "" && (e.Error.Param == nil || *e.Error.Param != c.param)) || (c.code != "" && (e.Error.Code == nil || *e.Error.Code != c.code)) {
				t.Errorf("param/code: %s", body)
			}
		})
	}
	for _, c := range []struct {
		name, path, body string
		status           int
	}{
		{"ollama too long without truncate", "/api/embed", fmt.Sprintf(`{"model":"bert-tiny","input":%q,"truncate":false}`, long), 400},
		{"ollama empty", "/api/embed", `{"model":"bert-tiny","input":""}`, 400},
		{"ollama token arrays", "/api/embed", `{"model":"bert-tiny","input":[[1,2]]}`, 400},
		{"ollama unknown model", "/api/embed", `{"model":"nope","input":"a"}`, 404},
		{"ollama not embedding", "/api/embed", `{"model":"stories260k","input":"a"}`, 400},
		{"ollama option", "/api/embed", `{"model":"bert-tiny","input":"a","options":{"num_ctx":8}}`, 400},
		{"legacy no prompt", "/api/embeddings", `{"model":"bert-tiny"}`, 400},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, body := post(t, ts.URL+c.path, c.body)
			var e struct{ Error string }
			if resp.StatusCode != c.status || json.Unmarshal(body, &e) != nil || e.Error == "" {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
		})
	}
	t.Run("ollama truncates by default", func(t *testing.T) {
		resp, body := post(t, ts.URL+"/api/embed", fmt.Sprintf(`{"model":"bert-tiny","input":%q}`, long))
		var r struct {
			Embeddings      [][]float32
			PromptEvalCount int `json:"prompt_eval_count"`
		}
		if resp.StatusCode != 200 || json.Unmarshal(body, &r) != nil || len(r.Embeddings) != 1 || r.PromptEvalCount != 512 {
			t.Fatalf("%d %.300s", resp.StatusCode, body)
		}
	})
}

// TestEmbeddingsPolicy: an app whose policy does not list the model
// does not embed with it (here the default app is "stories-only").
func TestEmbeddingsPolicy(t *testing.T) {
	ts := startEmbedServer(t, server.Options{DefaultApp: "stories-only"})
	resp, body := post(t, ts.URL+"/v1/embeddings", `{"model":"bert-tiny","input":"a"}`)
	if resp.StatusCode != 404 || !strings.Contains(string(body), "not available to app") {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	resp, body = post(t, ts.URL+"/api/embed", `{"model":"bert-tiny","input":"a"}`)
	if resp.StatusCode != 404 {
		t.Fatalf("ollama: %d %s", resp.StatusCode, body)
	}
}

// TestEmbeddingsAuth: with API keys, embeddings need one.
func TestEmbeddingsAuth(t *testing.T) {
	ts := startEmbedServer(t, server.Options{APIKeys: []string{"sk-embed"}})
	for _, path := range []string{"/v1/embeddings", "/api/embed"} {
		if resp, body := post(t, ts.URL+path, `{"model":"bert-tiny","input":"hello"}`); resp.StatusCode != 401 {
			t.Errorf("%s without key: %d %s", path, resp.StatusCode, body)
		}
		if resp, body := post(t, ts.URL+path, `{"model":"bert-tiny","input":"hello"}`, "Authorization", "Bearer sk-embed"); resp.StatusCode != 200 {
			t.Errorf("%s with key: %d %s", path, resp.StatusCode, body)
		}
	}
}

// TestEmbeddingsNodeClients drives the embeddings with the official
// openai and ollama npm clients (node/embed.mjs).
func TestEmbeddingsNodeClients(t *testing.T) {
	ref, _ := loadEmbedRef(t)
	ts := startEmbedServer(t, server.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	nodeDir, err := filepath.Abs("node")
	if err != nil {
		t.Fatal(err)
	}
	for _, pkg := range []string{"openai", "ollama"} {
		if _, err := os.Stat(filepath.Join(nodeDir, "node_modules", pkg, "package.json")); err != nil {
			cmd := exec.CommandContext(ctx, "npm", "install", "--no-audit", "--no-fund", "--loglevel=error")
			cmd.Dir = nodeDir
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("npm install (node and npm are needed, and the registry on first run): %v\n%s", err, b)
			}
			break
		}
	}
	a, b := ref.Inputs[1], ref.Inputs[2]
	ids, _ := json.Marshal(a.IDs)
	cmd := exec.CommandContext(ctx, "node", "embed.mjs", ts.URL, "bert-tiny", a.Text, b.Text, string(ids))
	cmd.Dir = nodeDir
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("node: %v\n%s\n%s", err, out, stderr)
	}
	var res struct {
		One struct {
			Object, Model string
			Usage         struct {
				PromptTokens int `json:"prompt_tokens"`
				TotalTokens  int `json:"total_tokens"`
			}
			Data  [][]float32
			Index []int
		}
		Batch struct {
			Usage struct {
				PromptTokens int `json:"prompt_tokens"`
			}
			Data  [][]float32
			Index []int
		}
		Tokens struct{ Data [][]float32 }
		Empty  *struct {
			Status int
			Param  *string
		}
		Ollama struct {
			Model           string
			Embeddings      [][]float32
			PromptEvalCount int `json:"prompt_eval_count"`
		}
		Legacy []float32
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("node output %.500s: %v", out, err)
	}
	if res.One.Object != "list" || res.One.Model != "bert-tiny" || len(res.One.Data) != 1 || res.One.Usage.PromptTokens != len(a.IDs) || res.One.Usage.TotalTokens != len(a.IDs) {
		t.Errorf("openai one (base64): %+v", res.One)
	} else {
		checkVec(t, "openai one (base64)", res.One.Data[0], a.Embedding, true)
	}
	if len(res.Batch.Data) != 2 || res.Batch.Index[1] != 1 || res.Batch.Usage.PromptTokens != len(a.IDs)+len(b.IDs) {
		t.Errorf("openai batch: %+v", res.Batch)
	} else {
		checkVec(t, "openai batch 0", res.Batch.Data[0], a.Embedding, true)
		checkVec(t, "openai batch 1", res.Batch.Data[1], b.Embedding, true)
	}
	if len(res.Tokens.Data) != 1 {
		t.Errorf("openai tokens: %+v", res.Tokens)
	} else {
		checkVec(t, "openai tokens", res.Tokens.Data[0], a.Embedding, true)
	}
	if res.Empty == nil || res.Empty.Status != 400 || res.Empty.Param == nil || *res.Empty.Param != "input" {
		t.Errorf("openai empty input: %+v", res.Empty)
	}
	if res.Ollama.Model != "bert-tiny" || len(res.Ollama.Embeddings) != 2 || res.Ollama.PromptEvalCount != len(a.IDs)+len(b.IDs) {
		t.Errorf("ollama embed: %+v", res.Ollama)
	} else {
		checkVec(t, "ollama 0", res.Ollama.Embeddings[0], a.Embedding, true)
		checkVec(t, "ollama 1", res.Ollama.Embeddings[1], b.Embedding, true)
	}
	checkVec(t, "ollama legacy", res.Legacy, a.Embedding, false)
}

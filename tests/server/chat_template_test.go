package server_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/realmrt/realm/gguf"
	"github.com/realmrt/realm/internal/refdata"
	"github.com/realmrt/realm/loader"
	"github.com/realmrt/realm/server"
)

// mistralV02 is Mistral-7B-Instruct-v0.2's chat template (a llama-family
// SentencePiece model, like the stories model), as in llama.cpp's
// tests/test-chat-template.cpp.
const mistralV02 = "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"

// templateModels are copies of the stories model that ship a
// tokenizer.chat_template.
var templateModels = map[string]string{
	"stories-mistral": mistralV02,
	"stories-badtmpl": "{% for message in messages %}{{ message.content }",
	"stories-hostile": "{% for i in range(100000000) %}{{ i }}{% endfor %}",
	"stories-busy":    "{% set s = messages[0].content * 20000 %}{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}",
	"stories-bigout":  "{% for i in range(200) %}{% for j in range(100) %}{{ messages[0].content * 100 }}{% endfor %}{% endfor %}",
}

// writeTemplateModels writes models (name → chat template) into dir
// from the stories model at src.
func writeTemplateModels(dir, src string, models map[string]string) error {
	m, err := gguf.Open(src)
	if err != nil {
		return err
	}
	defer m.Close()
	for name, tmpl := range models {
		f := *m.File
		f.Metadata = append([]gguf.KV{}, m.File.Metadata...)
		f.Metadata = append(f.Metadata, gguf.KV{Key: "tokenizer.chat_template", Value: gguf.NewString(tmpl)})
		out, err := os.Create(filepath.Join(dir, name+".gguf"))
		if err != nil {
			return err
		}
		err = gguf.Write(out, &f, gguf.CopyData(m))
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// TestChatTemplate checks that a chat completion renders the model's own
// Jinja template, and that templates that refuse the conversation, do
// not compile or would run away get clear errors and leave the server
// serving.
func TestChatTemplate(t *testing.T) {
	ts := startTemplateServer(t)
	url := ts.URL + "/v1/chat/completions"
	req := func(model, msgs string) string {
		return `{"model":"` + model + `","messages":` + msgs + `,"max_tokens":3,"temperature":0}`
	}
	sysUser := `[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}]`

	t.Run("rendered as llama.cpp", func(t *testing.T) {
		resp, b := post(t, url, req("stories-mistral", sysUser))
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
		// llama.cpp (scripts/llamacpp/chat/render.cpp) renders this
		// conversation as "<s>[INST] Be brief.\nHi [/INST]": the template
		// rejects a system role, so the system text joins the user turn;
		// the tokenizer adds BOS, so the BOS text is dropped.
		want := countTokens(t, "[INST] Be brief.\nHi [/INST]")
		fallback := countTokens(t, "Be brief.\n\nUser: Hi\nAssistant:")
		if got := decode[completion](t, b).Usage.PromptTokens; got != want || got == fallback {
			t.Errorf("prompt_tokens %d, want %d (the fallback format has %d)", got, want, fallback)
		}
	})
	cases := []struct {
		name, model, msgs string
		status            int
		code, text        string
	}{
		{"template refuses the conversation", "stories-mistral", `[{"role":"user","content":"Hi"},{"role":"user","content":"Hi again"}]`,
			400, "chat_template_rejected", "Conversation roles must alternate"},
		{"template does not compile", "stories-badtmpl", sysUser, 500, "chat_template_error", "tokenizer.chat_template"},
		{"runaway range", "stories-hostile", sysUser, 500, "chat_template_error", "range()"},
		// 6e10 loop steps: stopped at the 5 s limit.
		{"runaway loop", "stories-busy", sysUser, 500, "chat_template_error", "took longer than 5s"},
		// 24 MB of prompt, over the 16 MiB limit.
		{"runaway output", "stories-bigout", sysUser, 500, "chat_template_error", "over the limit of 16777216"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			resp, b := post(t, url, req(c.model, c.msgs))
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, b)
			}
			e := decode[struct{ Error *apiErr }](t, b).Error
			if e == nil || e.Code == nil || *e.Code != c.code || !strings.Contains(e.Message, c.text) {
				t.Errorf("error %s, want code %q and a message naming %q", b, c.code, c.text)
			}
			if d := time.Since(start); d > 30*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
	// The server still serves after all of these.
	if resp, b := post(t, url, req("stories-mistral", sysUser)); resp.StatusCode != 200 {
		t.Fatalf("after the errors: %d %s", resp.StatusCode, b)
	}
}

// startTemplateServer starts a server over its own runtime whose models
// directory holds templateModels (the shared one's model list is
// checked exactly by TestEndpoints).
func startTemplateServer(t *testing.T) *httptest.Server {
	t.Helper()
	return startModelsServer(t, templateModels, "")
}

// startModelsServer starts a server over its own runtime whose models
// directory holds models (name → chat template), with the app blocks
// of appsCfg (HCL) besides the default chat app.
func startModelsServer(t *testing.T, templates map[string]string, appsCfg string) *httptest.Server {
	t.Helper()
	src, err := refdata.Path("models", "stories260K.gguf")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	models := filepath.Join(dir, "models")
	if err := os.MkdirAll(models, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := writeTemplateModels(models, src, templates); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`
models_dir = %q
backend "reference" {
  binary   = %q
  arch     = "any"
  priority = 10
}
%s
`, models, filepath.Join(testEnv.dir, "bin", "realm-backend-reference"), appsCfg)
	cfgPath := filepath.Join(dir, "plugins.hcl")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "template-test", Output: os.Stderr, Level: hclog.Warn})
	rt, err := loader.Open(context.Background(), loader.Options{ConfigPath: cfgPath, Pin: "reference", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(context.Background(), rt, server.Options{DefaultWASM: testEnv.chat, CacheDir: testEnv.cacheDir})
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

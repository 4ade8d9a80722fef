package server_test

import (
	"context"
	"encoding/json"
	"fmt"
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

// personSchema bounds every string and list, so that every output ends
// within max_tokens whatever the weights.
const personSchema = `{"type":"object","properties":{` +
	`"name":{"type":"string","minLength":1,"maxLength":12},` +
	`"age":{"type":"integer"},` +
	`"role":{"enum":["admin","user","guest"]},` +
	`"tags":{"type":"array","items":{"type":"string","maxLength":8},"maxItems":3},` +
	`"active":{"type":"boolean"},` +
	`"score":{"type":["number","null"]}},` +
	`"required":["name","age","role","tags","active","score"],"additionalProperties":false}`

// boundedTools is a weather tool whose arguments are bounded.
const boundedTools = `[{"type":"function","function":{"name":"get_weather","description":"Current weather of a city",` +
	`"parameters":{"type":"object","properties":{"city":{"type":"string","minLength":1,"maxLength":16},"unit":{"enum":["celsius","fahrenheit"]}},"required":["city","unit"],"additionalProperties":false}}},` +
	`{"type":"function","function":{"name":"get_time","parameters":{"type":"object","properties":{"zone":{"type":"string","maxLength":8}},"required":["zone"],"additionalProperties":false}}}]`

// validPerson reports whether text is a JSON value of personSchema.
func validPerson(text string) error {
	var v struct {
		Name   *string
		Age    *json.Number
		Role   *string
		Tags   *[]string
		Active *bool
		Score  *json.RawMessage
	}
	d := json.NewDecoder(strings.NewReader(text))
	d.DisallowUnknownFields()
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		return err
	}
	if d.More() {
		return fmt.Errorf("trailing data")
	}
	var present map[string]json.RawMessage
	if err := json.Unmarshal([]byte(text), &present); err != nil {
		return err
	}
	for _, k := range []string{"name", "age", "role", "tags", "active", "score"} {
		if _, ok := present[k]; !ok {
			return fmt.Errorf("the required property %q is missing", k)
		}
	}
	switch {
	case v.Name == nil || v.Age == nil || v.Role == nil || v.Tags == nil || v.Active == nil:
		return fmt.Errorf("a required property is null")
	case len([]rune(*v.Name)) < 1 || len([]rune(*v.Name)) > 12:
		return fmt.Errorf("name length %d", len([]rune(*v.Name)))
	case strings.ContainsAny(v.Age.String(), ".eE"):
		return fmt.Errorf("age %s is not an integer", *v.Age)
	case *v.Role != "admin" && *v.Role != "user" && *v.Role != "guest":
		return fmt.Errorf("role %q", *v.Role)
	case len(*v.Tags) > 3:
		return fmt.Errorf("%d tags", len(*v.Tags))
	}
	for _, tag := range *v.Tags {
		if len([]rune(tag)) > 8 {
			return fmt.Errorf("tag %q too long", tag)
		}
	}
	if v.Score != nil {
		s := string(*v.Score)
		var f float64
		if err := json.Unmarshal(*v.Score, &f); err != nil {
			return fmt.Errorf("score %s", s)
		}
	}
	return nil
}

// startRandomServer serves the random-weight synthetic models of
// testdata/arch (stories260K's vocabulary) under chat templates:
// rand-qwen (qwen2 weights, Qwen 2.5's Hermes template), rand-llama3
// (llama weights, Llama 3.1's template), rand-nemo (llama weights,
// Mistral Nemo's template).
func startRandomServer(t *testing.T) string {
	t.Helper()
	root, err := refdata.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	tmpl := func(name string) string {
		b, err := os.ReadFile(filepath.Join(root, "chat", "testdata", "templates", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	dir := t.TempDir()
	models := filepath.Join(dir, "models")
	if err := os.MkdirAll(models, 0o755); err != nil {
		t.Fatal(err)
	}
	for src, m := range map[string]map[string]string{
		"qwen2.gguf": {"rand-qwen": tmpl("Qwen-Qwen2.5-7B-Instruct.jinja")},
		"llama.gguf": {"rand-llama3": tmpl("meta-llama-Llama-3.1-8B-Instruct.jinja"), "rand-nemo": tmpl("mistralai-Mistral-Nemo-Instruct-2407.jinja")},
	} {
		if err := writeTemplateModels(models, filepath.Join(root, "testdata", "arch", src), m); err != nil {
			t.Fatal(err)
		}
	}
	cfg := fmt.Sprintf("models_dir = %q\nbackend \"reference\" {\n  binary   = %q\n  arch     = \"any\"\n  priority = 10\n}\n",
		models, filepath.Join(testEnv.dir, "bin", "realm-backend-reference"))
	cfgPath := filepath.Join(dir, "plugins.hcl")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "structured-test", Output: os.Stderr, Level: hclog.Warn})
	rt, err := loader.Open(context.Background(), loader.Options{ConfigPath: cfgPath, Pin: "reference", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ts, _ := startServerOn(t, rt)
	return ts
}

// startServerOn starts a server over rt, closed with the test.
func startServerOn(t *testing.T, rt *loader.Runtime) (string, *server.Server) {
	t.Helper()
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
	return ts.URL, srv
}

// TestStructuredNodeClient: the official openai client asks a
// random-weight model for a json_schema answer 100 times (seeds 0–99):
// every answer parses and validates, where the same requests without
// response_format never give JSON; tool_choice "required" and a named
// function (streamed) give a parsed tool call of a declared tool with
// arguments of its schema.
func TestStructuredNodeClient(t *testing.T) {
	base := startRandomServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	nodeDir := nodeInstall(t, ctx, "openai")
	cmd := exec.CommandContext(ctx, "node", "structured.mjs", base+"/v1", "rand-qwen", "100", personSchema, boundedTools)
	cmd.Dir = nodeDir
	cmd.Stderr = os.Stderr
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("node structured.mjs: %v\n%s", err, b)
	}
	type answer struct{ Text, Finish string }
	type call struct {
		Name, Arguments string
		Function        struct{ Name, Arguments string }
	}
	var res struct {
		Constrained, Free []answer
		Tool, ToolStream  struct {
			Finish string
			Calls  []call
		}
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if len(res.Constrained) != 100 {
		t.Fatalf("%d constrained answers", len(res.Constrained))
	}
	valid := 0
	for i, a := range res.Constrained {
		if err := validPerson(a.Text); err != nil || a.Finish != "stop" {
			t.Errorf("seed %d: %q (finish %s) does not validate: %v", i, a.Text, a.Finish, err)
			continue
		}
		valid++
	}
	t.Logf("json_schema: %d/100 valid; e.g. %s", valid, res.Constrained[0].Text)
	for i, a := range res.Free {
		if validPerson(a.Text) == nil || json.Valid([]byte(a.Text)) {
			t.Errorf("unconstrained seed %d is JSON: %q", i, a.Text)
		}
	}
	checkArgs := func(what, name, args string) {
		t.Helper()
		var w struct {
			City *string
			Unit *string
			Zone *string
		}
		d := json.NewDecoder(strings.NewReader(args))
		d.DisallowUnknownFields()
		if err := d.Decode(&w); err != nil {
			t.Errorf("%s: arguments %q: %v", what, args, err)
			return
		}
		switch name {
		case "get_weather":
			if w.City == nil || w.Unit == nil || (*w.Unit != "celsius" && *w.Unit != "fahrenheit") || w.Zone != nil {
				t.Errorf("%s: get_weather arguments %q", what, args)
			}
		case "get_time":
			if w.Zone == nil || w.City != nil {
				t.Errorf("%s: get_time arguments %q", what, args)
			}
		default:
			t.Errorf("%s: call of %q", what, name)
		}
	}
	if res.Tool.Finish != "tool_calls" || len(res.Tool.Calls) != 1 {
		t.Errorf("tool_choice required: %+v", res.Tool)
	} else {
		checkArgs("required", res.Tool.Calls[0].Function.Name, res.Tool.Calls[0].Function.Arguments)
	}
	if res.ToolStream.Finish != "tool_calls" || len(res.ToolStream.Calls) != 1 || res.ToolStream.Calls[0].Name != "get_weather" {
		t.Errorf("named tool_choice, streamed: %+v", res.ToolStream)
	} else {
		checkArgs("named", "get_weather", res.ToolStream.Calls[0].Arguments)
	}
}

// TestStructuredAPI: the raw grammar field, json_object on completions,
// a streamed json_schema answer, Ollama's format ("json" and a schema),
// and forced tool calls in the Llama 3.x and Mistral formats, on the
// random-weight models.
func TestStructuredAPI(t *testing.T) {
	base := startRandomServer(t)
	chat := func(model, extra string) (int, []byte) {
		resp, b := post(t, base+"/v1/chat/completions", `{"model":"`+model+`","messages":[{"role":"user","content":"Hi"}],"temperature":1,"max_tokens":300`+extra+`}`)
		return resp.StatusCode, b
	}
	for seed := range 5 {
		resp, b := post(t, base+"/v1/completions", fmt.Sprintf(`{"model":"rand-qwen","prompt":"Answer:","seed":%d,"max_tokens":10,"grammar":"root ::= (\"yes\" | \"no\") \"!\""}`, seed))
		var c struct {
			Choices []struct {
				Text         string
				FinishReason string `json:"finish_reason"`
			}
		}
		if err := json.Unmarshal(b, &c); err != nil || resp.StatusCode != 200 || (c.Choices[0].Text != "yes!" && c.Choices[0].Text != "no!") || c.Choices[0].FinishReason != "stop" {
			t.Errorf("grammar, seed %d: %d %s", seed, resp.StatusCode, b)
		}
		resp, b = post(t, base+"/v1/completions", fmt.Sprintf(`{"model":"rand-qwen","prompt":"{","seed":%d,"max_tokens":300,"response_format":{"type":"json_object"}}`, seed))
		if err := json.Unmarshal(b, &c); err != nil || resp.StatusCode != 200 {
			t.Fatalf("json_object: %d %s", resp.StatusCode, b)
		}
		var obj map[string]any
		if c.Choices[0].FinishReason == "stop" && json.Unmarshal([]byte(c.Choices[0].Text), &obj) != nil {
			t.Errorf("json_object, seed %d: %q is not a JSON object", seed, c.Choices[0].Text)
		}
	}
	// Streamed.
	st, b := chat("rand-qwen", `,"seed":7,"stream":true,"response_format":{"type":"json_schema","json_schema":{"name":"p","schema":`+personSchema+`}}`)
	var text strings.Builder
	for _, ev := range sseEvents(t, b) {
		if ev == "[DONE]" {
			continue
		}
		var ch struct {
			Choices []struct{ Delta struct{ Content string } }
		}
		if err := json.Unmarshal([]byte(ev), &ch); err != nil {
			t.Fatal(err)
		}
		for _, c := range ch.Choices {
			text.WriteString(c.Delta.Content)
		}
	}
	if err := validPerson(text.String()); st != 200 || err != nil {
		t.Errorf("streamed json_schema: %d %q: %v", st, text.String(), err)
	}
	// Ollama.
	resp, b := post(t, base+"/api/chat", `{"model":"rand-qwen","stream":false,"messages":[{"role":"user","content":"Hi"}],"options":{"seed":3,"num_predict":300},"format":`+personSchema+`}`)
	var oc struct{ Message struct{ Content string } }
	if err := json.Unmarshal(b, &oc); err != nil || resp.StatusCode != 200 || validPerson(oc.Message.Content) != nil {
		t.Errorf("ollama format schema: %d %s (%v)", resp.StatusCode, b, validPerson(oc.Message.Content))
	}
	resp, b = post(t, base+"/api/generate", `{"model":"rand-qwen","stream":false,"prompt":"Hi","options":{"seed":3,"num_predict":300},"format":"json"}`)
	var og struct {
		Response   string
		DoneReason string `json:"done_reason"`
	}
	var obj map[string]any
	if err := json.Unmarshal(b, &og); err != nil || resp.StatusCode != 200 || (og.DoneReason == "stop" && json.Unmarshal([]byte(og.Response), &obj) != nil) {
		t.Errorf("ollama format json: %d %s", resp.StatusCode, b)
	}
	resp, b = post(t, base+"/api/generate", `{"model":"rand-qwen","stream":false,"prompt":"Hi","format":"yaml"}`)
	if resp.StatusCode != 400 || !strings.Contains(string(b), "format") {
		t.Errorf("ollama format yaml: %d %s", resp.StatusCode, b)
	}
	// Forced tool calls in the other formats.
	for _, model := range []string{"rand-llama3", "rand-nemo"} {
		st, b := chat(model, `,"seed":5,"tools":`+boundedTools+`,"tool_choice":{"type":"function","function":{"name":"get_time"}}`)
		a := decode[toolCallAnswer](t, b)
		if st != 200 || a.Choices[0].FinishReason != "tool_calls" || len(a.Choices[0].Message.ToolCalls) != 1 || a.Choices[0].Message.ToolCalls[0].Function.Name != "get_time" {
			t.Errorf("%s: %d %s", model, st, b)
			continue
		}
		var args struct{ Zone *string }
		if err := json.Unmarshal([]byte(a.Choices[0].Message.ToolCalls[0].Function.Arguments), &args); err != nil || args.Zone == nil {
			t.Errorf("%s: arguments %s", model, b)
		}
	}
}

// TestStructuredAppIgnoringGrammar: an app that does not pass the
// grammar on (the echo app answers the user's text) gets a 500 when
// its answer does not follow response_format, not a silent wrong
// answer; an answer that happens to follow it passes.
func TestStructuredAppIgnoringGrammar(t *testing.T) {
	ts := startModelsServer(t, map[string]string{"stories-chat": "{% for m in messages %}{{ m.content }}{% endfor %}"},
		fmt.Sprintf("app \"echo\" {\n  wasm = %q\n  models = [\"*\"]\n}\n", filepath.Join(testEnv.dir, "bin", "echo.wasm")))
	for _, c := range []struct {
		content string
		status  int
	}{{"hello", 500}, {`{\"a\": [1, true]}`, 200}} {
		resp, b := post(t, ts.URL+"/v1/apps/echo/chat/completions", `{"model":"stories-chat","messages":[{"role":"user","content":"`+c.content+`"}],"response_format":{"type":"json_object"}}`)
		if resp.StatusCode != c.status || (c.status == 500 && !strings.Contains(string(b), "grammar_not_applied")) {
			t.Errorf("%s: %d %s", c.content, resp.StatusCode, b)
		}
	}
}

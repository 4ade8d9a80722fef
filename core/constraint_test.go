package core

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

const testSchema = `{"type":"object","properties":{"w":{"type":"string","maxLength":4},"n":{"type":"integer"},"b":{"type":"boolean"}},"required":["w","n","b"],"additionalProperties":false}`

// checkSchemaOutput decodes out as the object of testSchema.
func checkSchemaOutput(t *testing.T, out string) {
	t.Helper()
	var v struct {
		W *string
		N *json.Number
		B *bool
	}
	d := json.NewDecoder(strings.NewReader(out))
	d.DisallowUnknownFields()
	d.UseNumber()
	if err := d.Decode(&v); err != nil || v.W == nil || v.N == nil || v.B == nil || len([]rune(*v.W)) > 4 || d.More() {
		t.Errorf("output %q is not of the schema (%v)", out, err)
	}
}

// TestGenerateJSONSchema: realm_host_generate with json_schema (the
// server's way: GenerateParams from stdin) and with grammar.
func TestGenerateJSONSchema(t *testing.T) {
	e := newTestEnv(t)
	wasm := guests.get(t, "generate")
	for seed := range 4 {
		var stdout bytes.Buffer
		req := fmt.Sprintf(`{"model":"stories260k","prompt":"Once upon a time","max_tokens":100,"temperature":1,"seed":%d,"json_schema":%s}`, seed, testSchema)
		res, err := e.h.Run(context.Background(), RunRequest{Wasm: wasm, Stdin: strings.NewReader(req), Stdout: &stdout, Policy: Policy{Timeout: testTimeout}})
		if err != nil || res.ExitCode != 0 || res.StopReason != "eos" {
			t.Fatalf("run: %v %+v", err, res)
		}
		checkSchemaOutput(t, stdout.String())
	}
	var stdout, stderr bytes.Buffer
	req := `{"model":"stories260k","prompt":"Once upon a time","max_tokens":20,"temperature":1,"grammar":"root ::= (\"yes\" | \"no\") \".\""}`
	res, err := e.h.Run(context.Background(), RunRequest{Wasm: wasm, Stdin: strings.NewReader(req), Stdout: &stdout, Stderr: &stderr, Policy: Policy{Timeout: testTimeout}})
	if err != nil || res.ExitCode != 0 || (stdout.String() != "yes.\n" && stdout.String() != "no.\n") {
		t.Fatalf("grammar run: %v %+v %q %s", err, res, stdout.String(), stderr.String())
	}
	for _, bad := range []string{`"grammar":"root ::= nope"`, `"json_schema":{"type":"string","pattern":"a"}`, `"grammar":"root ::= \"a\"","json_schema":{}`} {
		stdout.Reset()
		stderr.Reset()
		req := `{"model":"stories260k","prompt":"Once","max_tokens":4,` + bad + `}`
		res, err := e.h.Run(context.Background(), RunRequest{Wasm: wasm, Stdin: strings.NewReader(req), Stdout: &stdout, Stderr: &stderr, Policy: Policy{Timeout: testTimeout}})
		if err != nil || res.ExitCode == 0 || !strings.Contains(stderr.String(), "EINVAL") {
			t.Errorf("%s: %v %+v %s", bad, err, res, stderr.String())
		}
	}
}

// TestSessionSampleJSONSchema: a guest's own decode loop drawing with
// realm_host_session_sample under a json_schema.
func TestSessionSampleJSONSchema(t *testing.T) {
	e := newTestEnv(t)
	wasm := guests.get(t, "sampler")
	for _, args := range [][]string{{"-greedy"}, {"-seed", "3", "-temp", "1"}} {
		args = append(args, "-n", "100", "-json-schema", testSchema, "stories260k", "Once upon a time")
		out := e.run(t, wasm, Policy{Timeout: testTimeout}, args...)
		if out.err != nil || out.res.ExitCode != 0 {
			t.Fatalf("run: %v exit %d\n%s", out.err, out.res.ExitCode, out.stderr)
		}
		checkSchemaOutput(t, strings.TrimSuffix(out.stdout, "\n"))
	}
}

package gen_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/internal/gen"
	"github.com/realmrt/realm/internal/grammar"
)

// TestConstrainedGeneration: with a JSON-schema grammar as the
// constraint, every seed gives a JSON text of the schema ending with an
// end-of-generation token, where the same seeds unconstrained give
// stories.
func TestConstrainedGeneration(t *testing.T) {
	b, id, tok := stories(t)
	schema := `{"type":"object","properties":{"name":{"type":"string","maxLength":5},"n":{"type":"integer"},"ok":{"enum":[true,"maybe"]}},"required":["name","n","ok"],"additionalProperties":false}`
	text, err := grammar.FromJSONSchema([]byte(schema))
	if err != nil {
		t.Fatal(err)
	}
	cache := grammar.NewCache(0)
	for seed := range uint64(6) {
		sp := backends.SampleParams{Temperature: 1, Seed: seed}
		m, err := cache.Matcher(tok, text)
		if err != nil {
			t.Fatal(err)
		}
		res, err := gen.Run(context.Background(), b, id, tok, gen.Request{
			Prompt: "Once upon a time", AddBOS: true, MaxTokens: 120, NCtx: 256, Sample: sp, Constraint: m,
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		var v struct {
			Name *string
			N    *json.Number
			OK   any
		}
		d := json.NewDecoder(strings.NewReader(res.Text))
		d.DisallowUnknownFields()
		if err := d.Decode(&v); err != nil || v.Name == nil || v.N == nil || len([]rune(*v.Name)) > 5 || (v.OK != true && v.OK != "maybe") || d.More() {
			t.Errorf("seed %d: %q (%v) is not of the schema", seed, res.Text, err)
		}
		if res.StopReason != gen.StopEOS || !m.Complete() {
			t.Logf("%q", res.Text)
			t.Errorf("seed %d: stop %q, matcher complete %v", seed, res.StopReason, m.Complete())
		}
		free, err := gen.Run(context.Background(), b, id, tok, gen.Request{
			Prompt: "Once upon a time", AddBOS: true, MaxTokens: 40, NCtx: 256, Sample: sp,
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if json.Valid([]byte(free.Text)) {
			t.Errorf("seed %d: unconstrained output is JSON too: %q", seed, free.Text)
		}
	}
}

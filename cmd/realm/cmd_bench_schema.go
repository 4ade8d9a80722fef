package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/internal/grammar"
	"github.com/realmrt/realm/internal/sample"
	"github.com/realmrt/realm/tokenizer"
)

// Samplers of the constrained-sampling tests (benchResult.Sampler).
const (
	samplerHost       = "host"             // logits to the host, package sample draws
	samplerHostSchema = "host+json-schema" // the same with the schema's mask applied first
)

// benchSchema runs the constrained-sampling tests of `realm bench
// --json-schema`: tg of nGen tokens sampled on the host (the logits of
// each decode come back, package sample draws at temperature 1), once
// plain and once with the JSON schema's token mask applied before each
// draw, as realm_host_generate does for response_format. The mask's
// cost is the difference. A sentence that completes before nGen tokens
// starts the next one (a new matcher from the same cache, as the next
// request with the schema gets). The first, untimed run fills the mask
// cache; its time is returned as cold.
func benchSchema(ctx context.Context, bn *benchRunner, tok *tokenizer.Tokenizer, schemaPath string, base benchResult, nGen, reps, pid int) ([]benchResult, time.Duration, error) {
	raw, err := os.ReadFile(schemaPath)
	if err != nil {
		return nil, 0, err
	}
	text, err := grammar.FromJSONSchema(raw)
	if err != nil {
		return nil, 0, err
	}
	if tok.NVocab() != bn.nVocab {
		return nil, 0, fmt.Errorf("the tokenizer has %d tokens, the model %d", tok.NVocab(), bn.nVocab)
	}
	cache := grammar.NewCache(1)
	var cold time.Duration
	var results []benchResult
	for _, masked := range []bool{false, true} {
		ds, err := bn.open(ctx, 0, nGen+1)
		if err != nil {
			return nil, 0, err
		}
		var maskTime time.Duration
		run := func() (time.Duration, error) {
			if err := ds.rewind(ctx); err != nil {
				return 0, err
			}
			return tgHost(ctx, bn, ds.sid, tok, cache, text, masked, nGen, &maskTime)
		}
		d, err := run() // warm-up
		if err != nil {
			ds.close(ctx)
			return nil, 0, err
		}
		if masked {
			cold = d
		}
		res := base
		res.NGen = nGen
		res.Sampler = samplerHost
		if masked {
			res.Sampler = samplerHostSchema
		}
		maskTime = 0
		cpu0 := processCPU(pid)
		for range reps {
			d, err := run()
			if err != nil {
				ds.close(ctx)
				return nil, 0, err
			}
			res.SamplesNs = append(res.SamplesNs, d.Nanoseconds())
			res.SamplesTs = append(res.SamplesTs, float64(nGen)/d.Seconds())
		}
		if cpu := processCPU(pid) - cpu0; cpu0 > 0 && cpu > 0 {
			res.CPUTs = float64(nGen*reps) / cpu.Seconds()
		}
		ds.close(ctx)
		var ns []float64
		for _, v := range res.SamplesNs {
			ns = append(ns, float64(v))
		}
		avg, sd := meanStddev(ns)
		res.AvgNs, res.StddevNs = int64(avg), int64(sd)
		res.AvgTs, res.StddevTs = meanStddev(res.SamplesTs)
		if masked {
			res.MaskNs = maskTime.Nanoseconds() / int64(nGen*reps)
		}
		results = append(results, res)
	}
	return results, cold, nil
}

// tgHost generates n tokens one decode at a time, drawing each on the
// host (with the schema's mask when masked) and feeding it back.
func tgHost(ctx context.Context, bn *benchRunner, sid backends.SessionID, tok *tokenizer.Tokenizer, cache *grammar.Cache, text string, masked bool, n int, maskTime *time.Duration) (time.Duration, error) {
	s := sample.New(backends.SampleParams{Temperature: 1, Seed: 42})
	var m *grammar.Matcher
	var err error
	scratch := make([]float32, bn.nVocab)
	history := make([]int32, 0, n+1)
	t := tok.BOS()
	if t < 0 {
		t = 1
	}
	t0 := time.Now()
	for i := 0; i < n; i++ {
		res, err2 := bn.b.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: []int32{t}, Want: backends.WantLogits})
		if err2 != nil {
			return 0, err2
		}
		history = append(history, t)
		lg := res.Logits
		if masked {
			if m == nil || m.Done() {
				if m, err = cache.Matcher(tok, text); err != nil {
					return 0, err
				}
			}
			tm := time.Now()
			copy(scratch, lg)
			lg = scratch
			if _, err := m.Apply(lg); err != nil {
				return 0, err
			}
			*maskTime += time.Since(tm)
		}
		if t, err = s.Sample(lg, history); err != nil {
			return 0, err
		}
		if masked {
			tm := time.Now()
			if err := m.Accept(t); err != nil {
				return 0, err
			}
			*maskTime += time.Since(tm)
			if m.Done() { // an end of generation: the next sentence starts with BOS
				t = max(tok.BOS(), 1)
			}
		}
	}
	return time.Since(t0), nil
}

// printSchemaCost prints the mask's cost: the masked tg against the
// plain host-sampled tg, and against the backend-sampled tg.
func printSchemaCost(env *cliEnv, results []benchResult, cold time.Duration) error {
	var plain, host, masked *benchResult
	for i := range results {
		r := &results[i]
		switch {
		case r.Sampler == samplerHost:
			host = r
		case r.Sampler == samplerHostSchema:
			masked = r
		case r.NGen > 0 && !r.ViaWasm && plain == nil:
			plain = r
		}
	}
	if host == nil || masked == nil {
		return nil
	}
	cost := func(base *benchResult) float64 { return (float64(masked.AvgNs)/float64(base.AvgNs) - 1) * 100 }
	_, err := fmt.Fprintf(env.Stdout, "json-schema mask: %+.1f%% time per token vs host sampling", cost(host))
	if err == nil && plain != nil {
		_, err = fmt.Fprintf(env.Stdout, ", %+.1f%% vs backend sampling", cost(plain))
	}
	if err == nil {
		_, err = fmt.Fprintf(env.Stdout, " (first run, mask cache cold: %.1f t/s)\n", float64(masked.NGen)/cold.Seconds())
	}
	if err == nil {
		_, err = fmt.Fprintf(env.Stdout, "json-schema mask measured in the loop (copy, mask, accept): %.3f ms per token = %.2f%% of the masked tg time per token\n",
			float64(masked.MaskNs)/1e6, 100*float64(masked.MaskNs)*float64(masked.NGen)/float64(masked.AvgNs))
	}
	return err
}

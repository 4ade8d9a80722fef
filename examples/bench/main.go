//go:build wasip1

// Command bench is the guest side of `realm bench --via-wasm`: the same
// prompt-processing and generation loops as the direct plugin path, run
// from WebAssembly through the Realm ABI, so the ABI's overhead shows
// beside the direct figures.
//
//	realm run bench.wasm -- MODEL_NAME N_PROMPT N_GEN REPS
//
// For each test (pp: one N_PROMPT-token decode in a fresh session; tg:
// N_GEN single-token decodes, each greedy token fed back) it runs one
// warm-up and REPS timed repetitions, then prints one JSON object to
// stdout: {"pp_ns": [...], "tg_ns": [...]} (wall nanoseconds per
// repetition; a test with 0 tokens has an empty list).
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/realmrt/realm/abi"
	"github.com/realmrt/realm/abi/guest"
)

// result is what the guest prints.
type result struct {
	PPNs []int64 `json:"pp_ns"`
	TGNs []int64 `json:"tg_ns"`
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) != 4 {
		return errors.New("usage: bench MODEL_NAME N_PROMPT N_GEN REPS")
	}
	var n [3]int
	for i, a := range args[1:] {
		v, err := strconv.Atoi(a)
		if err != nil || v < 0 {
			return fmt.Errorf("argument %d: want an integer ≥ 0, got %q", i+2, a)
		}
		n[i] = v
	}
	nPrompt, nGen, reps := n[0], n[1], n[2]
	if reps < 1 {
		return errors.New("REPS must be ≥ 1")
	}
	m, err := guest.LoadModel(args[0])
	if err != nil {
		return err
	}
	defer m.Unload()
	info, err := m.Info()
	if err != nil {
		return err
	}
	nCtx := nPrompt + nGen + 1
	var res result
	for _, t := range []struct {
		n   int
		run func() (time.Duration, error)
		out *[]int64
	}{
		{nPrompt, func() (time.Duration, error) { return pp(m, nCtx, nPrompt, info.NVocab) }, &res.PPNs},
		{nGen, func() (time.Duration, error) { return tg(m, nCtx, nGen) }, &res.TGNs},
	} {
		*t.out = []int64{}
		if t.n == 0 {
			continue
		}
		for i := 0; i <= reps; i++ { // i == 0: warm-up
			d, err := t.run()
			if err != nil {
				return err
			}
			if i > 0 {
				*t.out = append(*t.out, d.Nanoseconds())
			}
		}
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

// pp decodes n pseudo-random tokens (the same sequence as the direct
// path) as one batch in a fresh session and samples the greedy token.
func pp(m *guest.Model, nCtx, n, nVocab int) (time.Duration, error) {
	s, err := m.NewSession(nCtx)
	if err != nil {
		return 0, err
	}
	defer s.Close()
	toks := make([]int32, n)
	x := uint32(12345)
	for i := range toks {
		x = x*1664525 + 1013904223
		toks[i] = int32((x >> 8) % uint32(max(nVocab, 1)))
	}
	t0 := time.Now()
	if _, err := s.Decode(toks); err != nil {
		return 0, err
	}
	if _, err := s.Sample(abi.SampleParams{}); err != nil {
		return 0, err
	}
	return time.Since(t0), nil
}

// tg generates n tokens one decode at a time, feeding back each greedy
// token.
func tg(m *guest.Model, nCtx, n int) (time.Duration, error) {
	s, err := m.NewSession(nCtx)
	if err != nil {
		return 0, err
	}
	defer s.Close()
	tok := int32(1)
	t0 := time.Now()
	for i := 0; i < n; i++ {
		if _, err := s.Decode([]int32{tok}); err != nil {
			return 0, err
		}
		t, err := s.Sample(abi.SampleParams{})
		if err != nil {
			return 0, err
		}
		tok = t
	}
	return time.Since(t0), nil
}

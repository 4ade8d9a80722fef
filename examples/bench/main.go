//go:build wasip1

// Command bench is the guest side of `realm bench --via-wasm`: the same
// prompt-processing and generation loops as the direct plugin path, run
// from WebAssembly through the Realm ABI, so the ABI's overhead shows
// beside the direct figures.
//
//	realm run bench.wasm -- MODEL_NAME N_PROMPT N_GEN REPS [DEPTH]
//
// For each test (pp: one N_PROMPT-token decode; tg: N_GEN single-token
// decodes, each greedy token fed back), in a session of exactly DEPTH +
// the test's tokens positions whose first DEPTH positions are filled once
// (untimed) and truncated back to before each run, it runs one warm-up
// and REPS timed repetitions, then prints one JSON object to
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
	if len(args) != 4 && len(args) != 5 {
		return errors.New("usage: bench MODEL_NAME N_PROMPT N_GEN REPS [DEPTH]")
	}
	var n [4]int
	for i, a := range args[1:] {
		v, err := strconv.Atoi(a)
		if err != nil || v < 0 {
			return fmt.Errorf("argument %d: want an integer ≥ 0, got %q", i+2, a)
		}
		n[i] = v
	}
	nPrompt, nGen, reps, depth := n[0], n[1], n[2], n[3]
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
	var res result
	for _, t := range []struct {
		n   int
		run func(s *guest.Session, i int) (time.Duration, error)
		out *[]int64
	}{
		{nPrompt, func(s *guest.Session, i int) (time.Duration, error) { return pp(s, nPrompt, info.NVocab, i) }, &res.PPNs},
		{nGen, func(s *guest.Session, _ int) (time.Duration, error) { return tg(s, nGen) }, &res.TGNs},
	} {
		*t.out = []int64{}
		if t.n == 0 {
			continue
		}
		s, err := m.NewSession(depth + t.n)
		if err != nil {
			return err
		}
		if depth > 0 {
			if _, err := s.Decode(tokens(depth, info.NVocab, 777)); err != nil {
				s.Close()
				return fmt.Errorf("filling %d tokens of depth: %w", depth, err)
			}
		}
		for i := 0; i <= reps; i++ { // i == 0: warm-up
			if err := s.Truncate(depth); err != nil {
				s.Close()
				return err
			}
			d, err := t.run(s, i)
			if err != nil {
				s.Close()
				return err
			}
			if i > 0 {
				*t.out = append(*t.out, d.Nanoseconds())
			}
		}
		s.Close()
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

// tokens returns n pseudo-random tokens below nVocab from seed (the
// generator of the direct path's).
func tokens(n, nVocab int, seed uint32) []int32 {
	toks := make([]int32, n)
	x := seed
	for i := range toks {
		x = x*1664525 + 1013904223
		toks[i] = int32((x >> 8) % uint32(max(nVocab, 1)))
	}
	return toks
}

// pp decodes n pseudo-random tokens as one batch and samples the greedy
// token. Run i of a test uses seed 54321+i: no run repeats a prompt
// whose KV the backend's prefix cache still holds, from this guest or
// from `realm bench`'s direct runs on the same model (seeds 12345+i).
func pp(s *guest.Session, n, nVocab, i int) (time.Duration, error) {
	toks := tokens(n, nVocab, 54321+uint32(i))
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
func tg(s *guest.Session, n int) (time.Duration, error) {
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

//go:build wasip1

// Command sampler owns the decode loop in WebAssembly: it tokenizes the
// prompt, decodes it in a session, reads the logits of each step,
// picks the next token itself (argmax, or top-k with its own RNG) and
// streams each token's text as it goes. The host only runs the forward
// pass.
//
// With -json-schema (or -grammar) the guest keeps its loop but draws
// each token with the host's sampler (realm_host_session_sample) under
// that constraint, so the output is JSON of the schema.
//
//	realm run sampler.wasm -- [-greedy] [-top-k K] [-temp T] [-seed S] [-n N] [-ids] [-json-schema S | -grammar G] MODEL_NAME PROMPT
package main

import (
	"flag"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"

	"github.com/realmrt/realm/abi"
	"github.com/realmrt/realm/abi/guest"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "sampler:", err)
		os.Exit(1)
	}
}

func run() error {
	greedy := flag.Bool("greedy", false, "pick the most likely token (argmax)")
	topK := flag.Int("top-k", 40, "sample among the K most likely tokens")
	temp := flag.Float64("temp", 0.8, "temperature")
	seed := flag.Uint64("seed", 42, "RNG seed")
	n := flag.Int("n", 64, "tokens to generate")
	showIDs := flag.Bool("ids", false, "print the generated token ids to stderr")
	schema := flag.String("json-schema", "", "constrain the output to this JSON schema (host sampler)")
	gbnf := flag.String("grammar", "", "constrain the output to this GBNF grammar (host sampler)")
	flag.Parse()
	if flag.NArg() != 2 {
		return fmt.Errorf("usage: sampler [flags] MODEL_NAME PROMPT")
	}
	m, err := guest.LoadModel(flag.Arg(0))
	if err != nil {
		return err
	}
	defer m.Unload()
	info, err := m.Info()
	if err != nil {
		return err
	}
	eog := map[int32]bool{}
	for _, id := range info.EOG {
		eog[id] = true
	}
	prompt, err := m.Tokenize(flag.Arg(1), abi.TokenizeDefaultBOS|abi.TokenizeParseSpecial)
	if err != nil {
		return err
	}
	s, err := m.NewSession(len(prompt) + *n)
	if err != nil {
		return err
	}
	defer s.Close()
	if _, err := s.Decode(prompt); err != nil {
		return err
	}
	rng := xorshift(*seed | 1)
	var ids []string
	for i := 0; i < *n; i++ {
		logits, err := s.Logits()
		if err != nil {
			return err
		}
		var id int32
		if *schema != "" || *gbnf != "" {
			sp := abi.SampleParams{Seed: *seed, Grammar: *gbnf}
			if !*greedy {
				sp.Temperature, sp.TopK = float32(*temp), *topK
			}
			if *schema != "" {
				sp.JSONSchema = []byte(*schema)
			}
			if id, err = s.Sample(sp); err != nil {
				return err
			}
		} else if *greedy {
			id = argmax(logits)
		} else {
			id = topKSample(logits, *topK, float32(*temp), &rng)
		}
		if eog[id] {
			break
		}
		ids = append(ids, fmt.Sprint(id))
		piece, err := m.Piece(id)
		if err != nil {
			return err
		}
		if _, err := os.Stdout.Write(piece); err != nil {
			return err
		}
		if i+1 < *n {
			if _, err := s.Decode([]int32{id}); err != nil {
				return err
			}
		}
	}
	fmt.Println()
	if *showIDs {
		fmt.Fprintln(os.Stderr, "ids:", strings.Join(ids, " "))
	}
	return nil
}

// argmax returns the index of the largest logit (the lowest on ties).
func argmax(logits []float32) int32 {
	best := 0
	for i, v := range logits {
		if v > logits[best] {
			best = i
		}
	}
	return int32(best)
}

// xorshift is the guest's own RNG (xorshift64*).
type xorshift uint64

func (x *xorshift) float64() float64 {
	v := uint64(*x)
	v ^= v >> 12
	v ^= v << 25
	v ^= v >> 27
	*x = xorshift(v)
	return float64((v*2685821657736338717)>>11) / (1 << 53)
}

// topKSample keeps the k most likely tokens, applies the temperature
// and draws one.
func topKSample(logits []float32, k int, temp float32, rng *xorshift) int32 {
	if temp <= 0 || k == 1 {
		return argmax(logits)
	}
	idx := make([]int32, len(logits))
	for i := range idx {
		idx[i] = int32(i)
	}
	sort.Slice(idx, func(a, b int) bool { return logits[idx[a]] > logits[idx[b]] })
	if k <= 0 || k > len(idx) {
		k = len(idx)
	}
	idx = idx[:k]
	probs := make([]float64, k)
	maxL := float64(logits[idx[0]])
	sum := 0.0
	for i, id := range idx {
		probs[i] = math.Exp((float64(logits[id]) - maxL) / float64(temp))
		sum += probs[i]
	}
	r := rng.float64() * sum
	for i, p := range probs {
		r -= p
		if r <= 0 {
			return idx[i]
		}
	}
	return idx[k-1]
}

//go:build wasip1

// Command generate is the basic Realm guest: it loads a model by name
// and generates from a prompt, the host streaming the text to stdout.
//
//	realm run generate.wasm -- MODEL_NAME PROMPT [MAX_TOKENS]
//
// Without arguments it reads one JSON request from stdin (as the HTTP
// server sends it): {"model": "...", "prompt": "...", "max_tokens": N,
// "temperature": T, "top_k": K, "top_p": P, "min_p": M,
// "repeat_penalty": R, "seed": S, "stop": ["..."]}.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/realmrt/realm/abi"
	"github.com/realmrt/realm/abi/guest"
)

type request struct {
	Model  string `json:"model"`
	Prompt string `json:"prompt"`
	abi.GenerateParams
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "generate:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	var req request
	switch {
	case len(args) >= 2:
		req.Model, req.Prompt = args[0], args[1]
		if len(args) >= 3 {
			n, err := strconv.Atoi(args[2])
			if err != nil || n <= 0 {
				return fmt.Errorf("MAX_TOKENS must be a positive integer, got %q", args[2])
			}
			req.MaxTokens = n
		}
	case len(args) == 0:
		b, err := io.ReadAll(io.LimitReader(os.Stdin, 1<<20))
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &req); err != nil {
			return fmt.Errorf("stdin request: %w", err)
		}
	default:
		return fmt.Errorf("usage: generate MODEL_NAME PROMPT [MAX_TOKENS]")
	}
	m, err := guest.LoadModel(req.Model)
	if err != nil {
		return err
	}
	defer m.Unload()
	n, err := m.Generate(req.Prompt, req.GenerateParams)
	if err != nil {
		return err
	}
	fmt.Println()
	fmt.Fprintf(os.Stderr, "generated %d tokens\n", n)
	return nil
}

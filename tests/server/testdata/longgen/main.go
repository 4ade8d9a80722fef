//go:build wasip1

// Command longgen is a test app for realm serve: it reads the server's
// request from stdin and generates from the prompt again and again
// (rounds of max_tokens tokens, up to 1000 rounds), streaming all of it,
// so that a request lasts long enough to be cancelled mid-generation.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/realmrt/realm/abi"
	"github.com/realmrt/realm/abi/guest"
)

type request struct {
	Model  string `json:"model"`
	Prompt string `json:"prompt"`
	abi.GenerateParams
}

func main() {
	b, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail(err)
	}
	var req request
	if err := json.Unmarshal(b, &req); err != nil {
		fail(err)
	}
	m, err := guest.LoadModel(req.Model)
	if err != nil {
		fail(err)
	}
	for range 1000 {
		if _, err := m.Generate(req.Prompt, req.GenerateParams); err != nil {
			fail(err)
		}
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "longgen:", err)
	os.Exit(1)
}

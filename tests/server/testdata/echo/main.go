//go:build wasip1

// Command echo is a test app for realm serve: it answers a chat with
// the content of its last user message, or with the prompt the server
// rendered when that content is "PROMPT". Tests use it to see what the
// chat template made of a request (tools, tool calls, tool results) and
// to give the server an answer of their choosing to parse (a tool call),
// which a model with random weights would not write.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
)

type request struct {
	Prompt   string `json:"prompt"`
	Messages []struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	} `json:"messages"`
}

func main() {
	b, err := io.ReadAll(io.LimitReader(os.Stdin, 16<<20))
	if err != nil {
		fail(err)
	}
	var req request
	if err := json.Unmarshal(b, &req); err != nil {
		fail(err)
	}
	last := ""
	for _, m := range req.Messages {
		if m.Role == "user" {
			last = m.Content
		}
	}
	if last == "PROMPT" {
		last = req.Prompt
	}
	if _, err := io.WriteString(os.Stdout, last); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "echo:", err)
	os.Exit(1)
}

//go:build wasip1

// Command chat is the default app of realm serve: it reads one request
// as JSON from stdin (server.GuestRequest: the model name, the prompt the
// host rendered from the chat messages with the model's template, the
// messages themselves, max_tokens and the sampling parameters), loads the
// model by name and generates with the host's one-call generate, which
// streams the text to stdout as it is produced (the server turns it into
// the HTTP response or Server-Sent Events). On failure it writes the
// error, with its errno name, to stderr and exits with status 1. An
// embeddings request (endpoint "embeddings", server.EmbedGuestRequest)
// is answered by embed.go.
//
//	echo '{"model":"stories260k","prompt":"Once upon a time","max_tokens":32}' |
//	    realm run chat.wasm
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/realmrt/realm/abi"
	"github.com/realmrt/realm/abi/guest"
)

// maxRequest caps the request read from stdin.
const maxRequest = 16 << 20

// request is the part of the server's request this app uses.
type request struct {
	Endpoint string `json:"endpoint"` // "embeddings": see embed.go
	Model    string `json:"model"`
	Prompt   string `json:"prompt"`
	abi.GenerateParams
}

func main() {
	if err := run(os.Stdin); err != nil {
		var ge *guest.Error
		if errors.As(err, &ge) {
			fmt.Fprintf(os.Stderr, "chat: %v [%s]\n", err, ge.Errno)
		} else {
			fmt.Fprintln(os.Stderr, "chat:", err)
		}
		os.Exit(1)
	}
}

func run(stdin io.Reader) error {
	b, err := io.ReadAll(io.LimitReader(stdin, maxRequest+1))
	if err != nil {
		return fmt.Errorf("reading the request: %w", err)
	}
	if len(b) > maxRequest {
		return fmt.Errorf("request larger than %d bytes", maxRequest)
	}
	var req request
	if err := json.Unmarshal(b, &req); err != nil {
		return fmt.Errorf("request JSON: %w", err)
	}
	if req.Endpoint == "embeddings" {
		return embed(b, os.Stdout)
	}
	if req.Model == "" {
		return errors.New("request names no model")
	}
	if req.Prompt == "" {
		return errors.New("request has an empty prompt")
	}
	m, err := guest.LoadModel(req.Model)
	if err != nil {
		return err
	}
	defer m.Unload()
	if _, err := m.Generate(req.Prompt, req.GenerateParams); err != nil {
		return err
	}
	return nil
}

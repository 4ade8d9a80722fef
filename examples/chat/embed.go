//go:build wasip1

package main

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/realmrt/realm/abi"
	"github.com/realmrt/realm/abi/guest"
)

// embedRequest is the server's request for embeddings
// (server.EmbedGuestRequest).
type embedRequest struct {
	Model     string    `json:"model"`
	Inputs    [][]int32 `json:"inputs"`
	Normalize bool      `json:"normalize"`
}

// embed answers an embeddings request: one realm_host_embed call for
// all inputs, the vectors written to out as little-endian f32, n_embd
// per input, in order.
func embed(b []byte, out io.Writer) error {
	var req embedRequest
	if err := json.Unmarshal(b, &req); err != nil {
		return fmt.Errorf("request JSON: %w", err)
	}
	if req.Model == "" {
		return errors.New("request names no model")
	}
	if len(req.Inputs) == 0 {
		return errors.New("request has no inputs")
	}
	m, err := guest.LoadModel(req.Model)
	if err != nil {
		return err
	}
	defer m.Unload()
	var flags uint32
	if req.Normalize {
		flags |= abi.EmbedNormalize
	}
	vs, err := m.Embed(req.Inputs, flags)
	if err != nil {
		return err
	}
	var buf []byte
	for _, v := range vs {
		for _, x := range v {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(x))
		}
	}
	_, err = out.Write(buf)
	return err
}

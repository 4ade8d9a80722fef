// Host functions of the embeddings group: embed.

package core

import (
	"fmt"

	"github.com/tetratelabs/wazero/api"

	"github.com/realmrt/realm/abi"
	"github.com/realmrt/realm/backends"
)

// embed is realm_host_embed: the pooled embeddings of n_inputs token
// sequences, in one backend call. The output size is checked before
// anything runs, so a size query costs no compute.
func embed(in *instance, mem api.Memory, p []uint64) (int32, error) {
	mh, err := in.model(i32(p[0]))
	if err != nil {
		return 0, err
	}
	m := mh.m
	flags := u32(p[5])
	if flags&^uint32(abi.EmbedNormalize) != 0 {
		return 0, errf(abi.ErrnoInval, "embed: unknown flags %#x", flags)
	}
	if m.Info.Pooling == "" || m.Info.NEmbd <= 0 {
		return 0, errf(abi.ErrnoNotsup, "embed: model %s (%s) is not an embedding model (it has no pooling)", m.Name, m.Info.Arch)
	}
	nIn := u32(p[4])
	if nIn == 0 {
		return 0, errf(abi.ErrnoInval, "embed: no inputs")
	}
	if nIn > abi.MaxEmbedInputs {
		return 0, errf(abi.Errno2big, "embed: %d inputs exceed the limit of %d", nIn, abi.MaxEmbedInputs)
	}
	lens, err := readI32s(mem, u32(p[3]), nIn, abi.MaxEmbedInputs, "embed lengths")
	if err != nil {
		return 0, err
	}
	limit := in.contextLimit(m)
	total := 0
	for i, l := range lens {
		switch {
		case l <= 0:
			return 0, errf(abi.ErrnoInval, "embed: input %d has length %d", i, l)
		case int(l) > limit:
			return 0, errf(abi.Errno2big, "embed: input %d has %d tokens, more than the context of %d", i, l, limit)
		}
		total += int(l)
	}
	if uint64(total) != uint64(u32(p[2])) {
		return 0, errf(abi.ErrnoInval, "embed: the lengths add up to %d tokens, n_ids is %d", total, u32(p[2]))
	}
	need := int(nIn) * m.Info.NEmbd
	if need > int(^uint32(0)>>1) {
		return 0, errf(abi.Errno2big, "embed: %d floats of output", need)
	}
	if uint64(u32(p[7])) < uint64(need) {
		return int32(need), nil
	}
	ids, err := readI32s(mem, u32(p[1]), u32(p[2]), uint64(abi.MaxEmbedInputs)*uint64(limit), "embed ids")
	if err != nil {
		return 0, err
	}
	if err := checkIDs(ids, m.Info.NVocab); err != nil {
		return 0, err
	}
	inputs := make([][]int32, nIn)
	off := 0
	for i, l := range lens {
		inputs[i] = ids[off : off+int(l) : off+int(l)]
		off += int(l)
	}
	res, err := m.Backend.Embed(in.ctx, backends.EmbedRequest{Model: m.Info.ID, Inputs: inputs, Normalize: flags&abi.EmbedNormalize != 0})
	if err != nil {
		return 0, fmt.Errorf("embed: %w", err)
	}
	in.decoded += total
	if res.NEmbd != m.Info.NEmbd || len(res.Embeddings) != int(nIn) {
		return 0, errf(abi.ErrnoBackend, "embed: backend answered %d vectors of %d, want %d of %d", len(res.Embeddings), res.NEmbd, nIn, m.Info.NEmbd)
	}
	flat := make([]float32, 0, need)
	for _, e := range res.Embeddings {
		if len(e) != m.Info.NEmbd {
			return 0, errf(abi.ErrnoBackend, "embed: backend answered a vector of %d, want %d", len(e), m.Info.NEmbd)
		}
		flat = append(flat, e...)
	}
	return writeF32s(mem, u32(p[6]), u32(p[7]), flat, "embed")
}

// Host functions of the tokens group: tokenize and detokenize.

package core

import (
	"github.com/tetratelabs/wazero/api"

	"github.com/realmrt/realm/abi"
)

func tokenize(in *instance, mem api.Memory, p []uint64) (int32, error) {
	mh, err := in.model(i32(p[0]))
	if err != nil {
		return 0, err
	}
	flags := u32(p[3])
	if flags&^uint32(abi.TokenizeAddBOS|abi.TokenizeParseSpecial|abi.TokenizeDefaultBOS) != 0 {
		return 0, errf(abi.ErrnoInval, "tokenize: unknown flags %#x", flags)
	}
	tok, err := mh.tokenizer()
	if err != nil {
		return 0, err
	}
	text, err := readString(mem, u32(p[1]), u32(p[2]), abi.MaxTextLen, "tokenize text")
	if err != nil {
		return 0, err
	}
	addBOS := flags&abi.TokenizeAddBOS != 0
	if flags&abi.TokenizeDefaultBOS != 0 {
		addBOS = tok.AddBOSDefault()
	}
	ids, err := tok.Encode(text, addBOS, flags&abi.TokenizeParseSpecial != 0)
	if err != nil {
		return 0, errf(abi.ErrnoInval, "tokenize: %v", err)
	}
	return writeI32s(mem, u32(p[4]), u32(p[5]), ids, "tokenize")
}

const maxDetokenize = 1 << 20

func detokenize(in *instance, mem api.Memory, p []uint64) (int32, error) {
	mh, err := in.model(i32(p[0]))
	if err != nil {
		return 0, err
	}
	flags := u32(p[3])
	if flags&^uint32(abi.DetokenizePieces) != 0 {
		return 0, errf(abi.ErrnoInval, "detokenize: unknown flags %#x", flags)
	}
	tok, err := mh.tokenizer()
	if err != nil {
		return 0, err
	}
	ids, err := readI32s(mem, u32(p[1]), u32(p[2]), maxDetokenize, "detokenize ids")
	if err != nil {
		return 0, err
	}
	if err := checkIDs(ids, tok.NVocab()); err != nil {
		return 0, err
	}
	// Bound the text before building it: a vocabulary with long pieces
	// could otherwise turn 1M ids into gigabytes.
	total := 0
	for _, id := range ids {
		if total += len(tok.Piece(id)); total > abi.MaxTextLen {
			return 0, errf(abi.Errno2big, "detokenize: the text of %d ids exceeds %d bytes", len(ids), abi.MaxTextLen)
		}
	}
	var text []byte
	if flags&abi.DetokenizePieces != 0 {
		for _, id := range ids {
			text = append(text, tok.Piece(id)...)
		}
	} else {
		text = []byte(tok.Decode(ids))
	}
	return writeOut(mem, u32(p[4]), u32(p[5]), text, "detokenize")
}

func checkIDs(ids []int32, nVocab int) error {
	for i, id := range ids {
		if id < 0 || int(id) >= nVocab {
			return errf(abi.ErrnoInval, "token %d at index %d is outside the vocabulary [0, %d)", id, i, nVocab)
		}
	}
	return nil
}

// --- sessions ---

package server

import (
	"encoding/json"

	"github.com/realmrt/realm/tokenizer"
)

// toolsFit refuses a chat request whose rendered prompt, tools included,
// leaves no room in the model's context of nCtx tokens for an answer,
// with an OpenAI-shaped 400 that blames the tools when the messages
// alone would fit (without tools renders the prompt without them). The
// host would refuse the prompt too, but only after the request waited
// for the queue, and naming "messages".
func toolsFit(tok *tokenizer.Tokenizer, nCtx int, prompt string, addBOS bool, nTools int, without func() (string, *apiError)) *apiError {
	// Every token but BOS stands for at least one byte of the prompt: a
	// prompt this short fits without tokenizing it.
	if nCtx <= 0 || len(prompt)+1 < nCtx {
		return nil
	}
	ids, err := tok.Encode(prompt, addBOS, true)
	if err != nil {
		return badRequest("messages", "tokenizing the prompt: %v", err)
	}
	if len(ids) < nCtx {
		return nil
	}
	bare, e := without()
	if e != nil {
		return e
	}
	bareIDs, err := tok.Encode(bare, addBOS, true)
	if err != nil {
		return badRequest("messages", "tokenizing the prompt: %v", err)
	}
	var ae *apiError
	if len(bareIDs) < nCtx {
		ae = badRequest("tools", "the %d tools take %d tokens of the prompt; with them the prompt is %d tokens, which leaves no room for an answer in this model's context of %d tokens (without them: %d): send fewer or shorter tools",
			nTools, len(ids)-len(bareIDs), len(ids), nCtx, len(bareIDs))
	} else {
		ae = badRequest("messages", "the prompt is %d tokens (%d without the tools), which leaves no room for an answer in this model's context of %d tokens", len(ids), len(bareIDs), nCtx)
	}
	ae.code = "context_length_exceeded"
	return ae
}

// countTools is the number of tools in a validated tools array.
func countTools(tools []byte) int {
	var list []json.RawMessage
	json.Unmarshal(tools, &list) // parseTools has checked it
	return len(list)
}

package loader

import (
	"github.com/realmrt/realm/gguf"
	"github.com/realmrt/realm/tokenizer"
)

// buildTokenizer builds the host-side tokenizer from GGUF metadata.
func buildTokenizer(meta *gguf.File) (*tokenizer.Tokenizer, error) {
	return tokenizer.FromGGUF(meta)
}

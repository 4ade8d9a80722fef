package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/realmrt/realm/gguf"
	"github.com/realmrt/realm/tokenizer"
)

const tokenizeUsage = "usage: realm tokenize -m MODEL.gguf [--no-bos] [--no-special] [--json] [TEXT...]\n" +
	"\nTokenizes TEXT (the arguments joined by spaces, or standard input when\n" +
	"there are none) with the model's tokenizer, like llama-tokenize. MODEL\n" +
	"may be a vocab-only GGUF. By default BOS is added when the vocabulary\n" +
	"asks for it and special tokens (e.g. <|im_start|>) are parsed.\n"

// runTokenize implements `realm tokenize`.
func runTokenize(_ context.Context, env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("tokenize", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprint(env.Stderr, tokenizeUsage)
		fmt.Fprintln(env.Stderr, "\nflags:")
		fs.PrintDefaults()
	}
	model := fs.String("m", "", "GGUF `file` holding the tokenizer (also --model)")
	fs.StringVar(model, "model", "", "same as -m")
	noBOS := fs.Bool("no-bos", false, "do not add BOS (nor EOS) even if the vocabulary asks for it")
	noSpecial := fs.Bool("no-special", false, "treat special-token text as plain text")
	asJSON := fs.Bool("json", false, `print {"ids":[...]} instead of one "ID -> 'piece'" line per token`)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if *model == "" {
		fmt.Fprint(env.Stderr, "realm tokenize: -m MODEL is required\n\n"+tokenizeUsage)
		return exitCode(2)
	}
	var text string
	if len(pos) > 0 {
		text = strings.Join(pos, " ")
	} else {
		if env.Stdin == nil {
			return errors.New("no TEXT and no standard input")
		}
		b, err := io.ReadAll(env.Stdin)
		if err != nil {
			return fmt.Errorf("reading standard input: %w", err)
		}
		text = string(b)
	}
	tok, err := readTokenizer(*model)
	if err != nil {
		return err
	}
	ids, err := tok.Encode(text, tok.AddBOSDefault() && !*noBOS, !*noSpecial)
	if err != nil {
		return err
	}
	if *asJSON {
		if ids == nil {
			ids = []int32{}
		}
		b, err := json.Marshal(struct {
			IDs []int32 `json:"ids"`
		}{ids})
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(env.Stdout, "%s\n", b)
		return err
	}
	var sb strings.Builder
	for _, id := range ids {
		fmt.Fprintf(&sb, "%6d -> '%s'\n", id, tok.PieceSpecial(id))
	}
	_, err = io.WriteString(env.Stdout, sb.String())
	return err
}

// readTokenizer reads only the GGUF header (metadata) of path, so
// vocab-only files work and no tensor data is mapped.
func readTokenizer(path string) (*tokenizer.Tokenizer, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, err
	}
	f, err := gguf.Read(fh, st.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	tok, err := tokenizer.FromGGUF(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return tok, nil
}

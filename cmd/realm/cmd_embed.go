package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"

	"github.com/realmrt/realm/backends"
)

const embedUsage = "usage: realm embed -m MODEL [--no-normalize] [--config FILE] [--backend NAME] TEXT...\n" +
	"\nPrints the pooled embedding of each TEXT (tokenized with the model's special\n" +
	"tokens, as llama.cpp does) from an embedding model (a bert GGUF), all texts\n" +
	"in one batch, as one JSON object:\n" +
	"  {\"model\":...,\"n_embd\":N,\"data\":[{\"text\":...,\"tokens\":K,\"embedding\":[...]}]}\n" +
	"Vectors have unit length unless --no-normalize.\n"

// embedOutput is what realm embed prints.
type embedOutput struct {
	Model string      `json:"model"`
	NEmbd int         `json:"n_embd"`
	Data  []embedItem `json:"data"`
}

type embedItem struct {
	Text      string    `json:"text"`
	Tokens    int       `json:"tokens"`
	Embedding []float32 `json:"embedding"`
}

// runEmbed implements `realm embed`.
func runEmbed(ctx context.Context, env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("embed", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	model := fs.String("m", "", "model: path of a GGUF file, or a model name the configuration's registry serves")
	noNorm := fs.Bool("no-normalize", false, "print the pooled vectors as the model computes them, not scaled to unit length")
	rf := addRuntimeFlags(fs, withBackend)
	fs.Lookup("config").Usage = "configuration file: run in its selected backend plugin (default $REALM_CONFIG, or ./plugins.hcl if present; none: in-process reference kernels)"
	fs.Usage = func() {
		fmt.Fprint(env.Stderr, embedUsage)
		fmt.Fprintln(env.Stderr, "\nflags:")
		fs.PrintDefaults()
	}
	texts, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if *model == "" || len(texts) == 0 {
		fs.Usage()
		return exitCode(2)
	}
	path, err := resolveModelArg(env, *model, rf.config)
	if err != nil {
		return err
	}
	tok, err := loadTokenizer(path)
	if err != nil {
		return err
	}
	inputs := make([][]int32, len(texts))
	for i, t := range texts {
		if inputs[i], err = tok.Encode(t, tok.AddBOSDefault(), true); err != nil {
			return fmt.Errorf("tokenize text %d: %w", i+1, err)
		}
		if len(inputs[i]) == 0 {
			return fmt.Errorf("text %d has no tokens", i+1)
		}
	}
	b, id, closeBackend, err := openGenerateBackend(ctx, env, path, rf.config, rf.backend)
	if err != nil {
		return err
	}
	defer closeBackend()
	res, err := b.Embed(ctx, backends.EmbedRequest{Model: id, Inputs: inputs, Normalize: !*noNorm})
	if err != nil {
		return fmt.Errorf("embed: %w", err)
	}
	out := embedOutput{Model: *model, NEmbd: res.NEmbd}
	for i, t := range texts {
		out.Data = append(out.Data, embedItem{Text: t, Tokens: len(inputs[i]), Embedding: res.Embeddings[i]})
	}
	enc := json.NewEncoder(env.Stdout)
	enc.SetEscapeHTML(false)
	return enc.Encode(out)
}

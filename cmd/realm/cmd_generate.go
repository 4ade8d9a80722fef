package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/gguf"
	"github.com/realmrt/realm/internal/gen"
	"github.com/realmrt/realm/tokenizer"
)

// stringList is a repeatable string flag.
type stringList []string

// String implements flag.Value.
func (s *stringList) String() string { return strings.Join(*s, ",") }

// Set implements flag.Value; each use of the flag adds one string.
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// generateOutput is what --json prints.
type generateOutput struct {
	PromptIDs  []int32 `json:"prompt_ids"`
	IDs        []int32 `json:"ids"`
	Text       string  `json:"text"`
	StopReason string  `json:"stop_reason"`
}

// runGenerate implements `realm generate`.
func runGenerate(ctx context.Context, env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("generate", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	var (
		model    = fs.String("m", "", "model: path of a GGUF file, or a model name the configuration's registry serves")
		prompt   = fs.String("p", "", "prompt")
		n        = fs.Int("n", 256, "tokens to generate at most (≤ 0: until end of text or context)")
		temp     = fs.Float64("temp", 0.8, "temperature (0: greedy)")
		topK     = fs.Int("top-k", 40, "top-k sampling (0: off)")
		topP     = fs.Float64("top-p", 0.95, "top-p sampling (1: off)")
		minP     = fs.Float64("min-p", 0.05, "min-p sampling (0: off)")
		penalty  = fs.Float64("repeat-penalty", 1.0, "repetition penalty (1: off)")
		lastN    = fs.Int("repeat-last-n", 64, "tokens the repetition penalty looks back on")
		seed     = fs.Int64("seed", -1, "random seed (-1: random)")
		nCtx     = fs.Int("ctx", 0, "context size (0: the backend's default)")
		noBOS    = fs.Bool("no-bos", false, "do not add the BOS token even where the vocabulary asks for it")
		asJSON   = fs.Bool("json", false, `print one JSON object {"prompt_ids","ids","text","stop_reason"} at the end instead of streaming text`)
		stopStrs stringList
	)
	rf := addRuntimeFlags(fs, withBackend)
	fs.Lookup("config").Usage = "configuration file: run in its selected backend plugin (default $REALM_CONFIG, or ./plugins.hcl if present; none: in-process reference kernels)"
	fs.Var(&stopStrs, "stop", "stop string (repeatable)")
	fs.Usage = func() {
		fmt.Fprintln(env.Stderr, "usage: realm generate -m MODEL -p PROMPT [-n N] [--temp T] [--top-k K] [--top-p P] [--min-p P] [--repeat-penalty R] [--seed S] [--ctx N] [--stop S] [--json] [--config FILE] [--backend NAME]")
		fs.PrintDefaults()
	}
	if pos, err := parseArgs(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return fmt.Errorf("unexpected arguments %q", pos)
	}
	if *model == "" {
		fs.Usage()
		return exitCode(2)
	}
	params := backends.SampleParams{
		Temperature:   float32(*temp),
		TopK:          *topK,
		TopP:          float32(*topP),
		MinP:          float32(*minP),
		RepeatPenalty: float32(*penalty),
		RepeatLastN:   *lastN,
		Seed:          uint64(*seed),
	}
	if *seed < 0 {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return fmt.Errorf("random seed: %w", err)
		}
		params.Seed = binary.LittleEndian.Uint64(b[:])
	}

	path, err := resolveModelArg(env, *model, rf.config)
	if err != nil {
		return err
	}
	tok, err := loadTokenizer(path)
	if err != nil {
		return err
	}
	b, id, closeBackend, err := openGenerateBackend(ctx, env, path, rf.config, rf.backend)
	if err != nil {
		return err
	}
	defer closeBackend()

	req := gen.Request{
		Prompt:       *prompt,
		AddBOS:       tok.AddBOSDefault() && !*noBOS,
		ParseSpecial: true,
		MaxTokens:    *n,
		NCtx:         *nCtx,
		Sample:       params,
		Stop:         stopStrs,
	}
	var out io.Writer = env.Stdout
	if *asJSON {
		out = nil
	}
	res, err := gen.Run(ctx, b, id, tok, req, out)
	if err != nil {
		if !*asJSON && res != nil && len(res.IDs) > 0 {
			fmt.Fprintln(env.Stdout)
		}
		return err
	}
	if *asJSON {
		o := generateOutput{PromptIDs: res.PromptIDs, IDs: res.IDs, Text: res.Text, StopReason: res.StopReason}
		if o.IDs == nil {
			o.IDs = []int32{}
		}
		enc := json.NewEncoder(env.Stdout)
		enc.SetEscapeHTML(false)
		return enc.Encode(o)
	}
	fmt.Fprintln(env.Stdout)
	gen := res.Duration - res.TimeToFirstToken
	rate := 0.0
	if gen > 0 && len(res.IDs) > 1 {
		rate = float64(len(res.IDs)-1) / gen.Seconds()
	}
	fmt.Fprintf(env.Stderr, "realm generate: prompt %d tokens, first token after %v; %d tokens in %v (%.1f tokens/s); stop: %s\n",
		len(res.PromptIDs), res.TimeToFirstToken.Round(1e5), len(res.IDs), res.Duration.Round(1e5), rate, res.StopReason)
	return nil
}

// loadTokenizer reads the tokenizer stored in the GGUF file at path.
func loadTokenizer(path string) (*tokenizer.Tokenizer, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tok, err := tokenizer.FromGGUF(f.File)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return tok, nil
}

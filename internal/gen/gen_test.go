package gen_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/gguf"
	"github.com/realmrt/realm/internal/backend/reference"
	"github.com/realmrt/realm/internal/engine"
	"github.com/realmrt/realm/internal/gen"
	"github.com/realmrt/realm/internal/refdata"
	"github.com/realmrt/realm/tokenizer"
)

// stories loads stories260K into a reference backend with its tokenizer.
func stories(t *testing.T) (backends.Backend, backends.ModelID, *tokenizer.Tokenizer) {
	t.Helper()
	path, err := refdata.Path("models", "stories260K.gguf")
	if err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tok, err := tokenizer.FromGGUF(f.File)
	if err != nil {
		t.Fatal(err)
	}
	b := engine.NewBackend(reference.New(), engine.Options{Name: "reference"})
	mi, err := b.LoadModel(context.Background(), backends.LoadRequest{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.UnloadModel(context.Background(), mi.ID) })
	return b, mi.ID, tok
}

func TestGreedyMatchesLlamaCpp(t *testing.T) {
	ref, err := refdata.LoadOutput("stories260K.once-upon")
	if err != nil {
		t.Fatal(err)
	}
	b, id, tok := stories(t)
	var out bytes.Buffer
	res, err := gen.Run(context.Background(), b, id, tok, gen.Request{
		Prompt: ref.Prompt, AddBOS: ref.AddBOS, ParseSpecial: true, MaxTokens: len(ref.GenIDs), NCtx: 512,
	}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.PromptIDs, ref.PromptIDs) {
		t.Errorf("prompt ids %v, want %v", res.PromptIDs, ref.PromptIDs)
	}
	if !slices.Equal(res.IDs, ref.GenIDs) {
		t.Errorf("ids %v\nwant %v", res.IDs, ref.GenIDs)
	}
	if res.StopReason != gen.StopLength {
		t.Errorf("stop reason %q, want %q", res.StopReason, gen.StopLength)
	}
	if out.String() != res.Text {
		t.Errorf("streamed %q, result text %q", out.String(), res.Text)
	}
	// The reference file holds the text up to its first newline.
	if ref.GenText == "" || !strings.HasPrefix(res.Text, ref.GenText) {
		t.Errorf("text %q\nwant %q", res.Text, ref.GenText)
	}
	if res.TimeToFirstToken <= 0 || res.Duration < res.TimeToFirstToken {
		t.Errorf("timings: ttft %v duration %v", res.TimeToFirstToken, res.Duration)
	}
}

func TestStopStrings(t *testing.T) {
	b, id, tok := stories(t)
	// Greedy text: ", there was a little girl named Lily. She loved to play ..."
	tests := []struct {
		name string
		stop []string
		want string
	}{
		{"word", []string{"Lily"}, ", there was a little girl named "},
		{"earliest of two", []string{"loved", "little"}, ", there was a "},
		{"across tokens", []string{"girl named L"}, ", there was a little "},
		{"prefix held then released", []string{"Lilx"}, ""}, // never matches: full text
		{"punctuation", []string{"."}, ", there was a little girl named Lily"},
	}
	full, err := gen.Run(context.Background(), b, id, tok, gen.Request{Prompt: "Once upon a time", AddBOS: true, MaxTokens: 30}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			res, err := gen.Run(context.Background(), b, id, tok, gen.Request{
				Prompt: "Once upon a time", AddBOS: true, MaxTokens: 30, Stop: tc.stop,
			}, &out)
			if err != nil {
				t.Fatal(err)
			}
			want, reason := tc.want, gen.StopString
			if want == "" {
				want, reason = full.Text, gen.StopLength
			}
			if res.Text != want || out.String() != want || res.StopReason != reason {
				t.Errorf("text %q streamed %q reason %q; want %q, %q", res.Text, out.String(), res.StopReason, want, reason)
			}
		})
	}
}

func TestContextLimit(t *testing.T) {
	b, id, tok := stories(t)
	res, err := gen.Run(context.Background(), b, id, tok, gen.Request{PromptIDs: []int32{1, 403, 407, 261, 378}, NCtx: 10}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// 5 prompt positions, 5 decoded tokens fill the context; the 6th
	// sampled token is returned but cannot be decoded.
	if res.StopReason != gen.StopContext || len(res.IDs) != 6 {
		t.Errorf("reason %q with %d ids, want %q with 6", res.StopReason, len(res.IDs), gen.StopContext)
	}
	_, err = gen.Run(context.Background(), b, id, tok, gen.Request{PromptIDs: []int32{1, 403, 407, 261, 378}, NCtx: 3}, nil)
	if !errors.Is(err, backends.ErrContextFull) {
		t.Errorf("prompt longer than the context: %v", err)
	}
}

func TestBadRequests(t *testing.T) {
	b, id, tok := stories(t)
	ctx := context.Background()
	tests := []struct {
		name string
		req  gen.Request
		want error
	}{
		{"empty prompt", gen.Request{}, backends.ErrInvalidArgument},
		{"empty stop", gen.Request{PromptIDs: []int32{1}, Stop: []string{""}}, backends.ErrInvalidArgument},
		{"bad id", gen.Request{PromptIDs: []int32{1, 9999}}, backends.ErrInvalidArgument},
	}
	for _, tc := range tests {
		if _, err := gen.Run(ctx, b, id, tok, tc.req, nil); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := gen.Run(ctx, b, id+99, tok, gen.Request{PromptIDs: []int32{1}}, nil); !errors.Is(err, backends.ErrNotFound) {
		t.Errorf("unknown model: %v", err)
	}
}

// scripted is a Backend whose Decode returns scripted tokens; it records
// sessions so tests can check that Run closes them.
type scripted struct {
	backends.Backend // nil: unused methods panic
	tokens           []int32
	cancelAt         int
	cancel           context.CancelFunc
	mu               sync.Mutex
	open             int
	calls            int
}

func (s *scripted) OpenSession(context.Context, backends.ModelID, int) (backends.SessionID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.open++
	return 1, nil
}

func (s *scripted) CloseSession(ctx context.Context, _ backends.SessionID) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.open--
	return nil
}

func (s *scripted) Decode(ctx context.Context, req backends.DecodeRequest) (*backends.DecodeResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cancel != nil && s.calls == s.cancelAt {
		s.cancel()
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if req.Want != backends.WantSample {
		return nil, errors.New("want sample")
	}
	t := s.tokens[s.calls]
	s.calls++
	return &backends.DecodeResult{Token: t, NPast: s.calls}, nil
}

func TestEOSAndCancel(t *testing.T) {
	_, _, tok := stories(t)
	eos := tok.EOS()
	sb := &scripted{tokens: []int32{432, 383, eos, 286}}
	var out bytes.Buffer
	res, err := gen.Run(context.Background(), sb, 1, tok, gen.Request{PromptIDs: []int32{1}}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if res.StopReason != gen.StopEOS || !slices.Equal(res.IDs, []int32{432, 383}) || out.String() != res.Text || sb.open != 0 {
		t.Errorf("reason %q ids %v text %q streamed %q open sessions %d", res.StopReason, res.IDs, res.Text, out.String(), sb.open)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sc := &scripted{tokens: []int32{432, 383, 286, 261}, cancelAt: 2, cancel: cancel}
	res, err = gen.Run(ctx, sc, 1, tok, gen.Request{PromptIDs: []int32{1}}, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled run: %v", err)
	}
	if len(res.IDs) != 2 || sc.open != 0 {
		t.Errorf("cancelled run: ids %v, open sessions %d (want 2 ids, 0 open)", res.IDs, sc.open)
	}
}

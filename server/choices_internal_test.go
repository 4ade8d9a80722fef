package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/realmrt/realm/core"
)

// TestChoiceSeed: choice 0 keeps the seed, the others differ from it,
// from each other and from the choices of the neighbouring seed.
func TestChoiceSeed(t *testing.T) {
	seen := map[uint64]string{}
	for _, seed := range []uint64{0, 1, 42} {
		if choiceSeed(seed, 0) != seed {
			t.Errorf("choice 0 of seed %d has seed %d", seed, choiceSeed(seed, 0))
		}
		for i := 1; i < 64; i++ {
			s := choiceSeed(seed, i)
			if prev, dup := seen[s]; dup {
				t.Fatalf("seed %d choice %d repeats %s", seed, i, prev)
			}
			seen[s] = fmt.Sprintf("seed %d choice %d", seed, i)
		}
	}
}

// TestStreamedLogprobs writes tokens as the generate loop does (entry
// first, then its text, with UTF-8 and stop-string hold-backs splitting
// the text differently from the tokens) and checks that every chunk
// carries the entries of the tokens its text completes, with text
// offsets continuing across chunks in the legacy shape.
func TestStreamedLogprobs(t *testing.T) {
	// "é" is split over two byte tokens; "ab" is written in one piece
	// after two tokens (a held-back stop-string prefix).
	tokens := []string{"x", "\xc3", "\xa9", "a", "b", "!"}
	writes := [][]int{{0}, {1}, {2}, {3, 4}, {5}} // token indexes per write
	for _, chat := range []bool{true, false} {
		rec := httptest.NewRecorder()
		o := &output{w: rec, rc: http.NewResponseController(rec), stream: true, chat: chat, id: "x", model: "m", onBytes: func(int) {}}
		for _, wr := range writes {
			var text []byte
			for _, i := range wr {
				o.addLogprob(core.TokenLogprob{ID: int32(i), Bytes: []byte(tokens[i]), Logprob: -float32(i)})
				text = append(text, tokens[i]...)
			}
			if _, err := o.Write(text); err != nil {
				t.Fatal(err)
			}
		}
		o.finish("stop", usage{}, false)
		var got []string
		for _, ev := range strings.Split(rec.Body.String(), "\n\n") {
			ev = strings.TrimPrefix(ev, "data: ")
			if ev == "" || ev == "[DONE]" {
				continue
			}
			var c struct {
				Choices []struct {
					Delta        struct{ Content string }
					Text         string
					FinishReason *string `json:"finish_reason"`
					Logprobs     *struct {
						Content []struct {
							Token string
							Bytes []int
						}
						Tokens     []string
						TextOffset []int `json:"text_offset"`
					}
				}
			}
			if err := json.Unmarshal([]byte(ev), &c); err != nil {
				t.Fatal(err)
			}
			ch := c.Choices[0]
			text := ch.Delta.Content + ch.Text
			if text == "" {
				if ch.Logprobs != nil {
					t.Errorf("chat %v: logprobs on a chunk without text: %s", chat, ev)
				}
				continue
			}
			var bs []byte
			if chat {
				for _, e := range ch.Logprobs.Content {
					for _, b := range e.Bytes {
						bs = append(bs, byte(b))
					}
				}
			} else {
				// Tokens that are not whole UTF-8 read "bytes:\xNN".
				for _, tk := range ch.Logprobs.Tokens {
					if rest, ok := strings.CutPrefix(tk, "bytes:"); ok {
						var b byte
						fmt.Sscanf(rest, `\x%02x`, &b)
						tk = string([]byte{b})
					}
					bs = append(bs, tk...)
				}
				want := strings.Join(got, "")
				if ch.Logprobs.TextOffset[0] != len(want) {
					t.Errorf("text_offset %v after %q", ch.Logprobs.TextOffset, want)
				}
			}
			if string(bs) != text {
				t.Errorf("chat %v: chunk %q carries the tokens of %q", chat, text, bs)
			}
			got = append(got, text)
		}
		if want := []string{"x", "é", "ab", "!"}; strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("chat %v: chunks %q, want %q", chat, got, want)
		}
	}
}

// TestCheckNested: unknown fields inside messages, tools and
// stream_options are 400s naming them; off values and known ones pass.
func TestCheckNested(t *testing.T) {
	for _, tc := range []struct {
		body, param string
	}{
		{`{"messages":[{"role":"user","content":"x"}]}`, ""},
		{`{"messages":[{"role":"user","content":"x","audio":null,"refusal":""}]}`, ""},
		{`{"messages":[{"role":"user","content":"x","refusal":"no"}]}`, "messages[0].refusal"},
		{`{"messages":[{"role":"user","content":"x","zeta":1,"alpha":2}]}`, "messages[0].alpha"},
		{`{"tools":[{"type":"function","function":{"name":"f","strict":true}}]}`, "tools[0].function.strict"},
		{`{"tools":[{"type":"function","function":{"name":"f","strict":false,"description":"d"}}]}`, ""},
		{`{"stream_options":{"include_usage":true,"x":1}}`, "stream_options.x"},
		{`{"messages":"not an array"}`, ""},
	} {
		e := checkNested([]byte(tc.body), true)
		switch {
		case tc.param == "" && e != nil:
			t.Errorf("%s: %v", tc.body, e)
		case tc.param != "" && (e == nil || e.param != tc.param || e.status != 400):
			t.Errorf("%s: %+v, want a 400 on %s", tc.body, e, tc.param)
		}
	}
}

// Package chat renders a conversation into the prompt text a model was
// trained on, with the Jinja chat template the model ships in its GGUF
// metadata (tokenizer.chat_template).
//
// Rendering follows what llama.cpp's server does (common/chat.cpp,
// common_chat_templates_apply with --jinja): the template sees messages,
// add_generation_prompt, bos_token, eos_token, tools (when the request
// has any), enable_thinking, date_string and the globals
// raise_exception and strftime_now; a "developer" message becomes
// "system"; a leading system message is folded into the next message
// when the template ignores or rejects a system role; and a leading BOS
// text is dropped when the tokenizer adds BOS itself.
//
// Templates come from model files, so they are untrusted: compiling and
// rendering are bounded in size, time and loop length (see Limits), an
// engine panic becomes an error, and RenderIsolated renders in a child
// process whose memory and time are capped.
package chat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ardanlabs/jinja"
)

// Message is one chat message, its content flattened to text.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
	// Name is the optional author name (OpenAI "name"); templates that
	// know it use it, most ignore it.
	Name string `json:"name,omitempty"`
	// ToolCalls is an assistant message's "tool_calls" array as JSON
	// (OpenAI format), or nil; templates see it as message.tool_calls,
	// key order kept. A function's arguments given as a JSON string are
	// best passed as the object it holds (templates print them with
	// tojson, and llama.cpp passes objects too).
	ToolCalls json.RawMessage `json:"tool_calls,omitempty"`
	// ToolCallID is a tool message's "tool_call_id".
	ToolCallID string `json:"tool_call_id,omitempty"`
}

// Limits bounds the work a template may do. Zero fields take the
// defaults: 1 MiB of template, 16 MiB of prompt, 2^20 range() items and
// 5 s per render.
type Limits struct {
	// MaxTemplateBytes is the largest template source accepted. Real
	// chat templates are a few KiB to a few tens of KiB.
	MaxTemplateBytes int
	// MaxOutputBytes is the largest rendered prompt accepted.
	MaxOutputBytes int
	// MaxRange is the total number of items all range() calls of one
	// render may produce (templates loop over messages, and over
	// range(n) to walk them backwards).
	MaxRange int
	// Timeout bounds one render.
	Timeout time.Duration
}

// The defaults of Limits are generous for real templates and
// conversations: rendering a real template takes well under a
// millisecond.
const (
	defaultMaxTemplateBytes = 1 << 20
	defaultMaxOutputBytes   = 16 << 20
	defaultMaxRange         = 1 << 20
	defaultTimeout          = 5 * time.Second
)

func (l Limits) withDefaults() Limits {
	if l.MaxTemplateBytes <= 0 {
		l.MaxTemplateBytes = defaultMaxTemplateBytes
	}
	if l.MaxOutputBytes <= 0 {
		l.MaxOutputBytes = defaultMaxOutputBytes
	}
	if l.MaxRange <= 0 {
		l.MaxRange = defaultMaxRange
	}
	if l.Timeout <= 0 {
		l.Timeout = defaultTimeout
	}
	return l
}

// Options describe the model a template belongs to.
type Options struct {
	// BOS and EOS are the texts of the vocabulary's beginning- and
	// end-of-sequence tokens ("" when it has none); templates see them
	// as bos_token and eos_token.
	BOS, EOS string
	// AddBOS says the tokenizer adds BOS itself, so a rendered prompt
	// that starts with the BOS text has it removed (as llama.cpp does)
	// instead of carrying two.
	AddBOS bool
	// Limits bound compiling and rendering.
	Limits Limits
}

// Input is one conversation to render.
type Input struct {
	Messages []Message
	// Tools is the request's "tools" array as JSON (OpenAI format), or
	// nil. Its key order is kept: templates print tools with tojson.
	Tools []byte
	// AddGenerationPrompt ends the prompt where the assistant's reply
	// begins.
	AddGenerationPrompt bool
	// DisableThinking sets enable_thinking to false (Qwen3-style
	// templates then ask the model not to think); llama.cpp's default
	// is true.
	DisableThinking bool
	// Now is the time strftime_now and date_string report; zero means
	// the current time.
	Now time.Time
}

// Template is a compiled chat template. It is safe for concurrent use.
type Template struct {
	tmpl *jinja.Template
	opt  Options
	// systemRole is false when the template drops or rejects a leading
	// system message (probed once at Parse, as llama.cpp's caps check).
	systemRole bool
}

// ErrTemplate is wrapped by every error caused by the template itself
// (it does not compile, it fails or exceeds a limit while rendering), as
// opposed to the conversation.
var ErrTemplate = errors.New("chat template")

// RaiseError is the error of a template's raise_exception call: the
// template refuses the conversation (for example "Conversation roles
// must alternate user/assistant/user/assistant/..."). It is the
// caller's input that is wrong, not the template.
type RaiseError struct{ Message string }

func (e *RaiseError) Error() string {
	return "the chat template refused the conversation: " + e.Message
}

// Parse compiles a chat template. src must not be empty.
func Parse(src string, opt Options) (*Template, error) {
	opt.Limits = opt.Limits.withDefaults()
	if src == "" {
		return nil, fmt.Errorf("%w: empty", ErrTemplate)
	}
	if len(src) > opt.Limits.MaxTemplateBytes {
		return nil, fmt.Errorf("%w: %d bytes, over the limit of %d", ErrTemplate, len(src), opt.Limits.MaxTemplateBytes)
	}
	tmpl, err := compile(src)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTemplate, err)
	}
	t := &Template{tmpl: tmpl, opt: opt, systemRole: true}
	if t.systemRole, err = t.probeSystemRole(); err != nil {
		return nil, err
	}
	return t, nil
}

// limitError is a render stopped by one of the Limits.
type limitError struct{ msg string }

func limitErr(format string, args ...any) error { return &limitError{fmt.Sprintf(format, args...)} }

func (e *limitError) Error() string { return ErrTemplate.Error() + ": " + e.msg }
func (e *limitError) Unwrap() error { return ErrTemplate }

func compile(src string) (t *jinja.Template, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("compiling panicked: %v", r)
		}
	}()
	return jinja.Compile(rewriteTojson(src))
}

// probeSystemRole renders a system+user conversation and reports whether
// the system text reaches the output (llama.cpp's supports_system_role:
// templates such as Gemma's raise on a system message or skip it). A
// probe stopped by a limit fails Parse: every render would be.
func (t *Template) probeSystemRole() (bool, error) {
	const marker = "System message 5f0c2e"
	in := Input{Messages: []Message{{Role: "system", Content: marker}, {Role: "user", Content: "User message"}}, AddGenerationPrompt: true}
	out, err := t.render(context.Background(), in, true)
	var le *limitError
	if errors.As(err, &le) {
		return false, err
	}
	return err == nil && strings.Contains(out, marker), nil
}

// SupportsSystemRole reports whether the template renders a leading
// system message itself; when it does not, Render folds it into the
// next message.
func (t *Template) SupportsSystemRole() bool { return t.systemRole }

// Render returns the prompt for in. Errors wrap ErrTemplate when the
// template is at fault, or are a *RaiseError when the template refused
// the conversation.
//
// Render runs in the calling process: a render stopped at the time limit
// returns, but its goroutine runs on until the template next calls a
// global, and an allocation the template asks for is not bounded. Render
// templates from untrusted model files with RenderIsolated.
func (t *Template) Render(ctx context.Context, in Input) (string, error) {
	return t.render(ctx, in, false)
}

func (t *Template) render(ctx context.Context, in Input, probe bool) (string, error) {
	msgs := make([]Message, len(in.Messages))
	copy(msgs, in.Messages)
	for i := range msgs {
		if msgs[i].Role == "developer" {
			msgs[i].Role = "system"
		}
	}
	if !probe && !t.systemRole && len(msgs) > 0 && msgs[0].Role == "system" {
		if len(msgs) > 1 {
			msgs[1].Content = msgs[0].Content + "\n" + msgs[1].Content
		}
		msgs = msgs[1:]
	}
	now := in.Now
	if now.IsZero() {
		now = time.Now()
	}
	lim := t.opt.Limits
	st := &state{rangeLeft: lim.MaxRange, rangeMax: lim.MaxRange}
	data, err := t.variables(msgs, in, now, st)
	if err != nil {
		return "", err
	}

	ctx, cancel := context.WithTimeout(ctx, lim.Timeout)
	defer cancel()
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		defer func() {
			if p := recover(); p != nil {
				r = result{err: fmt.Errorf("%w: rendering panicked: %v", ErrTemplate, p)}
			}
			done <- r
		}()
		r.out, r.err = t.tmpl.RenderValues(data)
	}()
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		st.stop.Store(true)
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return "", limitErr("rendering took longer than %v", lim.Timeout)
		}
		return "", ctx.Err()
	}
	if r.err != nil {
		var re *RaiseError
		if errors.As(r.err, &re) || errors.Is(r.err, ErrTemplate) {
			return "", r.err
		}
		return "", fmt.Errorf("%w: %w", ErrTemplate, r.err)
	}
	out := r.out
	if len(out) > lim.MaxOutputBytes {
		return "", limitErr("the prompt is %d bytes, over the limit of %d", len(out), lim.MaxOutputBytes)
	}
	if t.opt.AddBOS && t.opt.BOS != "" {
		out = strings.TrimPrefix(out, t.opt.BOS)
	}
	return out, nil
}

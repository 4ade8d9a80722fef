package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/realmrt/realm/chat"
)

// Message is one chat message of a request, its content flattened to text.
type Message = chat.Message

// chatPrompt renders msgs as the prompt of a chat completion. A model
// that ships tokenizer.chat_template (tmplText) gets it rendered with the
// Jinja engine of package chat, as llama.cpp's server does; a model
// without one gets the plain fallback format. bos and eos are the texts
// of the vocabulary's BOS/EOS tokens ("" when none) and addBOS says the
// tokenizer adds BOS itself (a BOS text at the start of the rendered
// prompt is then dropped).
//
// A template that does not compile, fails or exceeds a limit while
// rendering is the model's fault (500, code chat_template_error); a template that refuses
// the conversation through raise_exception is the request's (400, code
// chat_template_rejected).
func chatPrompt(ctx context.Context, tmplText, bos, eos string, addBOS bool, msgs []Message) (string, *apiError) {
	return chatPromptTools(ctx, tmplText, bos, eos, addBOS, msgs, nil)
}

// chatPromptTools is chatPrompt with the request's tools (JSON, nil:
// none) for the template to render; a template that teaches no
// tool-call format this server parses refuses them (400).
func chatPromptTools(ctx context.Context, tmplText, bos, eos string, addBOS bool, msgs []Message, tools []byte) (string, *apiError) {
	if tools != nil && toolFormat(tmplText) == "" {
		return "", badRequest("tools", "this model's chat template does not render tools (no tool-call format Realm parses: Hermes/Qwen <tool_call> or Llama 3.x JSON)")
	}
	if tmplText == "" {
		return renderFallback(msgs), nil
	}
	// Templates come from model files: render in a child process, so a
	// runaway one costs a bounded time and memory (see chat.RenderIsolated).
	prompt, err := chat.RenderIsolated(ctx, tmplText, chat.Options{BOS: bos, EOS: eos, AddBOS: addBOS},
		chat.Input{Messages: msgs, Tools: tools, AddGenerationPrompt: true})
	if err != nil {
		var re *chat.RaiseError
		switch {
		case errors.As(err, &re):
			e := badRequest("messages", "%v", err)
			e.code = "chat_template_rejected"
			return "", e
		case ctx.Err() != nil:
			return "", &apiError{status: statusClientGone, typ: "invalid_request_error", message: "the client went away", kind: "cancelled"}
		}
		return "", templateError("the model's chat template (tokenizer.chat_template) failed: %v", err)
	}
	return prompt, nil
}

func templateError(format string, args ...any) *apiError {
	return &apiError{status: http.StatusInternalServerError, typ: "server_error", code: "chat_template_error",
		message: fmt.Sprintf(format, args...), kind: "chat_template"}
}

// renderFallback is the plain format for models without a template:
// an optional system text, then "User: ...\nAssistant: ...\n" turns,
// ending with "Assistant:".
func renderFallback(msgs []Message) string {
	var b strings.Builder
	for _, m := range msgs {
		switch m.Role {
		case "system", "developer":
			b.WriteString(m.Content + "\n\n")
		case "assistant":
			b.WriteString("Assistant: " + m.Content + "\n")
		default:
			b.WriteString("User: " + m.Content + "\n")
		}
	}
	b.WriteString("Assistant:")
	return b.String()
}

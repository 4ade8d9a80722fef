package server

import (
	"strings"
)

// Message is one chat message of a request, its content flattened to text.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
	Name    string `json:"name,omitempty"`
}

// Template formats a conversation as the prompt text a model was trained
// on. Templates are matched on the text of the model's
// tokenizer.chat_template (no Jinja engine: see RATIONALE); the
// beginning-of-sequence token is never part of the rendered text, the
// tokenizer adds it when the vocabulary asks for one.
type Template struct {
	// Name identifies the format ("chatml", "llama3", "llama2",
	// "mistral", "gemma", "phi3", "zephyr", "fallback").
	Name   string
	render func(msgs []Message, eos string) string
	eos    string
}

// DetectTemplate picks the chat format for a model from its
// tokenizer.chat_template text ("" when the model has none) and the text
// of its end-of-sequence token (used by the formats that close turns
// with it). Unrecognised or missing templates get the fallback format
// ("User: ...\nAssistant:").
func DetectTemplate(chatTemplate, eos string) Template {
	t := chatTemplate
	has := func(s string) bool { return strings.Contains(t, s) }
	if eos == "" {
		eos = "</s>"
	}
	switch {
	case t == "":
	case has("<|im_start|>"):
		return Template{Name: "chatml", render: renderChatML, eos: eos}
	case has("<|start_header_id|>"):
		return Template{Name: "llama3", render: renderLlama3, eos: eos}
	case has("<start_of_turn>"):
		return Template{Name: "gemma", render: renderGemma, eos: eos}
	case has("<|end|>") && has("<|assistant|>"):
		return Template{Name: "phi3", render: renderPhi3, eos: eos}
	case has("<|user|>") && has("<|assistant|>"):
		return Template{Name: "zephyr", render: renderZephyr, eos: eos}
	case has("[INST]") && has("<<SYS>>"):
		return Template{Name: "llama2", render: renderLlama2, eos: eos}
	case has("[INST]"):
		return Template{Name: "mistral", render: renderMistral, eos: eos}
	}
	return Template{Name: "fallback", render: renderFallback, eos: eos}
}

// Render returns the prompt for msgs, ending where the assistant's reply
// begins.
func (t Template) Render(msgs []Message) string {
	if t.render == nil {
		return renderFallback(msgs, t.eos)
	}
	return t.render(msgs, t.eos)
}

// ChatML: <|im_start|>role\ncontent<|im_end|>\n ... <|im_start|>assistant\n
func renderChatML(msgs []Message, _ string) string {
	var b strings.Builder
	for _, m := range msgs {
		b.WriteString("<|im_start|>" + m.Role + "\n" + m.Content + "<|im_end|>\n")
	}
	b.WriteString("<|im_start|>assistant\n")
	return b.String()
}

// Llama 3: <|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>
func renderLlama3(msgs []Message, _ string) string {
	var b strings.Builder
	for _, m := range msgs {
		b.WriteString("<|start_header_id|>" + m.Role + "<|end_header_id|>\n\n" + strings.TrimSpace(m.Content) + "<|eot_id|>")
	}
	b.WriteString("<|start_header_id|>assistant<|end_header_id|>\n\n")
	return b.String()
}

// mergeSystem folds system messages into the next user message (for the
// formats without a system role) and maps roles other than assistant to
// user.
func mergeSystem(msgs []Message, sep string) []Message {
	var out []Message
	var sys []string
	for _, m := range msgs {
		switch m.Role {
		case "system", "developer":
			sys = append(sys, m.Content)
			continue
		case "assistant":
		default:
			m.Role = "user"
		}
		if m.Role == "user" && len(sys) > 0 {
			m.Content = strings.Join(sys, "\n") + sep + m.Content
			sys = nil
		}
		out = append(out, m)
	}
	if len(sys) > 0 {
		out = append(out, Message{Role: "user", Content: strings.Join(sys, "\n")})
	}
	return out
}

// Gemma: <start_of_turn>user\n...<end_of_turn>\n<start_of_turn>model\n
func renderGemma(msgs []Message, _ string) string {
	var b strings.Builder
	for _, m := range mergeSystem(msgs, "\n\n") {
		role := m.Role
		if role == "assistant" {
			role = "model"
		}
		b.WriteString("<start_of_turn>" + role + "\n" + strings.TrimSpace(m.Content) + "<end_of_turn>\n")
	}
	b.WriteString("<start_of_turn>model\n")
	return b.String()
}

// Phi-3: <|role|>\ncontent<|end|>\n ... <|assistant|>\n
func renderPhi3(msgs []Message, _ string) string {
	var b strings.Builder
	for _, m := range msgs {
		b.WriteString("<|" + m.Role + "|>\n" + m.Content + "<|end|>\n")
	}
	b.WriteString("<|assistant|>\n")
	return b.String()
}

// Zephyr: <|role|>\ncontent</s>\n ... <|assistant|>\n
func renderZephyr(msgs []Message, eos string) string {
	var b strings.Builder
	for _, m := range msgs {
		b.WriteString("<|" + m.Role + "|>\n" + m.Content + eos + "\n")
	}
	b.WriteString("<|assistant|>\n")
	return b.String()
}

// Llama 2: [INST] <<SYS>>\nsys\n<</SYS>>\n\nuser [/INST] reply </s><s>[INST] ...
func renderLlama2(msgs []Message, eos string) string {
	var b strings.Builder
	var sys []string
	first := true
	for _, m := range msgs {
		switch m.Role {
		case "system", "developer":
			sys = append(sys, m.Content)
		case "assistant":
			b.WriteString(" " + strings.TrimSpace(m.Content) + " " + eos)
		default:
			if !first {
				b.WriteString("<s>")
			}
			first = false
			b.WriteString("[INST] ")
			if len(sys) > 0 {
				b.WriteString("<<SYS>>\n" + strings.Join(sys, "\n") + "\n<</SYS>>\n\n")
				sys = nil
			}
			b.WriteString(strings.TrimSpace(m.Content) + " [/INST]")
		}
	}
	return b.String()
}

// Mistral: [INST] user [/INST] reply</s>[INST] user [/INST]
func renderMistral(msgs []Message, eos string) string {
	var b strings.Builder
	for _, m := range mergeSystem(msgs, "\n\n") {
		if m.Role == "assistant" {
			b.WriteString(" " + strings.TrimSpace(m.Content) + eos)
			continue
		}
		b.WriteString("[INST] " + strings.TrimSpace(m.Content) + " [/INST]")
	}
	return b.String()
}

// renderFallback is the plain format for models without a template:
// an optional system text, then "User: ...\nAssistant: ...\n" turns,
// ending with "Assistant:".
func renderFallback(msgs []Message, _ string) string {
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

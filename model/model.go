// Package model holds Model, a model loaded in a backend: what the
// loader's model cache hands out and what the WASM host (core) and the
// server use. It is a leaf package so that core, which must not depend on
// the loader (plugins, processes, gRPC), and the loader share one type.
package model

import (
	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/gguf"
	"github.com/realmrt/realm/tokenizer"
)

// Model is a model loaded in a backend, shared by every holder; its
// fields are read-only. A cache that hands it out counts references to
// it: the holder gives back the same pointer it got.
type Model struct {
	// Name is the name it was acquired by.
	Name string
	// Path is the real path of the GGUF file ("" when it came from
	// elsewhere).
	Path string
	// Backend serves the model; Info.ID is its handle there.
	Backend backends.Backend
	// BackendName names the backend (as in plugins.hcl) that loaded the
	// model. It may since have fallen back to another plugin: Serving
	// names the one serving it now.
	BackendName string
	// Info is what the backend reported when it loaded the model.
	Info backends.ModelInfo
	// Tokenizer is the host-side tokenizer built from the GGUF
	// vocabulary; nil when the file has none.
	Tokenizer *tokenizer.Tokenizer
	// Meta is the GGUF header (metadata and tensor infos; no data); may
	// be nil.
	Meta *gguf.File
	// TensorShapes gives each weight's shape (fastest-varying first) by
	// name, built once when the model loads; nil falls back to
	// Info.TensorShapes.
	TensorShapes map[string][]int
	// SizeBytes is what the model counts against the loader's memory
	// budget: the file size plus the backend's extra bytes.
	SizeBytes int64
}

// Activer is a backend that names the plugin serving it now (a
// supervisor that may have fallen back to another plugin, or back); ""
// while none is.
type Activer interface{ Active() string }

// Serving names the backend serving the model now: the live plugin of a
// Backend that can say (an Activer), else BackendName (also during an
// outage, when no plugin serves).
func (m *Model) Serving() string { return ServingName(m.Backend, m.BackendName) }

// ServingName names the backend b serving now: its live plugin when b is
// an Activer with one, else name (the backend it was configured or
// started as). It is the one rule behind every "which backend" label.
func ServingName(b backends.Backend, name string) string {
	if a, ok := b.(Activer); ok {
		if n := a.Active(); n != "" {
			return n
		}
	}
	return name
}

// Shape returns the shape of the weight called name.
func (m *Model) Shape(name string) ([]int, bool) {
	if m.TensorShapes != nil {
		s, ok := m.TensorShapes[name]
		return s, ok
	}
	s, ok := m.Info.TensorShapes[name]
	return s, ok
}

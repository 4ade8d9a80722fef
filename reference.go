// Package realm is the root of the Realm module. It holds no API: its one
// variable carries the llama.cpp reference data that `realm conformance`
// compares backends with, so that an installed binary needs nothing
// beside it. Tests read the same files from disk through internal/refdata.
package realm

import "embed"

// ReferenceData holds testdata/reference/models, testdata/reference/outputs
// (what llama.cpp computed on those models; see testdata/README.md) and the
// bundled models/stories260K.gguf, which is the F32 reference model and is
// kept once, where `make run` finds it. Read it through internal/refdata.
//
//go:embed testdata/reference/models testdata/reference/outputs models/stories260K.gguf
var ReferenceData embed.FS

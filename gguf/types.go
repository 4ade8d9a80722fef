package gguf

import (
	"fmt"
)

// Type is a ggml tensor element type as stored in a GGUF tensor info.
type Type uint32

// Tensor types with their GGUF ids. Ids not listed here (removed Q4_2,
// Q4_3, the IQ* family, ...) are reported as unsupported by the reader.
const (
	TypeF32  Type = 0
	TypeF16  Type = 1
	TypeQ4_0 Type = 2
	TypeQ4_1 Type = 3
	TypeQ5_0 Type = 6
	TypeQ5_1 Type = 7
	TypeQ8_0 Type = 8
	TypeQ2_K Type = 10
	TypeQ3_K Type = 11
	TypeQ4_K Type = 12
	TypeQ5_K Type = 13
	TypeQ6_K Type = 14
	TypeQ8_K Type = 15
	// TypeIQ4_NL is 32-element blocks of 4-bit indices into a fixed
	// non-linear table (IQ4NLValues) with one f16 scale.
	TypeIQ4_NL Type = 20
	// TypeIQ4_XS is 256-element super-blocks of IQ4_NL indices with a
	// 6-bit scale per 32 elements against one f16 scale.
	TypeIQ4_XS Type = 23
	TypeBF16   Type = 30
)

// typeTraits describes the block layout of one tensor type.
type typeTraits struct {
	name       string
	blockElems int
	blockBytes int
}

// traits returns the block layout of t and whether t is known.
func (t Type) traits() (typeTraits, bool) {
	switch t {
	case TypeF32:
		return typeTraits{"F32", 1, 4}, true
	case TypeF16:
		return typeTraits{"F16", 1, 2}, true
	case TypeBF16:
		return typeTraits{"BF16", 1, 2}, true
	case TypeQ4_0:
		return typeTraits{"Q4_0", 32, 18}, true
	case TypeQ4_1:
		return typeTraits{"Q4_1", 32, 20}, true
	case TypeQ5_0:
		return typeTraits{"Q5_0", 32, 22}, true
	case TypeQ5_1:
		return typeTraits{"Q5_1", 32, 24}, true
	case TypeQ8_0:
		return typeTraits{"Q8_0", 32, 34}, true
	case TypeQ2_K:
		return typeTraits{"Q2_K", 256, 84}, true
	case TypeQ3_K:
		return typeTraits{"Q3_K", 256, 110}, true
	case TypeQ4_K:
		return typeTraits{"Q4_K", 256, 144}, true
	case TypeQ5_K:
		return typeTraits{"Q5_K", 256, 176}, true
	case TypeQ6_K:
		return typeTraits{"Q6_K", 256, 210}, true
	case TypeQ8_K:
		return typeTraits{"Q8_K", 256, 292}, true
	case TypeIQ4_NL:
		return typeTraits{"IQ4_NL", 32, 18}, true
	case TypeIQ4_XS:
		return typeTraits{"IQ4_XS", 256, 136}, true
	}
	return typeTraits{}, false
}

// Known reports whether t is a tensor type this package understands.
func (t Type) Known() bool {
	_, ok := t.traits()
	return ok
}

// String returns the ggml name of t ("Q4_K"), or "type(N)" when unknown.
func (t Type) String() string {
	if tr, ok := t.traits(); ok {
		return tr.name
	}
	return fmt.Sprintf("type(%d)", uint32(t))
}

// BlockElems returns the number of elements in one block of t (1 for
// plain floating point types), or 0 when t is unknown.
func (t Type) BlockElems() int {
	tr, _ := t.traits()
	return tr.blockElems
}

// BlockBytes returns the size in bytes of one block of t, or 0 when t
// is unknown.
func (t Type) BlockBytes() int {
	tr, _ := t.traits()
	return tr.blockBytes
}

// RowBytes returns the number of bytes of a row of n elements of type t.
// It fails when t is unknown or n is not a multiple of the block size.
func (t Type) RowBytes(n int64) (int64, error) {
	tr, ok := t.traits()
	if !ok {
		return 0, fmt.Errorf("gguf: unknown tensor type %d", uint32(t))
	}
	if n < 0 || n%int64(tr.blockElems) != 0 {
		return 0, fmt.Errorf("gguf: %s row of %d elements is not a multiple of the block size %d", tr.name, n, tr.blockElems)
	}
	return n / int64(tr.blockElems) * int64(tr.blockBytes), nil
}

// ParseType returns the type named s (case-insensitive, "q4_k" or "Q4_K").
func ParseType(s string) (Type, error) {
	for _, t := range AllTypes() {
		if equalFold(t.String(), s) {
			return t, nil
		}
	}
	return 0, fmt.Errorf("gguf: unknown tensor type name %q", s)
}

// AllTypes lists every known type in id order.
func AllTypes() []Type {
	return []Type{TypeF32, TypeF16, TypeQ4_0, TypeQ4_1, TypeQ5_0, TypeQ5_1, TypeQ8_0,
		TypeQ2_K, TypeQ3_K, TypeQ4_K, TypeQ5_K, TypeQ6_K, TypeQ8_K, TypeIQ4_NL, TypeIQ4_XS, TypeBF16}
}

// WeightTypes lists the types a weight tensor can have, all of which
// Dequantize decodes: every known type except Q8_K, which only quantizes
// activations.
func WeightTypes() []Type {
	var out []Type
	for _, t := range AllTypes() {
		if t != TypeQ8_K {
			out = append(out, t)
		}
	}
	return out
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'a' <= x && x <= 'z' {
			x -= 'a' - 'A'
		}
		if 'a' <= y && y <= 'z' {
			y -= 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

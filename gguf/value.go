package gguf

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ValueType is the type tag of a GGUF metadata value.
type ValueType uint32

// Metadata value types with their GGUF ids.
const (
	ValUint8   ValueType = 0
	ValInt8    ValueType = 1
	ValUint16  ValueType = 2
	ValInt16   ValueType = 3
	ValUint32  ValueType = 4
	ValInt32   ValueType = 5
	ValFloat32 ValueType = 6
	ValBool    ValueType = 7
	ValString  ValueType = 8
	ValArray   ValueType = 9
	ValUint64  ValueType = 10
	ValInt64   ValueType = 11
	ValFloat64 ValueType = 12
)

// String returns the lower-case name of t ("uint32"), or "valuetype(N)".
func (t ValueType) String() string {
	switch t {
	case ValUint8:
		return "uint8"
	case ValInt8:
		return "int8"
	case ValUint16:
		return "uint16"
	case ValInt16:
		return "int16"
	case ValUint32:
		return "uint32"
	case ValInt32:
		return "int32"
	case ValFloat32:
		return "float32"
	case ValBool:
		return "bool"
	case ValString:
		return "string"
	case ValArray:
		return "array"
	case ValUint64:
		return "uint64"
	case ValInt64:
		return "int64"
	case ValFloat64:
		return "float64"
	}
	return fmt.Sprintf("valuetype(%d)", uint32(t))
}

// Known reports whether t is a value type defined by GGUF.
func (t ValueType) Known() bool { return t <= ValFloat64 }

// scalarSize returns the encoded size of a fixed-size scalar type, or 0
// for strings, arrays and unknown types.
func (t ValueType) scalarSize() int {
	switch t {
	case ValUint8, ValInt8, ValBool:
		return 1
	case ValUint16, ValInt16:
		return 2
	case ValUint32, ValInt32, ValFloat32:
		return 4
	case ValUint64, ValInt64, ValFloat64:
		return 8
	}
	return 0
}

func (t ValueType) isUnsigned() bool {
	return t == ValUint8 || t == ValUint16 || t == ValUint32 || t == ValUint64
}

func (t ValueType) isSigned() bool {
	return t == ValInt8 || t == ValInt16 || t == ValInt32 || t == ValInt64
}

// Value is one GGUF metadata value: a type tag and a scalar, string or
// array payload. The zero Value has type uint8 and value 0. Values are
// immutable; build them with the New* constructors.
type Value struct {
	typ  ValueType
	bits uint64 // scalar payload, raw little-endian bits zero-extended
	str  string
	arr  *array
}

// array is the payload of an array value. Fixed-size scalar elements are
// kept packed exactly as in the file (raw), strings in strs and nested
// arrays in vals.
type array struct {
	elem ValueType
	n    int
	raw  []byte
	strs []string
	vals []Value
}

// Type returns the type tag of v.
func (v Value) Type() ValueType { return v.typ }

// NewUint8 returns a uint8 value.
func NewUint8(x uint8) Value { return Value{typ: ValUint8, bits: uint64(x)} }

// NewInt8 returns an int8 value.
func NewInt8(x int8) Value { return Value{typ: ValInt8, bits: uint64(uint8(x))} }

// NewUint16 returns a uint16 value.
func NewUint16(x uint16) Value { return Value{typ: ValUint16, bits: uint64(x)} }

// NewInt16 returns an int16 value.
func NewInt16(x int16) Value { return Value{typ: ValInt16, bits: uint64(uint16(x))} }

// NewUint32 returns a uint32 value.
func NewUint32(x uint32) Value { return Value{typ: ValUint32, bits: uint64(x)} }

// NewInt32 returns an int32 value.
func NewInt32(x int32) Value { return Value{typ: ValInt32, bits: uint64(uint32(x))} }

// NewUint64 returns a uint64 value.
func NewUint64(x uint64) Value { return Value{typ: ValUint64, bits: x} }

// NewInt64 returns an int64 value.
func NewInt64(x int64) Value { return Value{typ: ValInt64, bits: uint64(x)} }

// NewFloat32 returns a float32 value.
func NewFloat32(x float32) Value {
	return Value{typ: ValFloat32, bits: uint64(math.Float32bits(x))}
}

// NewFloat64 returns a float64 value.
func NewFloat64(x float64) Value { return Value{typ: ValFloat64, bits: math.Float64bits(x)} }

// NewBool returns a bool value.
func NewBool(x bool) Value {
	if x {
		return Value{typ: ValBool, bits: 1}
	}
	return Value{typ: ValBool}
}

// NewString returns a string value.
func NewString(s string) Value { return Value{typ: ValString, str: s} }

// NewStrings returns an array of strings.
func NewStrings(s []string) Value {
	c := make([]string, len(s))
	copy(c, s)
	return Value{typ: ValArray, arr: &array{elem: ValString, n: len(c), strs: c}}
}

// NewFloat32s returns an array of float32.
func NewFloat32s(x []float32) Value {
	raw := make([]byte, 4*len(x))
	for i, f := range x {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(f))
	}
	return Value{typ: ValArray, arr: &array{elem: ValFloat32, n: len(x), raw: raw}}
}

// NewInt32s returns an array of int32.
func NewInt32s(x []int32) Value {
	raw := make([]byte, 4*len(x))
	for i, f := range x {
		binary.LittleEndian.PutUint32(raw[4*i:], uint32(f))
	}
	return Value{typ: ValArray, arr: &array{elem: ValInt32, n: len(x), raw: raw}}
}

// NewArray returns an array whose elements all have type elem (which may
// itself be ValArray for nested arrays). It fails when an element has a
// different type or elem is unknown.
func NewArray(elem ValueType, vals ...Value) (Value, error) {
	if !elem.Known() {
		return Value{}, fmt.Errorf("gguf: array of unknown value type %d", uint32(elem))
	}
	a := &array{elem: elem, n: len(vals)}
	sz := elem.scalarSize()
	switch {
	case elem == ValString:
		a.strs = make([]string, len(vals))
	case elem == ValArray:
		a.vals = make([]Value, len(vals))
	default:
		a.raw = make([]byte, sz*len(vals))
	}
	for i, v := range vals {
		if v.typ != elem {
			return Value{}, fmt.Errorf("gguf: array element %d has type %s, want %s", i, v.typ, elem)
		}
		switch {
		case elem == ValString:
			a.strs[i] = v.str
		case elem == ValArray:
			a.vals[i] = v
		default:
			putScalar(a.raw[i*sz:], sz, v.bits)
		}
	}
	return Value{typ: ValArray, arr: a}, nil
}

func putScalar(b []byte, sz int, bits uint64) {
	switch sz {
	case 1:
		b[0] = byte(bits)
	case 2:
		binary.LittleEndian.PutUint16(b, uint16(bits))
	case 4:
		binary.LittleEndian.PutUint32(b, uint32(bits))
	case 8:
		binary.LittleEndian.PutUint64(b, bits)
	}
}

func getScalar(b []byte, sz int) uint64 {
	switch sz {
	case 1:
		return uint64(b[0])
	case 2:
		return uint64(binary.LittleEndian.Uint16(b))
	case 4:
		return uint64(binary.LittleEndian.Uint32(b))
	case 8:
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}

// signExtend interprets bits as a signed integer of type t.
func signExtend(t ValueType, bits uint64) int64 {
	switch t {
	case ValInt8:
		return int64(int8(bits))
	case ValInt16:
		return int64(int16(bits))
	case ValInt32:
		return int64(int32(bits))
	}
	return int64(bits)
}

// AsUint returns v as an unsigned integer. It accepts every integer type
// whose value is not negative.
func (v Value) AsUint() (uint64, bool) {
	switch {
	case v.typ.isUnsigned():
		return v.bits, true
	case v.typ.isSigned():
		if x := signExtend(v.typ, v.bits); x >= 0 {
			return uint64(x), true
		}
	}
	return 0, false
}

// AsInt returns v as a signed integer. It accepts every integer type
// whose value fits in an int64.
func (v Value) AsInt() (int64, bool) {
	switch {
	case v.typ.isSigned():
		return signExtend(v.typ, v.bits), true
	case v.typ.isUnsigned():
		if v.bits <= math.MaxInt64 {
			return int64(v.bits), true
		}
	}
	return 0, false
}

// AsFloat returns v as a float64. It accepts float32, float64 and
// integer values.
func (v Value) AsFloat() (float64, bool) {
	switch v.typ {
	case ValFloat32:
		return float64(math.Float32frombits(uint32(v.bits))), true
	case ValFloat64:
		return math.Float64frombits(v.bits), true
	}
	if v.typ.isSigned() {
		return float64(signExtend(v.typ, v.bits)), true
	}
	if v.typ.isUnsigned() {
		return float64(v.bits), true
	}
	return 0, false
}

// AsBool returns the value of a bool.
func (v Value) AsBool() (bool, bool) {
	if v.typ != ValBool {
		return false, false
	}
	return v.bits != 0, true
}

// AsString returns the value of a string.
func (v Value) AsString() (string, bool) {
	if v.typ != ValString {
		return "", false
	}
	return v.str, true
}

// ArrayType returns the element type of an array (false when v is not an
// array).
func (v Value) ArrayType() (ValueType, bool) {
	if v.typ != ValArray || v.arr == nil {
		return 0, false
	}
	return v.arr.elem, true
}

// Len returns the number of elements of an array, or 0 when v is not an
// array.
func (v Value) Len() int {
	if v.typ != ValArray || v.arr == nil {
		return 0
	}
	return v.arr.n
}

// Index returns element i of an array. It returns the zero Value and
// false when v is not an array or i is out of range.
func (v Value) Index(i int) (Value, bool) {
	if v.typ != ValArray || v.arr == nil || i < 0 || i >= v.arr.n {
		return Value{}, false
	}
	a := v.arr
	switch a.elem {
	case ValString:
		return Value{typ: ValString, str: a.strs[i]}, true
	case ValArray:
		return a.vals[i], true
	}
	sz := a.elem.scalarSize()
	return Value{typ: a.elem, bits: getScalar(a.raw[i*sz:], sz)}, true
}

// AsStrings returns a copy of the elements of an array of strings.
func (v Value) AsStrings() ([]string, bool) {
	if v.typ != ValArray || v.arr == nil || v.arr.elem != ValString {
		return nil, false
	}
	out := make([]string, len(v.arr.strs))
	copy(out, v.arr.strs)
	return out, true
}

// AsFloat32s returns the elements of an array of float32 or float64 as
// float32.
func (v Value) AsFloat32s() ([]float32, bool) {
	if v.typ != ValArray || v.arr == nil {
		return nil, false
	}
	a := v.arr
	out := make([]float32, a.n)
	switch a.elem {
	case ValFloat32:
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(a.raw[4*i:]))
		}
	case ValFloat64:
		for i := range out {
			out[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(a.raw[8*i:])))
		}
	default:
		return nil, false
	}
	return out, true
}

// AsInt32s returns the elements of an array of any integer type as int32.
// It fails when an element does not fit in an int32.
func (v Value) AsInt32s() ([]int32, bool) {
	if v.typ != ValArray || v.arr == nil {
		return nil, false
	}
	a := v.arr
	if !a.elem.isSigned() && !a.elem.isUnsigned() {
		return nil, false
	}
	sz := a.elem.scalarSize()
	out := make([]int32, a.n)
	for i := range out {
		bits := getScalar(a.raw[i*sz:], sz)
		var x int64
		if a.elem.isSigned() {
			x = signExtend(a.elem, bits)
		} else {
			if bits > math.MaxInt32 {
				return nil, false
			}
			x = int64(bits)
		}
		if x < math.MinInt32 || x > math.MaxInt32 {
			return nil, false
		}
		out[i] = int32(x)
	}
	return out, true
}

// Equal reports whether v and w have the same type and payload (floats
// compared bit for bit).
func (v Value) Equal(w Value) bool {
	if v.typ != w.typ {
		return false
	}
	switch v.typ {
	case ValString:
		return v.str == w.str
	case ValArray:
		a, b := v.arr, w.arr
		if a == nil || b == nil {
			return a == b
		}
		if a.elem != b.elem || a.n != b.n {
			return false
		}
		switch a.elem {
		case ValString:
			for i := range a.strs {
				if a.strs[i] != b.strs[i] {
					return false
				}
			}
			return true
		case ValArray:
			for i := range a.vals {
				if !a.vals[i].Equal(b.vals[i]) {
					return false
				}
			}
			return true
		}
		return string(a.raw) == string(b.raw)
	}
	return v.bits == w.bits
}

// String formats v for humans. Arrays longer than 8 elements are
// summarized with their type, length and first elements.
func (v Value) String() string { return v.format(8) }

// Format formats v like String, but shows at most maxItems elements of
// each array (all of them when maxItems < 0).
func (v Value) Format(maxItems int) string { return v.format(maxItems) }

func (v Value) format(maxItems int) string {
	switch v.typ {
	case ValString:
		return strconv.Quote(v.str)
	case ValBool:
		return strconv.FormatBool(v.bits != 0)
	case ValFloat32:
		return strconv.FormatFloat(float64(math.Float32frombits(uint32(v.bits))), 'g', -1, 32)
	case ValFloat64:
		return strconv.FormatFloat(math.Float64frombits(v.bits), 'g', -1, 64)
	case ValArray:
		if v.arr == nil {
			return "[]"
		}
		var sb strings.Builder
		n := v.arr.n
		show := n
		if maxItems >= 0 && show > maxItems {
			show = maxItems
			fmt.Fprintf(&sb, "[%s × %d] ", v.arr.elem, n)
		}
		sb.WriteByte('[')
		for i := 0; i < show; i++ {
			if i > 0 {
				sb.WriteString(", ")
			}
			e, _ := v.Index(i)
			sb.WriteString(e.format(maxItems))
		}
		if show < n {
			sb.WriteString(", ...")
		}
		sb.WriteByte(']')
		return sb.String()
	}
	if v.typ.isSigned() {
		return strconv.FormatInt(signExtend(v.typ, v.bits), 10)
	}
	return strconv.FormatUint(v.bits, 10)
}

// KV is one metadata key/value pair.
type KV struct {
	Key   string
	Value Value
}

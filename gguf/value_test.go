package gguf

import (
	"math"
	"strings"
	"testing"
)

func TestValueAccessors(t *testing.T) {
	for _, tc := range []struct {
		v     Value
		typ   ValueType
		str   string
		u     uint64
		uok   bool
		i     int64
		iok   bool
		fok   bool
		float float64
	}{
		{NewUint8(255), ValUint8, "255", 255, true, 255, true, true, 255},
		{NewInt8(-1), ValInt8, "-1", 0, false, -1, true, true, -1},
		{NewUint16(65535), ValUint16, "65535", 65535, true, 65535, true, true, 65535},
		{NewInt16(-32768), ValInt16, "-32768", 0, false, -32768, true, true, -32768},
		{NewUint32(math.MaxUint32), ValUint32, "4294967295", math.MaxUint32, true, math.MaxUint32, true, true, math.MaxUint32},
		{NewInt32(7), ValInt32, "7", 7, true, 7, true, true, 7},
		{NewUint64(math.MaxUint64), ValUint64, "18446744073709551615", math.MaxUint64, true, 0, false, true, math.MaxUint64},
		{NewInt64(-5), ValInt64, "-5", 0, false, -5, true, true, -5},
		{NewFloat32(0.5), ValFloat32, "0.5", 0, false, 0, false, true, 0.5},
		{NewFloat64(-0.25), ValFloat64, "-0.25", 0, false, 0, false, true, -0.25},
		{NewBool(true), ValBool, "true", 0, false, 0, false, false, 0},
		{NewString("a\"b"), ValString, `"a\"b"`, 0, false, 0, false, false, 0},
	} {
		if tc.v.Type() != tc.typ || tc.v.String() != tc.str {
			t.Errorf("%s: type %s string %q", tc.typ, tc.v.Type(), tc.v.String())
		}
		if u, ok := tc.v.AsUint(); ok != tc.uok || u != tc.u {
			t.Errorf("%s: AsUint = %d, %v", tc.typ, u, ok)
		}
		if i, ok := tc.v.AsInt(); ok != tc.iok || i != tc.i {
			t.Errorf("%s: AsInt = %d, %v", tc.typ, i, ok)
		}
		if f, ok := tc.v.AsFloat(); ok != tc.fok || f != tc.float {
			t.Errorf("%s: AsFloat = %g, %v", tc.typ, f, ok)
		}
		if _, ok := tc.v.Index(0); ok || tc.v.Len() != 0 {
			t.Errorf("%s: scalar indexable", tc.typ)
		}
		if !tc.v.Equal(tc.v) {
			t.Errorf("%s: not equal to itself", tc.typ)
		}
	}
	if NewInt32(1).Equal(NewUint32(1)) {
		t.Error("values of different types are equal")
	}
}

func TestValueArrays(t *testing.T) {
	if _, err := NewArray(ValInt32, NewInt32(1), NewUint32(2)); err == nil || !strings.Contains(err.Error(), "element 1 has type uint32") {
		t.Errorf("mixed array: %v", err)
	}
	if _, err := NewArray(ValueType(42)); err == nil {
		t.Error("array of unknown type accepted")
	}
	a, err := NewArray(ValInt8, NewInt8(-3), NewInt8(4))
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := a.AsInt32s(); !ok || len(got) != 2 || got[0] != -3 {
		t.Errorf("AsInt32s = %v %v", got, ok)
	}
	if _, ok := a.AsFloat32s(); ok {
		t.Error("AsFloat32s of int8s succeeded")
	}
	if et, ok := a.ArrayType(); !ok || et != ValInt8 {
		t.Errorf("ArrayType = %s", et)
	}
	f64, _ := NewArray(ValFloat64, NewFloat64(1.5))
	if got, ok := f64.AsFloat32s(); !ok || got[0] != 1.5 {
		t.Errorf("AsFloat32s of float64s = %v", got)
	}
	big := NewInt32s(make([]int32, 20))
	if s := big.String(); !strings.Contains(s, "[int32 × 20]") || !strings.HasSuffix(s, ", ...]") {
		t.Errorf("summary %q", s)
	}
	if s := big.Format(-1); strings.Contains(s, "...") || strings.Count(s, "0") != 20 {
		t.Errorf("full format %q", s)
	}
	strs := NewStrings([]string{"x", "y"})
	if got, ok := strs.AsStrings(); !ok || got[1] != "y" {
		t.Errorf("AsStrings = %v", got)
	}
	if e, ok := strs.Index(1); !ok || e.Type() != ValString {
		t.Errorf("Index = %v", e)
	}
	if strs.Equal(NewStrings([]string{"x", "z"})) || !strs.Equal(NewStrings([]string{"x", "y"})) {
		t.Error("string array equality")
	}
}

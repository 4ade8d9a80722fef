package gguf

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// TestRewriteReferenceIdentical reads each reference GGUF, writes it back
// with Write and checks the bytes are identical.
func TestRewriteReferenceIdentical(t *testing.T) {
	files := append(refVocabs(t), refModel(t, "stories260K.gguf"), refModel(t, "stories260K-Q8_0.gguf"),
		refModel(t, "stories260K-Q4_0.gguf"), refModel(t, "llama-2-tiny-random.gguf"))
	for _, p := range files {
		t.Run(filepath.Base(p), func(t *testing.T) {
			orig, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			m, err := Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			var buf bytes.Buffer
			if err := Write(&buf, m.File, CopyData(m)); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), orig) {
				n := 0
				for n < len(orig) && n < buf.Len() && orig[n] == buf.Bytes()[n] {
					n++
				}
				t.Fatalf("rewrite differs: %d vs %d bytes, first difference at %d", buf.Len(), len(orig), n)
			}
		})
	}
}

// sampleFile builds a File with every value type, nested arrays and a few
// tensors of different types.
func sampleFile(t testing.TB) *File {
	nested, err := NewArray(ValArray, NewInt32s([]int32{1, -2}), NewInt32s(nil))
	if err != nil {
		t.Fatal(err)
	}
	bools, err := NewArray(ValBool, NewBool(true), NewBool(false))
	if err != nil {
		t.Fatal(err)
	}
	u64s, err := NewArray(ValUint64, NewUint64(1), NewUint64(math.MaxUint64))
	if err != nil {
		t.Fatal(err)
	}
	return &File{
		Metadata: []KV{
			{"general.architecture", NewString("llama")},
			{"u8", NewUint8(200)}, {"i8", NewInt8(-100)}, {"u16", NewUint16(60000)}, {"i16", NewInt16(-30000)},
			{"u32", NewUint32(4000000000)}, {"i32", NewInt32(-2000000000)}, {"u64", NewUint64(math.MaxUint64)},
			{"i64", NewInt64(math.MinInt64)}, {"f32", NewFloat32(1.5)}, {"f64", NewFloat64(-2.25)},
			{"bool", NewBool(true)}, {"empty", NewString("")},
			{"strs", NewStrings([]string{"a", "", "héllo"})}, {"f32s", NewFloat32s([]float32{1, -1, 0.5})},
			{"i32s", NewInt32s([]int32{1, 2, -3})}, {"nested", nested}, {"bools", bools}, {"u64s", u64s},
		},
		Tensors: []TensorInfo{
			{Name: "a", Dims: []int64{32, 3}, Type: TypeQ8_0},
			{Name: "b", Dims: []int64{7}, Type: TypeF32},
			{Name: "c", Dims: []int64{256, 2, 1, 2}, Type: TypeQ4_K},
			{Name: "d", Dims: []int64{5, 3}, Type: TypeF16},
		},
	}
}

// patternData writes deterministic bytes for every tensor.
func patternData(i int, ti *TensorInfo, w io.Writer) error {
	b := make([]byte, ti.Bytes())
	for k := range b {
		b[k] = byte(k*7 + i)
	}
	_, err := w.Write(b)
	return err
}

func TestWriteReadRoundTrip(t *testing.T) {
	f := sampleFile(t)
	var buf bytes.Buffer
	if err := Write(&buf, f, patternData); err != nil {
		t.Fatal(err)
	}
	g, err := Read(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	if g.Version != 3 || g.Alignment != 32 || int64(buf.Len())%32 != 0 {
		t.Errorf("version %d alignment %d size %d", g.Version, g.Alignment, buf.Len())
	}
	if len(g.Metadata) != len(f.Metadata) {
		t.Fatalf("%d keys, want %d", len(g.Metadata), len(f.Metadata))
	}
	for i, kv := range f.Metadata {
		if g.Metadata[i].Key != kv.Key || !g.Metadata[i].Value.Equal(kv.Value) {
			t.Errorf("key %d: got %s=%s want %s=%s", i, g.Metadata[i].Key, g.Metadata[i].Value, kv.Key, kv.Value)
		}
	}
	dataOff, offs, err := Layout(f)
	if err != nil || dataOff != g.DataOffset {
		t.Errorf("Layout data offset %d (%v), read %d", dataOff, err, g.DataOffset)
	}
	for i := range f.Tensors {
		a, b := &f.Tensors[i], &g.Tensors[i]
		if a.Name != b.Name || a.Type != b.Type || fmt.Sprint(a.Dims) != fmt.Sprint(b.Dims) || b.Offset != offs[i] || b.Offset%32 != 0 {
			t.Errorf("tensor %d: got %+v want %+v at %d", i, b, a, offs[i])
		}
		var want bytes.Buffer
		patternData(i, a, &want)
		got := buf.Bytes()[g.DataOffset+b.Offset:][:b.Bytes()]
		if !bytes.Equal(got, want.Bytes()) {
			t.Errorf("tensor %s data differs", a.Name)
		}
	}
	// Getters on the typed values.
	if v, ok := g.Int("i64"); !ok || v != math.MinInt64 {
		t.Errorf("i64 = %d %v", v, ok)
	}
	if v, ok := g.Uint("u64"); !ok || v != math.MaxUint64 {
		t.Errorf("u64 = %d %v", v, ok)
	}
	if _, ok := g.Int("u64"); ok {
		t.Error("Int of MaxUint64 succeeded")
	}
	if _, ok := g.Uint("i8"); ok {
		t.Error("Uint of a negative int8 succeeded")
	}
	if v, ok := g.Int("i8"); !ok || v != -100 {
		t.Errorf("i8 = %d %v", v, ok)
	}
	if v, ok := g.Bool("bool"); !ok || !v {
		t.Errorf("bool = %v %v", v, ok)
	}
	if v, ok := g.Float("f64"); !ok || v != -2.25 {
		t.Errorf("f64 = %v %v", v, ok)
	}
	if v, ok := g.Strings("strs"); !ok || len(v) != 3 || v[2] != "héllo" {
		t.Errorf("strs = %q %v", v, ok)
	}
	if v, ok := g.Int32s("i32s"); !ok || len(v) != 3 || v[2] != -3 {
		t.Errorf("i32s = %v %v", v, ok)
	}
	if _, ok := g.Int32s("u64s"); ok {
		t.Error("Int32s of a uint64 array holding MaxUint64 succeeded")
	}
	nv, _ := g.Lookup("nested")
	if e, ok := nv.Index(0); !ok || e.Len() != 2 {
		t.Errorf("nested[0] = %s", e)
	}
	// Writing the read file back gives the same bytes.
	var again bytes.Buffer
	if err := Write(&again, g, func(i int, ti *TensorInfo, w io.Writer) error {
		_, err := w.Write(buf.Bytes()[g.DataOffset+g.Tensors[i].Offset:][:ti.Bytes()])
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Bytes(), buf.Bytes()) {
		t.Error("second write differs")
	}
}

func TestWriteAlignment(t *testing.T) {
	f := sampleFile(t)
	f.Metadata = append(f.Metadata, KV{KeyAlignment, NewUint32(64)})
	var buf bytes.Buffer
	if err := Write(&buf, f, patternData); err != nil {
		t.Fatal(err)
	}
	g, err := Read(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	if g.Alignment != 64 || g.DataOffset%64 != 0 {
		t.Fatalf("alignment %d data offset %d", g.Alignment, g.DataOffset)
	}
	for _, ti := range g.Tensors {
		if ti.Offset%64 != 0 {
			t.Errorf("%s at %d", ti.Name, ti.Offset)
		}
	}
}

func TestWriteErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(f *File)
		data func(i int, ti *TensorInfo, w io.Writer) error
		want string
	}{
		{"short data", nil, func(i int, ti *TensorInfo, w io.Writer) error {
			_, err := w.Write(make([]byte, ti.Bytes()-1))
			return err
		}, "wrote"},
		{"long data", nil, func(i int, ti *TensorInfo, w io.Writer) error {
			_, err := w.Write(make([]byte, ti.Bytes()+1))
			return err
		}, "wrote"},
		{"callback error", nil, func(i int, ti *TensorInfo, w io.Writer) error { return io.ErrClosedPipe }, "closed pipe"},
		{"dup key", func(f *File) { f.Metadata = append(f.Metadata, f.Metadata[0]) }, patternData, "duplicate metadata key"},
		{"dup tensor", func(f *File) { f.Tensors[1].Name = "a" }, patternData, "duplicate tensor name"},
		{"bad alignment", func(f *File) { f.Metadata = append(f.Metadata, KV{KeyAlignment, NewUint32(48)}) }, patternData, "power of two"},
		{"bad row", func(f *File) { f.Tensors[0].Dims[0] = 33 }, patternData, "multiple of"},
		{"unknown type", func(f *File) { f.Tensors[0].Type = 99 }, patternData, "unsupported tensor type"},
		{"bad version", func(f *File) { f.Version = 1 }, patternData, "version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := sampleFile(t)
			if tc.mod != nil {
				tc.mod(f)
			}
			err := Write(io.Discard, f, tc.data)
			if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tc.want)) {
				t.Fatalf("err = %v, want mention of %q", err, tc.want)
			}
		})
	}
}

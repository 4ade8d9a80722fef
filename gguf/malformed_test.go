package gguf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// smallFile is a valid file whose parts the malformed-file tests corrupt.
func smallFile(t testing.TB) []byte {
	t.Helper()
	f := &File{
		Metadata: []KV{
			{"general.architecture", NewString("llama")},
			{"arr", NewInt32s([]int32{1, 2, 3})},
			{"flag", NewBool(true)},
			{KeyAlignment, NewUint32(32)},
			{"dupx", NewUint8(1)},
			{"dupy", NewUint8(2)},
		},
		Tensors: []TensorInfo{
			{Name: "t0", Dims: []int64{32, 2}, Type: TypeQ8_0},
			{Name: "t1", Dims: []int64{4, 4}, Type: TypeF32},
		},
	}
	var buf bytes.Buffer
	if err := Write(&buf, f, patternData); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// at returns the offset just after the length-prefixed string s.
func at(t testing.TB, b []byte, s string) int {
	t.Helper()
	var enc []byte
	enc = binary.LittleEndian.AppendUint64(enc, uint64(len(s)))
	enc = append(enc, s...)
	i := bytes.Index(b, enc)
	if i < 0 {
		t.Fatalf("%q not found", s)
	}
	return i + len(enc)
}

func put32(b []byte, off int, v uint32) { binary.LittleEndian.PutUint32(b[off:], v) }
func put64(b []byte, off int, v uint64) { binary.LittleEndian.PutUint64(b[off:], v) }

func TestReadMalformed(t *testing.T) {
	for _, tc := range []struct {
		name    string
		corrupt func(t *testing.T, b []byte) []byte
		want    string // substring of the error
		eof     bool   // the error must wrap io.ErrUnexpectedEOF
	}{
		{"bad magic", func(t *testing.T, b []byte) []byte { b[0] = 'X'; return b }, "bad magic", false},
		{"version 1", func(t *testing.T, b []byte) []byte { put32(b, 4, 1); return b }, "version 1 is not supported", false},
		{"bad version", func(t *testing.T, b []byte) []byte { put32(b, 4, 77); return b }, "unsupported GGUF version 77", false},
		{"huge tensor count", func(t *testing.T, b []byte) []byte { put64(b, 8, 1<<40); return b }, "tensor count 1099511627776 exceeds", false},
		{"tensor count past file", func(t *testing.T, b []byte) []byte { put64(b, 8, 100000); return b }, "tensor count 100000 cannot fit", true},
		{"huge kv count", func(t *testing.T, b []byte) []byte { put64(b, 16, 1<<40); return b }, "metadata count", false},
		{"kv count past file", func(t *testing.T, b []byte) []byte { put64(b, 16, 60000); return b }, "metadata count 60000 cannot fit", true},
		{"huge string length", func(t *testing.T, b []byte) []byte {
			put64(b, at(t, b, "general.architecture")+4, 1<<40)
			return b
		}, `value of key "general.architecture": length 1099511627776 exceeds the limit`, false},
		{"string past end", func(t *testing.T, b []byte) []byte {
			put64(b, at(t, b, "general.architecture")+4, 1<<20)
			return b
		}, "runs past the end of the file", true},
		{"huge key length", func(t *testing.T, b []byte) []byte { put64(b, 24, 1<<50); return b }, "metadata key #0: length", false},
		{"huge array length", func(t *testing.T, b []byte) []byte {
			put64(b, at(t, b, "arr")+8, 1<<40)
			return b
		}, `key "arr": array length 1099511627776 exceeds the limit`, false},
		{"array past end", func(t *testing.T, b []byte) []byte {
			put64(b, at(t, b, "arr")+8, 1<<24)
			return b
		}, `key "arr": array of 16777216 int32 needs`, true},
		{"unknown value type", func(t *testing.T, b []byte) []byte { put32(b, at(t, b, "flag"), 13); return b }, `key "flag": unknown value type 13`, false},
		{"unknown array type", func(t *testing.T, b []byte) []byte { put32(b, at(t, b, "arr")+4, 99); return b }, `key "arr": array of unknown value type 99`, false},
		{"bad bool", func(t *testing.T, b []byte) []byte { b[at(t, b, "flag")+4] = 2; return b }, "bool value 2", false},
		{"duplicate key", func(t *testing.T, b []byte) []byte { b[at(t, b, "dupy")-1] = 'x'; return b }, `duplicate metadata key "dupx"`, false},
		{"alignment not power of two", func(t *testing.T, b []byte) []byte { put32(b, at(t, b, KeyAlignment)+4, 48); return b }, "general.alignment = 48 is not a power of two", false},
		{"alignment zero", func(t *testing.T, b []byte) []byte { put32(b, at(t, b, KeyAlignment)+4, 0); return b }, "general.alignment = 0", false},
		{"alignment wrong type", func(t *testing.T, b []byte) []byte { put32(b, at(t, b, KeyAlignment), uint32(ValFloat32)); return b }, "general.alignment has type float32", false},
		{"n_dims 5", func(t *testing.T, b []byte) []byte { put32(b, at(t, b, "t0"), 5); return b }, `tensor "t0": n_dims 5 exceeds the maximum of 4`, false},
		{"zero dim", func(t *testing.T, b []byte) []byte { put64(b, at(t, b, "t0")+4+8, 0); return b }, `tensor "t0": dimension 1 is 0`, false},
		{"negative dim", func(t *testing.T, b []byte) []byte { put64(b, at(t, b, "t0")+4+8, 1<<63); return b }, `tensor "t0": dimension 1 is`, false},
		{"overflow dims", func(t *testing.T, b []byte) []byte {
			o := at(t, b, "t0") + 4
			put64(b, o, 1<<40)
			put64(b, o+8, 1<<40)
			return b
		}, `tensor "t0": element count overflows`, false},
		{"byte size overflow", func(t *testing.T, b []byte) []byte {
			o := at(t, b, "t1") + 4
			put64(b, o, 1<<62)
			put64(b, o+8, 1)
			return b
		}, `tensor "t1": byte size overflows`, false},
		{"row not multiple of block", func(t *testing.T, b []byte) []byte { put64(b, at(t, b, "t0")+4, 48); return b }, `tensor "t0": row length 48 is not a multiple of the Q8_0 block size 32`, false},
		{"unknown tensor type", func(t *testing.T, b []byte) []byte { put32(b, at(t, b, "t0")+4+16, 99); return b }, `tensor "t0": unsupported tensor type id 99`, false},
		{"removed tensor type", func(t *testing.T, b []byte) []byte { put32(b, at(t, b, "t0")+4+16, 4); return b }, `unsupported tensor type id 4`, false},
		{"offset out of file", func(t *testing.T, b []byte) []byte { put64(b, at(t, b, "t1")+4+16+4, 1<<20); return b }, `tensor "t1": data`, true},
		{"offset overflow", func(t *testing.T, b []byte) []byte { put64(b, at(t, b, "t1")+4+16+4, 1<<63); return b }, `tensor "t1": data offset`, false},
		{"misaligned offset", func(t *testing.T, b []byte) []byte {
			o := at(t, b, "t1") + 4 + 16 + 4
			put64(b, o, binary.LittleEndian.Uint64(b[o:])+4)
			return b
		}, `tensor "t1": data offset 100 is not a multiple of the alignment 32`, false},
		{"duplicate tensor name", func(t *testing.T, b []byte) []byte { b[at(t, b, "t1")-1] = '0'; return b }, `duplicate tensor name "t0"`, false},
		{"truncated data", func(t *testing.T, b []byte) []byte { return b[:len(b)-40] }, `tensor "t1"`, true},
		{"truncated header", func(t *testing.T, b []byte) []byte { return b[:at(t, b, "t1")+2] }, `tensor "t1" n_dims`, true},
		{"truncated tensor table", func(t *testing.T, b []byte) []byte { return b[:at(t, b, "t0")+2] }, `tensor count 2 cannot fit`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.corrupt(t, smallFile(t))
			_, err := Read(bytes.NewReader(b), int64(len(b)))
			if err == nil {
				t.Fatal("no error")
			}
			want := tc.want
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %q", err, want)
			}
			if !strings.Contains(err.Error(), "gguf: ") {
				t.Errorf("error %q lacks the gguf prefix", err)
			}
			if tc.eof != errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("error %q: wraps io.ErrUnexpectedEOF = %v, want %v", err, !tc.eof, tc.eof)
			}
		})
	}
}

func TestReadLimits(t *testing.T) {
	nested, _ := NewArray(ValArray, NewInt32s([]int32{1}))
	f := &File{Metadata: []KV{{"nested", nested}, {"s", NewString(strings.Repeat("x", 100))}}}
	var buf bytes.Buffer
	if err := Write(&buf, f, nil); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	for _, tc := range []struct {
		lim  Limits
		want string
	}{
		{Limits{MaxArrayDepth: 1}, "nested deeper than 1"},
		{Limits{MaxStringLen: 50}, "exceeds the limit of 50 bytes"},
		{Limits{MaxKVs: 1}, "metadata count 2 exceeds the limit of 1"},
		{Limits{MaxMetadataBytes: 60}, "exceeds the limit of 60 bytes"},
	} {
		_, err := ReadWithLimits(bytes.NewReader(b), int64(len(b)), tc.lim)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v, want %q", tc.lim, err, tc.want)
		}
	}
	if _, err := ReadWithLimits(bytes.NewReader(b), int64(len(b)), Limits{}); err != nil {
		t.Errorf("default limits: %v", err)
	}
}

// TestReadHugeClaimsDoNotAllocate checks that headers claiming enormous
// arrays, strings or counts fail without allocating what they claim.
func TestReadHugeClaimsDoNotAllocate(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(b []byte)
	}{
		{"array 1 TB", func(b []byte) { put64(b, at(t, b, "arr")+8, 1<<40) }},
		{"array within limit, past file", func(b []byte) { put64(b, at(t, b, "arr")+8, 60<<20) }},
		{"string", func(b []byte) { put64(b, at(t, b, "general.architecture")+4, 15<<20) }},
		{"tensor count", func(b []byte) { put64(b, 8, 1<<20) }},
		{"kv count", func(b []byte) { put64(b, 16, 1<<16) }},
	} {
		b := smallFile(t)
		tc.mod(b)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		allocs := testing.AllocsPerRun(5, func() {
			if _, err := Read(bytes.NewReader(b), int64(len(b))); err == nil {
				t.Fatalf("%s: no error", tc.name)
			}
		})
		runtime.ReadMemStats(&after)
		perRun := (after.TotalAlloc - before.TotalAlloc) / 6
		if perRun > 256<<10 || allocs > 200 {
			t.Errorf("%s: %d bytes in %.0f allocations per failed read", tc.name, perRun, allocs)
		}
	}
}

// TestReadManyKeysIsLinear pins the cost of the duplicate-key check: a
// header with the largest allowed number of keys must parse in time
// linear in its size (a pairwise scan takes billions of comparisons).
func TestReadManyKeysIsLinear(t *testing.T) {
	n := int(DefaultLimits().MaxKVs)
	f := &File{Metadata: make([]KV, n)}
	for i := range f.Metadata {
		f.Metadata[i] = KV{Key: "key.with.a.long.shared.prefix." + strconv.Itoa(i), Value: NewUint8(1)}
	}
	var buf bytes.Buffer
	if err := Write(&buf, f, nil); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	start := time.Now()
	got, err := Read(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Metadata) != n {
		t.Fatalf("read %d keys, want %d", len(got.Metadata), n)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("reading %d keys took %v", n, d)
	}
}

package gguf

import (
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/realmrt/realm/internal/refdata"
)

func refModel(t testing.TB, name string) string {
	t.Helper()
	p, err := refdata.Path("models", name)
	if err != nil {
		t.Fatalf("reference data: %v", err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("reference data: %v", err)
	}
	return p
}

func refVocabs(t testing.TB) []string {
	t.Helper()
	d, err := refdata.Path("vocab")
	if err != nil {
		t.Fatalf("reference data: %v", err)
	}
	fs, err := filepath.Glob(filepath.Join(d, "*.gguf"))
	if err != nil || len(fs) == 0 {
		t.Fatalf("no vocab files in %s (%v)", d, err)
	}
	return fs
}

func TestReadStories(t *testing.T) {
	m, err := Open(refModel(t, "stories260K.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Version != 3 || m.Alignment != 32 || m.DataOffset%32 != 0 {
		t.Errorf("version %d alignment %d data offset %d", m.Version, m.Alignment, m.DataOffset)
	}
	if s, ok := m.String("general.architecture"); !ok || s != "llama" {
		t.Errorf("general.architecture = %q, %v", s, ok)
	}
	for key, want := range map[string]uint64{
		"llama.embedding_length": 64, "llama.block_count": 5, "llama.attention.head_count": 8,
		"llama.attention.head_count_kv": 4, "llama.feed_forward_length": 172,
		"tokenizer.ggml.bos_token_id": 1, "tokenizer.ggml.eos_token_id": 2,
	} {
		if got, ok := m.Uint(key); !ok || got != want {
			t.Errorf("%s = %d, %v; want %d", key, got, ok, want)
		}
		if got, ok := m.Int(key); !ok || got != int64(want) {
			t.Errorf("Int(%s) = %d, %v; want %d", key, got, ok, want)
		}
	}
	if eps, ok := m.Float("llama.attention.layer_norm_rms_epsilon"); !ok || math.Abs(eps-1e-5) > 1e-10 {
		t.Errorf("rms eps = %g, %v", eps, ok)
	}
	toks, ok := m.Strings("tokenizer.ggml.tokens")
	if !ok || len(toks) != 512 || toks[1] != "<s>" || toks[2] != "</s>" {
		t.Errorf("tokens: ok=%v len=%d", ok, len(toks))
	}
	scores, ok := m.Float32s("tokenizer.ggml.scores")
	if !ok || len(scores) != 512 {
		t.Errorf("scores: ok=%v len=%d", ok, len(scores))
	}
	tt, ok := m.Int32s("tokenizer.ggml.token_type")
	if !ok || len(tt) != 512 || tt[1] != 3 {
		t.Errorf("token_type: ok=%v len=%d", ok, len(tt))
	}
	if _, ok := m.Strings("general.architecture"); ok {
		t.Error("Strings on a string key succeeded")
	}
	if _, ok := m.Uint("general.architecture"); ok {
		t.Error("Uint on a string key succeeded")
	}
	if _, ok := m.Lookup("no.such.key"); ok {
		t.Error("Lookup of a missing key succeeded")
	}
	if len(m.Tensors) != 48 {
		t.Fatalf("%d tensors, want 48", len(m.Tensors))
	}
	ti, ok := m.Tensor("token_embd.weight")
	if !ok || ti.Type != TypeF32 || len(ti.Dims) != 2 || ti.Dims[0] != 64 || ti.Dims[1] != 512 {
		t.Fatalf("token_embd.weight = %+v, %v", ti, ok)
	}
	if ti.Elements() != 64*512 || ti.Bytes() != 4*64*512 || ti.Rows() != 512 {
		t.Errorf("elements %d bytes %d rows %d", ti.Elements(), ti.Bytes(), ti.Rows())
	}
	data, err := m.TensorData(ti)
	if err != nil || int64(len(data)) != ti.Bytes() {
		t.Fatalf("TensorData: %d bytes, %v", len(data), err)
	}
	x := make([]float32, ti.Elements())
	if err := Dequantize(x, data, ti.Type); err != nil {
		t.Fatal(err)
	}
	var ss float64
	for _, v := range x {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			t.Fatal("non-finite embedding value")
		}
		ss += float64(v) * float64(v)
	}
	if ss == 0 {
		t.Error("embedding is all zero")
	}
	// Tensors are laid out in order, aligned, inside the file.
	st, _ := os.Stat(m.Path())
	for i := range m.Tensors {
		ti := &m.Tensors[i]
		if ti.Offset%m.Alignment != 0 || m.DataOffset+ti.Offset+ti.Bytes() > st.Size() {
			t.Errorf("tensor %s at %d (+%d) misplaced", ti.Name, ti.Offset, ti.Bytes())
		}
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := m.TensorData(ti); err == nil {
		t.Error("TensorData after Close succeeded")
	}
}

func TestReadAllReferenceFiles(t *testing.T) {
	files := append(refVocabs(t), refModel(t, "stories260K.gguf"), refModel(t, "stories260K-Q8_0.gguf"),
		refModel(t, "stories260K-Q4_0.gguf"), refModel(t, "llama-2-tiny-random.gguf"))
	for _, p := range files {
		t.Run(filepath.Base(p), func(t *testing.T) {
			m, err := Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if _, ok := m.String("tokenizer.ggml.model"); !ok {
				t.Error("no tokenizer.ggml.model")
			}
			toks, ok := m.Strings("tokenizer.ggml.tokens")
			if !ok || len(toks) == 0 {
				t.Error("no tokenizer.ggml.tokens")
			}
			for i := range m.Tensors {
				if _, err := m.TensorData(&m.Tensors[i]); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

// TestReadTruncated reads every prefix length class of a real file and
// checks that each fails with io.ErrUnexpectedEOF, never a panic.
func TestReadTruncated(t *testing.T) {
	b, err := os.ReadFile(refModel(t, "stories260K-Q4_0.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := Read(bytesReaderAt(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	end := f.DataOffset
	for n := int64(0); n < int64(len(b)); n += 1 + n/50 {
		_, err := Read(bytesReaderAt(b[:n]), n)
		if err == nil {
			t.Fatalf("truncated to %d bytes: no error", n)
		}
		if n >= 8 && n < end && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("truncated to %d bytes: %v does not wrap io.ErrUnexpectedEOF", n, err)
		}
	}
}

type bytesReaderAt []byte

func (b bytesReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	if off >= int64(len(b)) {
		return 0, io.EOF
	}
	n := copy(p, b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func TestReadVersions(t *testing.T) {
	for _, tc := range []struct {
		hdr  []byte
		want string
	}{
		{[]byte("GGUF\x01\x00\x00\x00"), "version 1"},
		{[]byte("GGUF\x00\x00\x00\x03"), "big-endian"},
		{[]byte("GGUF\x07\x00\x00\x00"), "version 7"},
		{[]byte("GGML\x03\x00\x00\x00"), "magic"},
	} {
		b := append(tc.hdr, make([]byte, 16)...)
		_, err := Read(bytesReaderAt(b), int64(len(b)))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want mention of %q", tc.hdr, err, tc.want)
		}
	}
	// Version 2 with no tensors and no metadata is valid.
	b := []byte("GGUF\x02\x00\x00\x00" + "\x00\x00\x00\x00\x00\x00\x00\x00" + "\x00\x00\x00\x00\x00\x00\x00\x00")
	f, err := Read(bytesReaderAt(b), int64(len(b)))
	if err != nil || f.Version != 2 {
		t.Errorf("v2 empty: %v", err)
	}
}

// TestOpenFIFO: a named pipe is refused at once instead of blocking
// until some process opens it for writing.
func TestOpenFIFO(t *testing.T) {
	p := filepath.Join(t.TempDir(), "pipe.gguf")
	if err := unix.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		m, err := Open(p)
		if err == nil {
			m.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("Open(fifo) = %v, want a not-a-regular-file error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Open(fifo) blocked")
	}
}

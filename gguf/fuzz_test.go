package gguf

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"testing"
)

// FuzzRead feeds arbitrary bytes to Read. Whatever Read accepts must
// write back with Write and read again to the same metadata, tensor
// infos and tensor data.
func FuzzRead(f *testing.F) {
	var sample bytes.Buffer
	if err := Write(&sample, sampleFile(f), patternData); err != nil {
		f.Fatal(err)
	}
	small := smallFile(f)
	seeds := [][]byte{small, sample.Bytes()}
	for _, n := range []int{0, 4, 8, 20, 24, 40, 100, 200, len(small) - 1} {
		seeds = append(seeds, small[:n])
	}
	// Heads of the real files: the full files make each execution slow.
	paths := []string{refModel(f, "stories260K-Q4_0.gguf"), refModel(f, "llama-2-tiny-random.gguf")}
	for _, v := range refVocabs(f)[:3] {
		paths = append(paths, v)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		for _, n := range []int{64, 512, 4096, 16384} {
			seeds = append(seeds, b[:min(n, len(b))])
		}
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := Read(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			if file != nil {
				t.Fatal("file and error both returned")
			}
			return
		}
		var out bytes.Buffer
		err = Write(&out, file, func(i int, ti *TensorInfo, w io.Writer) error {
			src := &file.Tensors[i]
			_, err := w.Write(b[file.DataOffset+src.Offset:][:src.Bytes()])
			return err
		})
		if err != nil {
			t.Fatalf("Write of a file Read accepted: %v", err)
		}
		o := out.Bytes()
		g, err := Read(bytes.NewReader(o), int64(len(o)))
		if err != nil {
			t.Fatalf("Read of the rewritten file: %v", err)
		}
		if g.Version != file.Version || g.Alignment != file.Alignment || len(g.Metadata) != len(file.Metadata) || len(g.Tensors) != len(file.Tensors) {
			t.Fatalf("rewrite changed the header: %+v vs %+v", g, file)
		}
		for i := range g.Metadata {
			if g.Metadata[i].Key != file.Metadata[i].Key || !g.Metadata[i].Value.Equal(file.Metadata[i].Value) {
				t.Fatalf("key %d changed", i)
			}
		}
		for i := range g.Tensors {
			a, c := &file.Tensors[i], &g.Tensors[i]
			if a.Name != c.Name || a.Type != c.Type || fmt.Sprint(a.Dims) != fmt.Sprint(c.Dims) {
				t.Fatalf("tensor %d changed: %+v vs %+v", i, a, c)
			}
			if !bytes.Equal(b[file.DataOffset+a.Offset:][:a.Bytes()], o[g.DataOffset+c.Offset:][:c.Bytes()]) {
				t.Fatalf("tensor %s data changed", a.Name)
			}
		}
	})
}

// FuzzDequantize decodes arbitrary bytes as every type and quantizes the
// decoded floats back: neither may panic, and re-quantized data must
// decode to values of the same size class.
func FuzzDequantize(f *testing.F) {
	f.Add(make([]byte, 292), uint8(0))
	f.Add(bytes.Repeat([]byte{0xff, 0x7f, 0x00, 0x7c}, 80), uint8(3))
	f.Fuzz(func(t *testing.T, b []byte, sel uint8) {
		types := AllTypes()
		typ := types[int(sel)%len(types)]
		bb, be := typ.BlockBytes(), typ.BlockElems()
		nb := len(b) / bb
		src := b[:nb*bb]
		dst := make([]float32, nb*be)
		if err := Dequantize(dst, src, typ); err != nil {
			t.Fatal(err)
		}
		for _, qt := range types {
			if !CanQuantize(qt) || len(dst)%qt.BlockElems() != 0 {
				continue
			}
			n, _ := qt.RowBytes(int64(len(dst)))
			out := make([]byte, n)
			if err := Quantize(out, dst, qt); err != nil {
				t.Fatal(err)
			}
			back := make([]float32, len(dst))
			if err := Dequantize(back, out, qt); err != nil {
				t.Fatal(err)
			}
		}
	})
}

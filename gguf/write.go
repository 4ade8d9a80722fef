package gguf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Layout computes where Write places the data of f: the absolute offset
// of the data section and each tensor's offset relative to it. It
// validates f the same way Write does.
func Layout(f *File) (dataOffset int64, offsets []int64, err error) {
	align, err := checkWritable(f)
	if err != nil {
		return 0, nil, err
	}
	hdr, err := headerSize(f)
	if err != nil {
		return 0, nil, err
	}
	offsets = make([]int64, len(f.Tensors))
	cur := int64(0)
	for i := range f.Tensors {
		offsets[i] = alignUp(cur, align)
		cur = offsets[i] + f.Tensors[i].Bytes()
	}
	// Like the reader, the data section starts at the next multiple of the
	// alignment even when there are no tensors (the padding is then not
	// written).
	return alignUp(hdr, align), offsets, nil
}

// checkWritable validates f for writing and returns its alignment.
func checkWritable(f *File) (int64, error) {
	if f.Version != 0 && f.Version != 2 && f.Version != 3 {
		return 0, fmt.Errorf("gguf: cannot write version %d (only 2 and 3)", f.Version)
	}
	align := int64(DefaultAlignment)
	keys := make(map[string]bool, len(f.Metadata))
	for _, kv := range f.Metadata {
		if keys[kv.Key] {
			return 0, fmt.Errorf("gguf: duplicate metadata key %q", kv.Key)
		}
		keys[kv.Key] = true
		if err := checkValue(kv.Value, 0); err != nil {
			return 0, fmt.Errorf("gguf: key %q: %w", kv.Key, err)
		}
		if kv.Key == KeyAlignment {
			a, ok := kv.Value.AsUint()
			if !ok || a == 0 || a&(a-1) != 0 || a > 1<<30 {
				return 0, fmt.Errorf("gguf: %s = %s is not a power of two between 1 and 2^30", KeyAlignment, kv.Value)
			}
			align = int64(a)
		}
	}
	if f.Alignment != 0 && f.Alignment != align {
		return 0, fmt.Errorf("gguf: File.Alignment %d disagrees with the metadata alignment %d", f.Alignment, align)
	}
	names := make(map[string]bool, len(f.Tensors))
	for i := range f.Tensors {
		ti := &f.Tensors[i]
		if names[ti.Name] {
			return 0, fmt.Errorf("gguf: duplicate tensor name %q", ti.Name)
		}
		names[ti.Name] = true
		if _, err := ti.size(); err != nil {
			return 0, fmt.Errorf("gguf: tensor %q: %w", ti.Name, err)
		}
	}
	return align, nil
}

func checkValue(v Value, depth int) error {
	if !v.typ.Known() {
		return fmt.Errorf("unknown value type %d", uint32(v.typ))
	}
	if v.typ != ValArray {
		return nil
	}
	if v.arr == nil {
		return errors.New("array without payload")
	}
	if depth >= DefaultLimits().MaxArrayDepth {
		return fmt.Errorf("arrays nested deeper than %d", DefaultLimits().MaxArrayDepth)
	}
	for _, e := range v.arr.vals {
		if e.typ != ValArray {
			return fmt.Errorf("nested array element of type %s", e.typ)
		}
		if err := checkValue(e, depth+1); err != nil {
			return err
		}
	}
	return nil
}

func valueSize(v Value) int64 {
	switch v.typ {
	case ValString:
		return 8 + int64(len(v.str))
	case ValArray:
		n := int64(12)
		a := v.arr
		switch a.elem {
		case ValString:
			for _, s := range a.strs {
				n += 8 + int64(len(s))
			}
		case ValArray:
			for _, e := range a.vals {
				n += valueSize(e)
			}
		default:
			n += int64(len(a.raw))
		}
		return n
	}
	return int64(v.typ.scalarSize())
}

func headerSize(f *File) (int64, error) {
	n := int64(4 + 4 + 8 + 8)
	for _, kv := range f.Metadata {
		n += 8 + int64(len(kv.Key)) + 4 + valueSize(kv.Value)
	}
	for i := range f.Tensors {
		n += 8 + int64(len(f.Tensors[i].Name)) + 4 + 8*int64(len(f.Tensors[i].Dims)) + 4 + 8
	}
	return n, nil
}

// encoder writes little-endian GGUF primitives and remembers the first
// error.
type encoder struct {
	w   *bufio.Writer
	n   int64
	err error
	tmp [8]byte
}

func (e *encoder) bytes(b []byte) {
	if e.err != nil {
		return
	}
	var k int
	k, e.err = e.w.Write(b)
	e.n += int64(k)
}

func (e *encoder) str(s string) {
	e.u64(uint64(len(s)))
	if e.err != nil {
		return
	}
	var k int
	k, e.err = e.w.WriteString(s)
	e.n += int64(k)
}

func (e *encoder) u32(x uint32) {
	binary.LittleEndian.PutUint32(e.tmp[:4], x)
	e.bytes(e.tmp[:4])
}

func (e *encoder) u64(x uint64) {
	binary.LittleEndian.PutUint64(e.tmp[:8], x)
	e.bytes(e.tmp[:8])
}

func (e *encoder) value(v Value) {
	switch v.typ {
	case ValString:
		e.str(v.str)
	case ValArray:
		a := v.arr
		e.u32(uint32(a.elem))
		e.u64(uint64(a.n))
		switch a.elem {
		case ValString:
			for _, s := range a.strs {
				e.str(s)
			}
		case ValArray:
			for _, sub := range a.vals {
				e.value(sub)
			}
		default:
			e.bytes(a.raw)
		}
	default:
		sz := v.typ.scalarSize()
		putScalar(e.tmp[:sz], sz, v.bits)
		e.bytes(e.tmp[:sz])
	}
}

func (e *encoder) pad(align int64) {
	var zero [64]byte
	for r := (align - e.n%align) % align; r > 0 && e.err == nil; {
		k := min(r, int64(len(zero)))
		e.bytes(zero[:k])
		r -= k
	}
}

// countWriter counts the bytes a tensor callback writes.
type countWriter struct {
	e *encoder
}

// Write forwards p to the encoder, counting the bytes.
func (c countWriter) Write(p []byte) (int, error) {
	if c.e.err != nil {
		return 0, c.e.err
	}
	k, err := c.e.w.Write(p)
	c.e.n += int64(k)
	if err != nil {
		c.e.err = err
	}
	return k, err
}

// Write writes f as a GGUF file to w: the header, the metadata in order,
// the tensor infos with offsets computed for the alignment
// (general.alignment or 32), padding, then each tensor's data, produced
// by calling data(i, ti, w) in order, each followed by padding to the
// alignment. The callback must write exactly ti.Bytes() bytes; ti is a
// copy of f.Tensors[i] carrying the offset as written. f itself is not
// modified (Version 0 is written as 3; Offset fields are ignored).
func Write(w io.Writer, f *File, data func(i int, ti *TensorInfo, w io.Writer) error) error {
	dataOffset, offsets, err := Layout(f)
	if err != nil {
		return err
	}
	align, _ := checkWritable(f)
	ver := f.Version
	if ver == 0 {
		ver = 3
	}
	e := &encoder{w: bufio.NewWriterSize(w, 1<<20)}
	e.bytes([]byte(Magic))
	e.u32(ver)
	e.u64(uint64(len(f.Tensors)))
	e.u64(uint64(len(f.Metadata)))
	for _, kv := range f.Metadata {
		e.str(kv.Key)
		e.u32(uint32(kv.Value.typ))
		e.value(kv.Value)
	}
	for i := range f.Tensors {
		ti := &f.Tensors[i]
		e.str(ti.Name)
		e.u32(uint32(len(ti.Dims)))
		for _, d := range ti.Dims {
			e.u64(uint64(d))
		}
		e.u32(uint32(ti.Type))
		e.u64(uint64(offsets[i]))
	}
	if len(f.Tensors) > 0 {
		e.pad(align)
	}
	if e.err != nil {
		return fmt.Errorf("gguf: writing header: %w", e.err)
	}
	if len(f.Tensors) > 0 && e.n != dataOffset {
		return fmt.Errorf("gguf: internal error: header is %d bytes, expected %d", e.n, dataOffset)
	}
	for i := range f.Tensors {
		ti := f.Tensors[i]
		ti.Dims = append([]int64(nil), ti.Dims...)
		ti.Offset = offsets[i]
		start := e.n
		if data == nil {
			return fmt.Errorf("gguf: tensor %q: no data callback", ti.Name)
		}
		if err := data(i, &ti, countWriter{e}); err != nil {
			return fmt.Errorf("gguf: tensor %q: %w", ti.Name, err)
		}
		if e.err != nil {
			return fmt.Errorf("gguf: writing tensor %q: %w", ti.Name, e.err)
		}
		if got, want := e.n-start, f.Tensors[i].Bytes(); got != want {
			return fmt.Errorf("gguf: tensor %q: data callback wrote %d bytes, want %d", ti.Name, got, want)
		}
		e.pad(align)
	}
	if e.err == nil {
		e.err = e.w.Flush()
	}
	if e.err != nil {
		return fmt.Errorf("gguf: writing: %w", e.err)
	}
	return nil
}

// CopyData returns a Write callback that copies each tensor's data from
// m, matching tensors by index (f.Tensors[i] must describe the same data
// as m.Tensors[i]).
func CopyData(m *Mapped) func(i int, ti *TensorInfo, w io.Writer) error {
	return func(i int, ti *TensorInfo, w io.Writer) error {
		if i >= len(m.Tensors) {
			return fmt.Errorf("no source tensor #%d", i)
		}
		b, err := m.TensorData(&m.Tensors[i])
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
}

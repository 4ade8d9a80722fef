package gguf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
)

// Magic is the first four bytes of every GGUF file.
const Magic = "GGUF"

// DefaultAlignment is the data alignment used when general.alignment is
// absent.
const DefaultAlignment = 32

// KeyAlignment is the metadata key that sets the data alignment.
const KeyAlignment = "general.alignment"

// MaxDims is the largest number of dimensions of a tensor (GGML_MAX_DIMS).
const MaxDims = 4

// Limits bounds what Read accepts, so that a malformed or hostile header
// cannot make the reader allocate or loop without bound. Each limit is
// checked before the corresponding allocation. The zero value of a field
// means "use the default".
type Limits struct {
	// MaxStringLen is the longest string (key, value or array element)
	// in bytes. Default 16 MiB (chat templates are tens of KiB).
	MaxStringLen int64
	// MaxArrayLen is the largest element count of one array. Default
	// 64 Mi (vocabularies have ~250k entries).
	MaxArrayLen int64
	// MaxArrayDepth is the deepest nesting of arrays. Default 4.
	MaxArrayDepth int
	// MaxKVs is the largest number of metadata pairs. Default 65536.
	MaxKVs int64
	// MaxMetadataBytes caps the size of the whole metadata section in
	// the file. Default 1 GiB.
	MaxMetadataBytes int64
	// MaxTensors is the largest number of tensors. Default 1 Mi.
	MaxTensors int64
	// MaxNameLen is the longest tensor name in bytes. Default 1024.
	MaxNameLen int64
}

// DefaultLimits returns the limits Read uses.
func DefaultLimits() Limits {
	return Limits{
		MaxStringLen:     16 << 20,
		MaxArrayLen:      64 << 20,
		MaxArrayDepth:    4,
		MaxKVs:           1 << 16,
		MaxMetadataBytes: 1 << 30,
		MaxTensors:       1 << 20,
		MaxNameLen:       1024,
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxStringLen <= 0 {
		l.MaxStringLen = d.MaxStringLen
	}
	if l.MaxArrayLen <= 0 {
		l.MaxArrayLen = d.MaxArrayLen
	}
	if l.MaxArrayDepth <= 0 {
		l.MaxArrayDepth = d.MaxArrayDepth
	}
	if l.MaxKVs <= 0 {
		l.MaxKVs = d.MaxKVs
	}
	if l.MaxMetadataBytes <= 0 {
		l.MaxMetadataBytes = d.MaxMetadataBytes
	}
	if l.MaxTensors <= 0 {
		l.MaxTensors = d.MaxTensors
	}
	if l.MaxNameLen <= 0 {
		l.MaxNameLen = d.MaxNameLen
	}
	return l
}

// File is the parsed header of a GGUF file: metadata and tensor infos.
// Tensor data is not read; see Open and Mapped.TensorData.
type File struct {
	// Version is the GGUF version (2 or 3).
	Version uint32
	// Metadata holds the key/value pairs in file order.
	Metadata []KV
	// Tensors holds the tensor infos in file order.
	Tensors []TensorInfo
	// Alignment is the data alignment (general.alignment or 32).
	Alignment int64
	// DataOffset is the absolute file offset of the data section.
	DataOffset int64
}

// TensorInfo describes one tensor of a GGUF file.
type TensorInfo struct {
	// Name is the tensor name ("blk.0.attn_q.weight").
	Name string
	// Dims are the dimensions, fastest-varying first (Dims[0] is the
	// row length).
	Dims []int64
	// Type is the element type.
	Type Type
	// Offset is the offset of the data relative to File.DataOffset.
	Offset int64
}

// Elements returns the number of elements of the tensor, or -1 when the
// product overflows or a dimension is negative.
func (ti *TensorInfo) Elements() int64 {
	n, err := elementCount(ti.Dims)
	if err != nil {
		return -1
	}
	return n
}

// Bytes returns the size of the tensor data in bytes, or -1 when the
// tensor is invalid (unknown type, row not a multiple of the block
// size, overflow).
func (ti *TensorInfo) Bytes() int64 {
	n, err := ti.size()
	if err != nil {
		return -1
	}
	return n
}

// Rows returns the number of rows (elements / Dims[0]), or 0 for a
// tensor without dimensions.
func (ti *TensorInfo) Rows() int64 {
	if len(ti.Dims) == 0 || ti.Dims[0] <= 0 {
		return 0
	}
	return ti.Elements() / ti.Dims[0]
}

func elementCount(dims []int64) (int64, error) {
	n := int64(1)
	for i, d := range dims {
		if d <= 0 {
			return 0, fmt.Errorf("dimension %d is %d (must be > 0)", i, d)
		}
		hi, lo := bits.Mul64(uint64(n), uint64(d))
		if hi != 0 || lo > math.MaxInt64 {
			return 0, fmt.Errorf("element count overflows int64 at dimension %d", i)
		}
		n = int64(lo)
	}
	return n, nil
}

// size validates the tensor shape and type and returns its byte size.
func (ti *TensorInfo) size() (int64, error) {
	if len(ti.Dims) > MaxDims {
		return 0, fmt.Errorf("%d dimensions (max %d)", len(ti.Dims), MaxDims)
	}
	tr, ok := ti.Type.traits()
	if !ok {
		return 0, fmt.Errorf("unsupported tensor type id %d", uint32(ti.Type))
	}
	n, err := elementCount(ti.Dims)
	if err != nil {
		return 0, err
	}
	ne0 := int64(1)
	if len(ti.Dims) > 0 {
		ne0 = ti.Dims[0]
	}
	if ne0%int64(tr.blockElems) != 0 {
		return 0, fmt.Errorf("row length %d is not a multiple of the %s block size %d", ne0, tr.name, tr.blockElems)
	}
	blocks := n / int64(tr.blockElems)
	hi, lo := bits.Mul64(uint64(blocks), uint64(tr.blockBytes))
	if hi != 0 || lo > math.MaxInt64 {
		return 0, errors.New("byte size overflows int64")
	}
	return int64(lo), nil
}

// Read parses the header, metadata and tensor infos of the GGUF file
// held by r (size bytes long) with DefaultLimits.
func Read(r io.ReaderAt, size int64) (*File, error) {
	return ReadWithLimits(r, size, DefaultLimits())
}

// ReadWithLimits is Read with explicit limits (zero fields take their
// defaults).
func ReadWithLimits(r io.ReaderAt, size int64, lim Limits) (*File, error) {
	if size < 0 {
		return nil, fmt.Errorf("gguf: negative file size %d", size)
	}
	d := &decoder{r: r, size: size, lim: lim.withDefaults()}
	return d.file()
}

// decoder reads a GGUF header sequentially from an io.ReaderAt through a
// small window buffer.
type decoder struct {
	r      io.ReaderAt
	size   int64
	off    int64 // next byte to read
	buf    []byte
	bufOff int64 // file offset of buf[0]
	lim    Limits
	metaHi int64 // end of the metadata budget (absolute offset)
}

const windowSize = 64 << 10

// desc describes what is being read, for error messages. It is only
// formatted when an error occurs, so that hot loops stay cheap.
type desc struct {
	what string // e.g. "tensor %q name" or "element %d of key %q"
	key  string
	idx  int
	mode uint8 // 0: what only; 1: what %q key; 2: what %d idx %q key; 3: what %d idx
}

// String formats the description.
func (w desc) String() string {
	switch w.mode {
	case 1:
		return fmt.Sprintf(w.what, w.key)
	case 2:
		return fmt.Sprintf(w.what, w.idx, w.key)
	case 3:
		return fmt.Sprintf(w.what, w.idx)
	}
	return w.what
}

func plain(s string) desc                      { return desc{what: s} }
func keyed(s, key string) desc                 { return desc{what: s, key: key, mode: 1} }
func indexed(s string, i int, key string) desc { return desc{what: s, key: key, idx: i, mode: 2} }
func numbered(s string, i int) desc            { return desc{what: s, idx: i, mode: 3} }

func (d *decoder) errf(at int64, format string, args ...any) error {
	return fmt.Errorf("gguf: at byte %d: %s", at, fmt.Sprintf(format, args...))
}

// next returns the next n bytes and advances. The slice is only valid
// until the next call. n must be bounded by the caller.
func (d *decoder) next(n int64, what desc) ([]byte, error) {
	if n > d.size-d.off {
		return nil, fmt.Errorf("gguf: at byte %d: %s: need %d bytes, file has %d left: %w", d.off, what, n, d.size-d.off, io.ErrUnexpectedEOF)
	}
	if d.off >= d.bufOff && d.off+n <= d.bufOff+int64(len(d.buf)) {
		s := d.off - d.bufOff
		d.off += n
		return d.buf[s : s+n], nil
	}
	want := n
	if want < windowSize {
		want = min(int64(windowSize), d.size-d.off)
	}
	if int64(cap(d.buf)) < want {
		d.buf = make([]byte, want)
	}
	d.buf = d.buf[:want]
	got, err := d.r.ReadAt(d.buf, d.off)
	if int64(got) < want {
		d.buf = d.buf[:0]
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("gguf: at byte %d: %s: reading %d bytes: %w", d.off, what, want, err)
	}
	d.bufOff = d.off
	d.off += n
	return d.buf[:n], nil
}

func (d *decoder) u32(what desc) (uint32, error) {
	b, err := d.next(4, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

func (d *decoder) u64(what desc) (uint64, error) {
	b, err := d.next(8, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

// str reads a length-prefixed string of at most maxLen bytes.
func (d *decoder) str(what desc, maxLen int64) (string, error) {
	at := d.off
	n, err := d.u64(what)
	if err != nil {
		return "", err
	}
	if n > uint64(maxLen) {
		return "", d.errf(at, "%s: length %d exceeds the limit of %d bytes", what, n, maxLen)
	}
	if int64(n) > d.size-d.off {
		return "", fmt.Errorf("gguf: at byte %d: %s: length %d runs past the end of the file (%d bytes left): %w", at, what, n, d.size-d.off, io.ErrUnexpectedEOF)
	}
	if d.off+int64(n) > d.metaHi {
		return "", d.errf(at, "%s: metadata exceeds the limit of %d bytes", what, d.lim.MaxMetadataBytes)
	}
	b, err := d.next(int64(n), what)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

func (d *decoder) file() (*File, error) {
	b, err := d.next(4, plain("magic"))
	if err != nil {
		return nil, err
	}
	if string(b) != Magic {
		return nil, d.errf(0, "bad magic %q (want %q): not a GGUF file", b, Magic)
	}
	ver, err := d.u32(plain("version"))
	if err != nil {
		return nil, err
	}
	switch {
	case ver == 1:
		return nil, d.errf(4, "GGUF version 1 is not supported (only 2 and 3)")
	case ver == 2 || ver == 3:
	case bits.ReverseBytes32(ver) == 2 || bits.ReverseBytes32(ver) == 3:
		return nil, d.errf(4, "big-endian GGUF (version %d byte-swapped) is not supported", bits.ReverseBytes32(ver))
	default:
		return nil, d.errf(4, "unsupported GGUF version %d (only 2 and 3)", ver)
	}
	f := &File{Version: ver, Alignment: DefaultAlignment}
	at := d.off
	nTensors, err := d.u64(plain("tensor count"))
	if err != nil {
		return nil, err
	}
	if nTensors > uint64(d.lim.MaxTensors) {
		return nil, d.errf(at, "tensor count %d exceeds the limit of %d", nTensors, d.lim.MaxTensors)
	}
	at = d.off
	nKV, err := d.u64(plain("metadata count"))
	if err != nil {
		return nil, err
	}
	if nKV > uint64(d.lim.MaxKVs) {
		return nil, d.errf(at, "metadata count %d exceeds the limit of %d", nKV, d.lim.MaxKVs)
	}
	// Each KV needs at least 8 (key length) + 4 (type) + 1 bytes.
	if int64(nKV) > (d.size-d.off)/13 {
		return nil, fmt.Errorf("gguf: at byte %d: metadata count %d cannot fit in the %d bytes left: %w", at, nKV, d.size-d.off, io.ErrUnexpectedEOF)
	}
	d.metaHi = d.off + d.lim.MaxMetadataBytes
	if d.metaHi < d.off { // overflow
		d.metaHi = math.MaxInt64
	}
	f.Metadata = make([]KV, 0, nKV)
	// A set, not a scan of f.Metadata: MaxKVs keys would otherwise cost
	// MaxKVs²/2 string comparisons on a hostile header.
	keys := make(map[string]struct{}, nKV)
	for i := uint64(0); i < nKV; i++ {
		kat := d.off
		key, err := d.str(numbered("metadata key #%d", int(i)), d.lim.MaxStringLen)
		if err != nil {
			return nil, err
		}
		if _, dup := keys[key]; dup {
			return nil, d.errf(kat, "duplicate metadata key %q", key)
		}
		keys[key] = struct{}{}
		tat := d.off
		t, err := d.u32(keyed("type of key %q", key))
		if err != nil {
			return nil, err
		}
		v, err := d.value(ValueType(t), key, tat, 0)
		if err != nil {
			return nil, err
		}
		if d.off > d.metaHi {
			return nil, d.errf(kat, "key %q: metadata exceeds the limit of %d bytes", key, d.lim.MaxMetadataBytes)
		}
		if key == KeyAlignment {
			a, ok := v.AsUint()
			if !ok {
				return nil, d.errf(kat, "%s has type %s, want an unsigned integer", KeyAlignment, v.typ)
			}
			if a == 0 || a&(a-1) != 0 || a > 1<<30 {
				return nil, d.errf(kat, "%s = %d is not a power of two between 1 and 2^30", KeyAlignment, a)
			}
			f.Alignment = int64(a)
		}
		f.Metadata = append(f.Metadata, KV{Key: key, Value: v})
	}

	d.metaHi = math.MaxInt64
	// Each tensor info needs at least 8 (name) + 4 (n_dims) + 4 (type) + 8 (offset).
	if int64(nTensors) > (d.size-d.off)/24 {
		return nil, fmt.Errorf("gguf: at byte %d: tensor count %d cannot fit in the %d bytes left: %w", d.off, nTensors, d.size-d.off, io.ErrUnexpectedEOF)
	}
	f.Tensors = make([]TensorInfo, 0, nTensors)
	names := make(map[string]int, nTensors)
	for i := uint64(0); i < nTensors; i++ {
		tat := d.off
		ti, err := d.tensorInfo(i)
		if err != nil {
			return nil, err
		}
		if j, dup := names[ti.Name]; dup {
			return nil, d.errf(tat, "tensor #%d: duplicate tensor name %q (also tensor #%d)", i, ti.Name, j)
		}
		names[ti.Name] = int(i)
		f.Tensors = append(f.Tensors, ti)
	}
	f.DataOffset = alignUp(d.off, f.Alignment)
	if f.DataOffset > d.size && len(f.Tensors) > 0 {
		return nil, fmt.Errorf("gguf: data section starts at byte %d, past the end of the %d-byte file: %w", f.DataOffset, d.size, io.ErrUnexpectedEOF)
	}
	for i := range f.Tensors {
		ti := &f.Tensors[i]
		if ti.Offset%f.Alignment != 0 {
			return nil, fmt.Errorf("gguf: tensor %q: data offset %d is not a multiple of the alignment %d", ti.Name, ti.Offset, f.Alignment)
		}
		n, _ := ti.size() // validated in tensorInfo
		if ti.Offset > d.size-f.DataOffset || n > d.size-f.DataOffset-ti.Offset {
			return nil, fmt.Errorf("gguf: tensor %q: data [%d, +%d) at file offset %d lies outside the %d-byte file: %w",
				ti.Name, ti.Offset, n, f.DataOffset+ti.Offset, d.size, io.ErrUnexpectedEOF)
		}
	}
	return f, nil
}

func alignUp(x, a int64) int64 {
	return (x + a - 1) / a * a
}

func (d *decoder) tensorInfo(i uint64) (TensorInfo, error) {
	at := d.off
	name, err := d.str(numbered("tensor #%d name", int(i)), d.lim.MaxNameLen)
	if err != nil {
		return TensorInfo{}, err
	}
	nat := d.off
	nd, err := d.u32(keyed("tensor %q n_dims", name))
	if err != nil {
		return TensorInfo{}, err
	}
	if nd > MaxDims {
		return TensorInfo{}, d.errf(nat, "tensor %q: n_dims %d exceeds the maximum of %d", name, nd, MaxDims)
	}
	ti := TensorInfo{Name: name, Dims: make([]int64, nd)}
	for k := range ti.Dims {
		dat := d.off
		v, err := d.u64(keyed("tensor %q dimension", name))
		if err != nil {
			return TensorInfo{}, err
		}
		if v == 0 || v > math.MaxInt64 {
			return TensorInfo{}, d.errf(dat, "tensor %q: dimension %d is %d (must be between 1 and 2^63-1)", name, k, int64(v))
		}
		ti.Dims[k] = int64(v)
	}
	tat := d.off
	t, err := d.u32(keyed("tensor %q type", name))
	if err != nil {
		return TensorInfo{}, err
	}
	ti.Type = Type(t)
	if !ti.Type.Known() {
		return TensorInfo{}, d.errf(tat, "tensor %q: unsupported tensor type id %d", name, t)
	}
	oat := d.off
	off, err := d.u64(keyed("tensor %q offset", name))
	if err != nil {
		return TensorInfo{}, err
	}
	if off > math.MaxInt64 {
		return TensorInfo{}, d.errf(oat, "tensor %q: data offset %d is too large", name, off)
	}
	ti.Offset = int64(off)
	if _, err := ti.size(); err != nil {
		return TensorInfo{}, fmt.Errorf("gguf: at byte %d: tensor %q: %w", at, name, err)
	}
	return ti, nil
}

// value reads one value of type t for key (tat is the offset of the type
// tag, for errors).
func (d *decoder) value(t ValueType, key string, tat int64, depth int) (Value, error) {
	if !t.Known() {
		return Value{}, d.errf(tat, "key %q: unknown value type %d", key, uint32(t))
	}
	switch t {
	case ValString:
		s, err := d.str(keyed("value of key %q", key), d.lim.MaxStringLen)
		if err != nil {
			return Value{}, err
		}
		return Value{typ: ValString, str: s}, nil
	case ValArray:
		return d.array(key, depth)
	}
	sz := t.scalarSize()
	b, err := d.next(int64(sz), keyed("value of key %q", key))
	if err != nil {
		return Value{}, err
	}
	v := Value{typ: t, bits: getScalar(b, sz)}
	if t == ValBool && v.bits > 1 {
		return Value{}, d.errf(d.off-1, "key %q: bool value %d is neither 0 nor 1", key, v.bits)
	}
	return v, nil
}

func (d *decoder) array(key string, depth int) (Value, error) {
	at := d.off
	if depth >= d.lim.MaxArrayDepth {
		return Value{}, d.errf(at, "key %q: arrays nested deeper than %d", key, d.lim.MaxArrayDepth)
	}
	et, err := d.u32(keyed("array element type of key %q", key))
	if err != nil {
		return Value{}, err
	}
	elem := ValueType(et)
	if !elem.Known() {
		return Value{}, d.errf(at, "key %q: array of unknown value type %d", key, et)
	}
	nat := d.off
	n, err := d.u64(keyed("array length of key %q", key))
	if err != nil {
		return Value{}, err
	}
	if n > uint64(d.lim.MaxArrayLen) {
		return Value{}, d.errf(nat, "key %q: array length %d exceeds the limit of %d", key, n, d.lim.MaxArrayLen)
	}
	// Smallest encoding of one element: bounds n by the bytes left.
	minSize := int64(elem.scalarSize())
	switch elem {
	case ValString:
		minSize = 8
	case ValArray:
		minSize = 12
	}
	left := min(d.size, d.metaHi) - d.off
	if int64(n) > left/minSize {
		if d.metaHi < d.size && int64(n) <= (d.size-d.off)/minSize {
			return Value{}, d.errf(nat, "key %q: array of %d %s exceeds the metadata limit of %d bytes", key, n, elem, d.lim.MaxMetadataBytes)
		}
		return Value{}, fmt.Errorf("gguf: at byte %d: key %q: array of %d %s needs at least %d bytes, file has %d left: %w",
			nat, key, n, elem, int64(n)*minSize, d.size-d.off, io.ErrUnexpectedEOF)
	}
	a := &array{elem: elem, n: int(n)}
	switch elem {
	case ValString:
		a.strs = make([]string, 0, min(int(n), 1<<16))
		for i := 0; i < int(n); i++ {
			s, err := d.str(indexed("element %d of key %q", i, key), d.lim.MaxStringLen)
			if err != nil {
				return Value{}, err
			}
			a.strs = append(a.strs, s)
		}
	case ValArray:
		a.vals = make([]Value, 0, min(int(n), 1<<12))
		for i := 0; i < int(n); i++ {
			sub, err := d.array(fmt.Sprintf("%s[%d]", key, i), depth+1)
			if err != nil {
				return Value{}, err
			}
			a.vals = append(a.vals, sub)
		}
	default:
		// n*minSize is bounded by the bytes left in the file.
		total := int64(n) * minSize
		a.raw = make([]byte, 0, total)
		for total > 0 {
			chunk := min(total, windowSize)
			b, err := d.next(chunk, keyed("elements of key %q", key))
			if err != nil {
				return Value{}, err
			}
			a.raw = append(a.raw, b...)
			total -= chunk
		}
		if elem == ValBool {
			for i, c := range a.raw {
				if c > 1 {
					return Value{}, d.errf(nat+8+int64(i), "key %q: bool element %d is %d, neither 0 nor 1", key, i, c)
				}
			}
		}
	}
	return Value{typ: ValArray, arr: a}, nil
}

// Lookup returns the value of key.
func (f *File) Lookup(key string) (Value, bool) {
	for i := range f.Metadata {
		if f.Metadata[i].Key == key {
			return f.Metadata[i].Value, true
		}
	}
	return Value{}, false
}

// String returns the string value of key.
func (f *File) String(key string) (string, bool) {
	v, ok := f.Lookup(key)
	if !ok {
		return "", false
	}
	return v.AsString()
}

// Uint returns the value of key when it is a non-negative integer of
// any integer type.
func (f *File) Uint(key string) (uint64, bool) {
	v, ok := f.Lookup(key)
	if !ok {
		return 0, false
	}
	return v.AsUint()
}

// Int returns the value of key when it is an integer of any integer type
// that fits in an int64.
func (f *File) Int(key string) (int64, bool) {
	v, ok := f.Lookup(key)
	if !ok {
		return 0, false
	}
	return v.AsInt()
}

// Float returns the value of key when it is a float32, float64 or
// integer.
func (f *File) Float(key string) (float64, bool) {
	v, ok := f.Lookup(key)
	if !ok {
		return 0, false
	}
	return v.AsFloat()
}

// Bool returns the value of key when it is a bool.
func (f *File) Bool(key string) (bool, bool) {
	v, ok := f.Lookup(key)
	if !ok {
		return false, false
	}
	return v.AsBool()
}

// Strings returns a copy of the value of key when it is an array of
// strings.
func (f *File) Strings(key string) ([]string, bool) {
	v, ok := f.Lookup(key)
	if !ok {
		return nil, false
	}
	return v.AsStrings()
}

// Float32s returns the value of key when it is an array of float32 or
// float64.
func (f *File) Float32s(key string) ([]float32, bool) {
	v, ok := f.Lookup(key)
	if !ok {
		return nil, false
	}
	return v.AsFloat32s()
}

// Int32s returns the value of key when it is an array of any integer
// type whose elements all fit in an int32.
func (f *File) Int32s(key string) ([]int32, bool) {
	v, ok := f.Lookup(key)
	if !ok {
		return nil, false
	}
	return v.AsInt32s()
}

// Tensor returns the info of the tensor called name.
func (f *File) Tensor(name string) (*TensorInfo, bool) {
	for i := range f.Tensors {
		if f.Tensors[i].Name == name {
			return &f.Tensors[i], true
		}
	}
	return nil, false
}

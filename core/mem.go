package core

import (
	"encoding/binary"
	"math"

	"github.com/tetratelabs/wazero/api"

	"github.com/realmrt/realm/abi"
	"github.com/realmrt/realm/gguf"
)

// Guest memory access. Every pointer/length pair a guest passes goes
// through these helpers: lengths are capped before anything is read,
// ranges are checked by wazero's Memory (u64 arithmetic, so ptr+len
// cannot wrap), and what they return is either a view valid only during
// the call or a copy.

// view returns n bytes at ptr without copying, valid only until the
// host function returns. n > max fails with E2BIG before any access.
func view(mem api.Memory, ptr, n uint32, max uint64, what string) ([]byte, error) {
	if uint64(n) > max {
		return nil, errf(abi.Errno2big, "%s: length %d exceeds the limit of %d", what, n, max)
	}
	b, ok := mem.Read(ptr, n)
	if !ok {
		return nil, errf(abi.ErrnoFault, "%s: range [%d, %d) is outside guest memory (%d bytes)", what, ptr, uint64(ptr)+uint64(n), mem.Size())
	}
	return b, nil
}

// readString copies a string argument.
func readString(mem api.Memory, ptr, n uint32, max uint64, what string) (string, error) {
	b, err := view(mem, ptr, n, max, what)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// viewWords returns the 4·n bytes of n 4-byte values at ptr without
// copying (the caller has capped n).
func viewWords(mem api.Memory, ptr, n uint32, what string) ([]byte, error) {
	nb := uint64(n) * 4
	if nb > math.MaxUint32 {
		return nil, errf(abi.ErrnoFault, "%s: %d values overflow guest memory", what, n)
	}
	b, ok := mem.Read(ptr, uint32(nb))
	if !ok {
		return nil, errf(abi.ErrnoFault, "%s: range [%d, %d) is outside guest memory (%d bytes)", what, ptr, uint64(ptr)+nb, mem.Size())
	}
	return b, nil
}

// readI32s copies n little-endian i32 values (n > max fails with E2BIG).
func readI32s(mem api.Memory, ptr, n uint32, max uint64, what string) ([]int32, error) {
	if uint64(n) > max {
		return nil, errf(abi.Errno2big, "%s: %d values exceed the limit of %d", what, n, max)
	}
	b, err := viewWords(mem, ptr, n, what)
	if err != nil {
		return nil, err
	}
	out := make([]int32, n)
	for i := range out {
		out[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out, nil
}

// readF32s copies n little-endian f32 values (n > max, the run's tensor
// budget, fails with ENOMEM).
func readF32s(mem api.Memory, ptr, n uint32, max uint64, what string) ([]float32, error) {
	if uint64(n) > max {
		return nil, errf(abi.ErrnoNomem, "%s: %d values exceed the run's tensor budget (%d left)", what, n, max)
	}
	b, err := viewWords(mem, ptr, n, what)
	if err != nil {
		return nil, err
	}
	out := make([]float32, n)
	if err := gguf.Dequantize(out, b, gguf.TypeF32); err != nil {
		return nil, errf(abi.ErrnoFault, "%s: %v", what, err)
	}
	return out, nil
}

// writeOut implements the snprintf convention for bytes: the result is
// len(data); data is written only when it fits in outCap.
func writeOut(mem api.Memory, ptr, outCap uint32, data []byte, what string) (int32, error) {
	if uint64(len(data)) > math.MaxInt32 {
		return 0, errf(abi.Errno2big, "%s: output of %d bytes is too large", what, len(data))
	}
	if uint64(len(data)) <= uint64(outCap) && len(data) > 0 {
		if !mem.Write(ptr, data) {
			return 0, errf(abi.ErrnoFault, "%s: output range [%d, %d) is outside guest memory (%d bytes)", what, ptr, uint64(ptr)+uint64(len(data)), mem.Size())
		}
	}
	return int32(len(data)), nil
}

// writeWords is writeOut for n 4-byte values, with outCap a count of
// values: encode (called only when they fit) returns their bytes; the
// result is n.
func writeWords(mem api.Memory, ptr, outCap uint32, n int, encode func() []byte, what string) (int32, error) {
	if n > math.MaxInt32/4 {
		return 0, errf(abi.Errno2big, "%s: %d values are too many", what, n)
	}
	if uint64(n) <= uint64(outCap) && n > 0 {
		b := encode()
		if !mem.Write(ptr, b) {
			return 0, errf(abi.ErrnoFault, "%s: output range [%d, %d) is outside guest memory (%d bytes)", what, ptr, uint64(ptr)+uint64(len(b)), mem.Size())
		}
	}
	return int32(n), nil
}

// writeI32s writes vals as little-endian i32 when len(vals) ≤ outCap
// (a count of values); the result is len(vals).
func writeI32s(mem api.Memory, ptr, outCap uint32, vals []int32, what string) (int32, error) {
	return writeWords(mem, ptr, outCap, len(vals), func() []byte {
		b := make([]byte, 4*len(vals))
		for i, v := range vals {
			binary.LittleEndian.PutUint32(b[4*i:], uint32(v))
		}
		return b
	}, what)
}

// writeF32s is writeI32s for f32 values.
func writeF32s(mem api.Memory, ptr, outCap uint32, vals []float32, what string) (int32, error) {
	return writeWords(mem, ptr, outCap, len(vals), func() []byte { return gguf.F32Bytes(vals) }, what)
}

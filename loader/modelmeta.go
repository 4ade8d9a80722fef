package loader

import (
	"fmt"
	"math"
	"os"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/gguf"
)

// readHeader reads the GGUF header (metadata and tensor infos, no tensor
// data) of the file at path. Errors wrap backends.ErrInvalidModel when the
// file is not a valid GGUF.
func readHeader(path string) (*gguf.File, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	meta, err := gguf.Read(f, st.Size())
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w: %w", path, backends.ErrInvalidModel, err)
	}
	return meta, st.Size(), nil
}

// describeFile returns the quantization name and architecture of the
// GGUF file at path.
func describeFile(path string) (typ, arch string, err error) {
	meta, _, err := readHeader(path)
	if err != nil {
		return "", "", err
	}
	arch, _ = meta.String("general.architecture")
	return quantName(meta), arch, nil
}

// quantName names the quantization of a model: general.file_type when it
// is set and known, otherwise the tensor type holding the most bytes.
func quantName(meta *gguf.File) string {
	if ft, ok := meta.Uint(gguf.KeyFileType); ok && ft <= math.MaxUint32 {
		if n, ok := gguf.FileType(ft).Name(); ok {
			return n
		}
	}
	return dominantType(meta)
}

// dominantType returns the tensor type holding the most bytes ("" when
// the file has no tensors).
func dominantType(meta *gguf.File) string {
	bytes := map[gguf.Type]int64{}
	for i := range meta.Tensors {
		if n := meta.Tensors[i].Bytes(); n > 0 {
			bytes[meta.Tensors[i].Type] += n
		}
	}
	var best gguf.Type
	var bestN int64 = -1
	for t, n := range bytes {
		if n > bestN || n == bestN && t < best {
			best, bestN = t, n
		}
	}
	if bestN < 0 {
		return ""
	}
	return best.String()
}

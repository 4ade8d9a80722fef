package loader

import (
	"fmt"
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

// fileTypeNames names the values of general.file_type (llama.cpp's
// llama_ftype) that this project can load.
func fileTypeNames() map[uint64]string {
	return map[uint64]string{
		0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1",
		10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S",
		15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K", 21: "Q2_K_S", 32: "BF16",
	}
}

// quantName names the quantization of a model: general.file_type when it
// is set and known, otherwise the tensor type holding the most bytes.
func quantName(meta *gguf.File) string {
	if ft, ok := meta.Uint("general.file_type"); ok {
		if n, ok := fileTypeNames()[ft]; ok {
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

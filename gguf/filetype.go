package gguf

import "strconv"

// KeyFileType is the metadata key that records a file's FileType.
const KeyFileType = "general.file_type"

// FileType is the value of general.file_type: llama.cpp's llama_ftype,
// the quantization mix a file was made with (its dominant tensor type,
// and for the _S/_M/_L mixes which tensors get more bits).
type FileType uint32

// File types whose names this package knows (llama.cpp's numbering; the
// gaps are types llama.cpp retired).
const (
	FileTypeF32    FileType = 0
	FileTypeF16    FileType = 1
	FileTypeQ4_0   FileType = 2
	FileTypeQ4_1   FileType = 3
	FileTypeQ8_0   FileType = 7
	FileTypeQ5_0   FileType = 8
	FileTypeQ5_1   FileType = 9
	FileTypeQ2_K   FileType = 10
	FileTypeQ3_K_S FileType = 11
	FileTypeQ3_K_M FileType = 12
	FileTypeQ3_K_L FileType = 13
	FileTypeQ4_K_S FileType = 14
	FileTypeQ4_K_M FileType = 15
	FileTypeQ5_K_S FileType = 16
	FileTypeQ5_K_M FileType = 17
	FileTypeQ6_K   FileType = 18
	FileTypeQ2_K_S FileType = 21
	FileTypeIQ4_NL FileType = 25
	FileTypeIQ4_XS FileType = 30
	FileTypeBF16   FileType = 32
)

// Name returns the file type's name as llama.cpp prints it ("Q4_K_M"),
// and false for a value this package does not know.
func (f FileType) Name() (string, bool) {
	switch f {
	case FileTypeF32:
		return "F32", true
	case FileTypeF16:
		return "F16", true
	case FileTypeQ4_0:
		return "Q4_0", true
	case FileTypeQ4_1:
		return "Q4_1", true
	case FileTypeQ8_0:
		return "Q8_0", true
	case FileTypeQ5_0:
		return "Q5_0", true
	case FileTypeQ5_1:
		return "Q5_1", true
	case FileTypeQ2_K:
		return "Q2_K", true
	case FileTypeQ3_K_S:
		return "Q3_K_S", true
	case FileTypeQ3_K_M:
		return "Q3_K_M", true
	case FileTypeQ3_K_L:
		return "Q3_K_L", true
	case FileTypeQ4_K_S:
		return "Q4_K_S", true
	case FileTypeQ4_K_M:
		return "Q4_K_M", true
	case FileTypeQ5_K_S:
		return "Q5_K_S", true
	case FileTypeQ5_K_M:
		return "Q5_K_M", true
	case FileTypeQ6_K:
		return "Q6_K", true
	case FileTypeQ2_K_S:
		return "Q2_K_S", true
	case FileTypeIQ4_NL:
		return "IQ4_NL", true
	case FileTypeIQ4_XS:
		return "IQ4_XS", true
	case FileTypeBF16:
		return "BF16", true
	}
	return "", false
}

// String returns the name, or "FileType(N)" for an unknown value.
func (f FileType) String() string {
	if n, ok := f.Name(); ok {
		return n
	}
	return "FileType(" + strconv.FormatUint(uint64(f), 10) + ")"
}

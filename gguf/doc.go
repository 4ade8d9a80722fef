// Package gguf reads and writes GGUF model files (versions 2 and 3) and
// converts between float32 and the ggml tensor types.
//
// Read parses the header, metadata and tensor infos from any io.ReaderAt
// under hard limits (see Limits); Open maps a file read-only and serves
// tensor data as slices of the mapping. Dequantize and Quantize convert
// rows of tensor data; Write streams a new file tensor by tensor.
package gguf

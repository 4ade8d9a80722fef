package gguf

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// Mapped is a GGUF file mapped read-only into memory. Tensor data is
// served as slices of the mapping, so opening a model costs no copying
// and the page cache is shared between processes.
type Mapped struct {
	*File
	path   string
	data   []byte
	mapped bool // data came from mmap (else from a read)
	once   sync.Once
	err    error
}

// Open maps the GGUF file at path read-only and parses its header. When
// the file cannot be mapped (for example on a filesystem without mmap
// support) it is read into memory instead.
func Open(path string) (*Mapped, error) {
	// O_NONBLOCK: opening a FIFO (or a device) must not wait for a
	// writer; such files are refused below. Regular files ignore it.
	fh, err := os.OpenFile(path, os.O_RDONLY|openNonblock, 0)
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	size := st.Size()
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("gguf: %s is not a regular file", path)
	}
	if int64(int(size)) != size {
		return nil, fmt.Errorf("gguf: %s: %d bytes is too large to map", path, size)
	}
	m := &Mapped{path: path}
	if size > 0 {
		data, merr := mmapFile(fh, int(size))
		if merr == nil {
			m.data, m.mapped = data, true
		} else {
			data := make([]byte, size)
			if _, err := io.ReadFull(fh, data); err != nil {
				return nil, fmt.Errorf("gguf: %s: mmap failed (%v) and reading failed: %w", path, merr, err)
			}
			m.data = data
		}
	}
	f, err := Read(bytes.NewReader(m.data), size)
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("gguf: %s: %w", path, err)
	}
	m.File = f
	return m, nil
}

// Path returns the path the file was opened from.
func (m *Mapped) Path() string { return m.path }

// Bytes returns the whole file contents. The slice is read-only and
// becomes invalid after Close.
func (m *Mapped) Bytes() []byte { return m.data }

// TensorData returns the data of ti as a read-only slice of the mapping,
// valid until Close. ti must describe a tensor of this file.
func (m *Mapped) TensorData(ti *TensorInfo) ([]byte, error) {
	if m.data == nil {
		return nil, errors.New("gguf: TensorData on a closed or empty file")
	}
	n, err := ti.size()
	if err != nil {
		return nil, fmt.Errorf("gguf: tensor %q: %w", ti.Name, err)
	}
	start := m.DataOffset + ti.Offset
	if ti.Offset < 0 || start < m.DataOffset || start > int64(len(m.data)) || n > int64(len(m.data))-start {
		return nil, fmt.Errorf("gguf: tensor %q: data [%d, +%d) lies outside the %d-byte file", ti.Name, start, n, len(m.data))
	}
	return m.data[start : start+n : start+n], nil
}

// Close unmaps the file. Slices returned by TensorData must not be used
// afterwards. Calling Close more than once is allowed.
func (m *Mapped) Close() error {
	m.once.Do(func() {
		if m.mapped {
			if err := munmap(m.data); err != nil {
				m.err = fmt.Errorf("gguf: munmap %s: %w", m.path, err)
			}
		}
		m.data = nil
	})
	return m.err
}

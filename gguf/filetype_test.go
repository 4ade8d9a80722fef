package gguf

import "testing"

func TestFileTypeNames(t *testing.T) {
	for _, c := range []struct {
		ft   FileType
		name string
		ok   bool
	}{
		{FileTypeF32, "F32", true}, {FileTypeQ4_K_M, "Q4_K_M", true}, {FileTypeBF16, "BF16", true},
		{FileTypeQ2_K_S, "Q2_K_S", true}, {4, "FileType(4)", false}, {1000, "FileType(1000)", false},
	} {
		n, ok := c.ft.Name()
		if ok != c.ok || c.ft.String() != c.name || ok && n != c.name {
			t.Errorf("FileType(%d): Name() = %q, %v; String() = %q; want %q, %v", uint32(c.ft), n, ok, c.ft.String(), c.name, c.ok)
		}
	}
}

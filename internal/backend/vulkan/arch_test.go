//go:build cgo && vulkan_headers

package vulkan

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/gguf"
	"github.com/realmrt/realm/internal/backend/reference"
	"github.com/realmrt/realm/internal/engine"
	"github.com/realmrt/realm/internal/refdata"
)

// TestCheckGraph checks that the vulkan backend accepts the plain llama
// graph and refuses the other architectures naming the ops it lacks.
func TestCheckGraph(t *testing.T) {
	root, err := refdata.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		arch string
		want string // "" = accepted; else a substring of the error
	}{
		{"llama", ""},
		{"llama3", "rope_ext"},
		{"mixtral", "moe"},
		{"qwen2", "add_row"},
		{"qwen3", "rope_ext"},
		{"gemma2", "attention_softcap"},
		{"gemma3", "gelu_mul"},
		{"phi3", "split_columns"},
	}
	for _, tc := range tests {
		t.Run(tc.arch, func(t *testing.T) {
			f, err := gguf.Open(filepath.Join(root, "testdata", "arch", tc.arch+".gguf"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			m, err := engine.NewModel(f.File, f.TensorData, reference.New(), supportedType)
			if err != nil {
				t.Fatal(err)
			}
			err = checkGraph(m)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (!errors.Is(err, backends.ErrUnsupported) || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want ErrUnsupported naming %s", err, tc.want)
			}
			if err != nil {
				t.Log(err)
			}
		})
	}
}

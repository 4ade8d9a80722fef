package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestGeneratedUpToDate regenerates every file in memory and compares
// it with the committed one: it fails when someone edits a generated
// file by hand or changes abi.Functions without `go generate ./abi`.
func TestGeneratedUpToDate(t *testing.T) {
	for _, o := range outputs {
		want, err := o.gen()
		if err != nil {
			t.Fatalf("%s: %v", o.path, err)
		}
		got, err := os.ReadFile(filepath.Join("..", "..", o.path))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("abi/%s is not what abi/internal/abigen writes: run `go generate ./abi`", o.path)
		}
	}
}

func TestGoName(t *testing.T) {
	for in, want := range map[string]string{"load_model_by_name": "LoadModelByName", "n_ids": "NIDs", "out_ptr": "OutPtr"} {
		if got := goName(in); got != want {
			t.Errorf("goName(%q) = %q, want %q", in, got, want)
		}
	}
}

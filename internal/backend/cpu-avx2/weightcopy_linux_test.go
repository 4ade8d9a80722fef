//go:build linux && amd64

package cpuavx2

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"testing"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/internal/engine"
	"github.com/realmrt/realm/internal/refdata"
)

// procStatus returns the number of mappings of this process and its
// VmRSS in bytes.
func procStatus(t *testing.T) (maps int, rss uint64) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	maps = bytes.Count(b, []byte("\n"))
	s, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range bytes.Lines(s) {
		f := bytes.Fields(line)
		if len(f) >= 2 && string(f[0]) == "VmRSS:" {
			n, err := strconv.ParseUint(string(f[1]), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return maps, n << 10
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0, 0
}

// TestWeightCopy loads the stories260K models through the engine with
// the weights copied into huge-page memory and with them left in the
// file mapping: the greedy ids must be equal (and equal llama.cpp's on
// the F32 file), the copy must be reported in ExtraBytes, and loading
// and unloading 20 times must not leak mappings or memory.
func TestWeightCopy(t *testing.T) {
	ctx := context.Background()
	for _, name := range []string{"stories260K", "stories260K-Q8_0", "stories260K-Q4_0"} {
		t.Run(name, func(t *testing.T) {
			out, err := refdata.LoadOutput(name + ".once-upon")
			if err != nil {
				t.Fatal(err)
			}
			path, err := refdata.Path("models", name+".gguf")
			if err != nil {
				t.Fatal(err)
			}
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			run := func(noCopy bool) ([]int32, uint64) {
				k, err := NewWithOptions(Options{Threads: 2, NoWeightCopy: noCopy})
				if err != nil {
					t.Fatal(err)
				}
				defer k.(*Kernels).Close()
				be := engine.NewBackend(k, engine.Options{Name: Name, Threads: 2})
				mi, err := be.LoadModel(ctx, backends.LoadRequest{Path: path})
				if err != nil {
					t.Fatal(err)
				}
				extra := mi.ExtraBytes
				if err := be.UnloadModel(ctx, mi.ID); err != nil {
					t.Fatal(err)
				}
				ids, _ := greedy(t, be, path, out.PromptIDs, len(out.GenIDs))
				return ids, extra
			}
			mapped, extraMapped := run(true)
			copied, extraCopied := run(false)
			if name == "stories260K" {
				for i := range out.GenIDs {
					if mapped[i] != out.GenIDs[i] {
						t.Fatalf("mapped: token %d = %d, want %d", i, mapped[i], out.GenIDs[i])
					}
				}
			}
			for i := range mapped {
				if copied[i] != mapped[i] {
					t.Fatalf("copied: token %d = %d, mapped path %d\ncopied %v\nmapped %v", i, copied[i], mapped[i], copied, mapped)
				}
			}
			// The copy holds the matrices: most of the file, page-rounded
			// to whole huge pages.
			if d := extraCopied - extraMapped; extraCopied < extraMapped || d < uint64(st.Size())/2 || d%hugePageBytes != 0 {
				t.Fatalf("ExtraBytes %d with the copy, %d without (file %d bytes)", extraCopied, extraMapped, st.Size())
			}

			k, err := NewWithOptions(Options{Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer k.(*Kernels).Close()
			be := engine.NewBackend(k, engine.Options{Name: Name, Threads: 1})
			cycle := func() {
				mi, err := be.LoadModel(ctx, backends.LoadRequest{Path: path})
				if err != nil {
					t.Fatal(err)
				}
				if mi.ExtraBytes != extraCopied {
					t.Fatalf("ExtraBytes %d, want %d", mi.ExtraBytes, extraCopied)
				}
				if err := be.UnloadModel(ctx, mi.ID); err != nil {
					t.Fatal(err)
				}
			}
			cycle()
			maps0, rss0 := procStatus(t)
			for range 20 {
				cycle()
			}
			maps1, rss1 := procStatus(t)
			// A leak adds a mapping per cycle (20); the Go runtime's own
			// mappings vary by a few between two readings.
			if maps1 > maps0+10 {
				t.Errorf("%d mappings after 20 load/unload cycles, %d before", maps1, maps0)
			}
			if rss1 > rss0+10*extraCopied+(8<<20) {
				t.Errorf("VmRSS %d after 20 load/unload cycles, %d before (copy %d bytes)", rss1, rss0, extraCopied)
			}
			t.Logf("copy %d bytes; mappings %d → %d, VmRSS %d → %d kB", extraCopied, maps0, maps1, rss0>>10, rss1>>10)
		})
	}
}

//go:build linux && amd64

package cpuavx2

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/realmrt/realm/gguf"
	"github.com/realmrt/realm/internal/engine"
)

// BenchmarkModelStream multiplies one activation row by every block
// weight of -model (what one generated token streams), from the mapping,
// from an anonymous huge-page copy and from a copy in the packed layout,
// and reports GB/s of weights per thread-CPU-second on one thread; and
// over the packed copy on -threads threads, GB/s of wall time. The mapped figure depends on the
// page-cache folios backing the file (see RATIONALE: pages cached when
// the file was written are 4 KiB; read back by mmap readahead they are
// large folios mapped by PMD entries).
func BenchmarkModelStream(b *testing.B) {
	if *benchModel == "" {
		b.Skip("no -model given")
	}
	m, err := gguf.Open(*benchModel)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	var ws []*engine.Weight
	total := 0
	for i := range m.Tensors {
		ti := &m.Tensors[i]
		if len(ti.Dims) != 2 || !strings.HasPrefix(ti.Name, "blk.") {
			continue
		}
		data, err := m.TensorData(ti)
		if err != nil {
			b.Fatal(err)
		}
		ws = append(ws, &engine.Weight{Name: ti.Name, Type: ti.Type, Rows: int(ti.Dims[1]), Cols: int(ti.Dims[0]), Data: data})
		total += len(data)
	}
	k := benchKernels(b, 1, true)
	heap := hugeAnon(b, total+(2<<20))
	hws := make([]*engine.Weight, len(ws))
	off := 0
	for i, w := range ws {
		c := *w
		c.Data = heap[off : off+len(w.Data)]
		copy(c.Data, w.Data)
		off += (len(w.Data) + 63) &^ 63
		hws[i] = &c
	}
	// The same copies in the packed layout the plugin uses with VNNI,
	// also in huge pages.
	pheap := hugeAnon(b, total+(2<<20))
	pws := make([]*engine.Weight, len(hws))
	off = 0
	for i, w := range hws {
		c := *w
		c.Data = pheap[off : off+len(w.Data)]
		off += (len(w.Data) + 63) &^ 63
		if k.repack && packable(w) {
			packRows(c.Data, w.Data, w.Type, w.Rows, w.Cols)
			c.Layout = layoutP16
		} else {
			copy(c.Data, w.Data)
		}
		pws[i] = &c
	}
	x := make([]float32, 8192)
	for i := range x {
		x[i] = float32(i%13) - 6
	}
	out := make([]float32, 8192)
	// Generation's configuration: the packed copies on -threads threads,
	// GB/s of weights per second of wall time.
	b.Run(fmt.Sprintf("packed/threads=%d", *benchThreads), func(b *testing.B) {
		kt := benchKernels(b, *benchThreads, true)
		for b.Loop() {
			for _, w := range pws {
				x[0] += 1e-3
				kt.MatMul(out, w, x[:w.Cols], 1)
			}
		}
		b.ReportMetric(float64(total)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
	})
	for _, c := range []struct {
		name string
		ws   []*engine.Weight
	}{{"mapped", ws}, {"anon", hws}, {"packed", pws}} {
		b.Run(c.name, func(b *testing.B) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			var cpu time.Duration
			for b.Loop() {
				t0 := threadCPU()
				for _, w := range c.ws {
					x[0] += 1e-3 // defeat the requantization skip
					k.MatMul(out, w, x[:w.Cols], 1)
				}
				cpu += threadCPU() - t0
			}
			b.ReportMetric(float64(total)*float64(b.N)/cpu.Seconds()/1e9, "cpu-GB/s")
		})
	}
}

// hugeAnon maps n bytes of anonymous memory advised for transparent huge
// pages, unmapped when b ends.
func hugeAnon(b *testing.B, n int) []byte {
	m, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = unix.Munmap(m) })
	_ = unix.Madvise(m, unix.MADV_HUGEPAGE)
	return m
}

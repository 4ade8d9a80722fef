//go:build linux && amd64

package cpuavx2

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/realmrt/realm/internal/engine"
)

// hugePageBytes is the size (and alignment) of a transparent huge page.
const hugePageBytes = 2 << 20

var _ engine.WeightPreparer = (*Kernels)(nil)

// PrepareWeights copies the matrix weights into one anonymous mapping
// advised for transparent huge pages, in the background: the load
// returns at once and the model serves from the file mapping until the
// copy is complete, when swap points each Weight's Data at its copy
// between two passes; release stops the copy and unmaps it.
//
// Why: generation streams every weight once per token. From the model's
// 4 KiB page-cache pages one core streams ~10.4 GB/s on this machine
// (page walks and TLB misses); from 2 MiB pages ~14.3 GB/s. The pages
// of the file mapping the copy was read from are then dropped from this
// process (madvise MADV_DONTNEED on the read-only file mapping: they
// stay in the page cache, reclaimable, and refault if read), so the
// weights are resident once.
//
// Why in the background: the copy needs fresh memory for the whole
// model, and fresh memory is slow to fault in (zeroing; in a VM, pages
// the hypervisor took back: 0.3–1.2 s for 600 MB here), while a model
// served from its mapping starts at once on a warm page cache — the
// time to the first token was 2.7× llama.cpp's with the copy made
// before the load returned. The copy runs on one goroutine at a lower
// scheduling priority, so passes keep the cores, and only after the
// model's first pass (Q8_0 TinyLlama: first token 170–900 ms with the
// copy beside it, 100–120 ms without).
//
// With VNNI, Q4_0 and Q8_0 matrices (and Q4_K and Q6_K without AMX) are written in the packed 16-row
// layout of the matrix–vector kernels (see layoutP16) as they are
// copied, unless Options.NoRepack.
//
// Nothing is copied (swap(nil), release nil, 0 bytes) with
// Options.NoWeightCopy, or when the weights would take more than half
// of MemAvailable.
func (k *Kernels) PrepareWeights(ws []*engine.Weight, p engine.Placement) (release func(), extraBytes uint64, err error) {
	swap := p.Swap
	if k.noWeightCopy || len(ws) == 0 {
		swap(nil)
		return nil, 0, nil
	}
	const pageBytes = 4096
	offs := make([]int, len(ws))
	total := 0
	for i, w := range ws {
		offs[i] = total
		total += (len(w.Data) + pageBytes - 1) &^ (pageBytes - 1)
	}
	if total == 0 {
		swap(nil)
		return nil, 0, nil
	}
	if avail, ok := memAvailable(); !ok || uint64(total) > avail/2 {
		swap(nil)
		return nil, 0, nil
	}
	size := (total + hugePageBytes - 1) &^ (hugePageBytes - 1)
	mem, err := unix.Mmap(-1, 0, size+hugePageBytes, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, 0, fmt.Errorf("cpuavx2: map %d bytes for the weights: %w", size, err)
	}
	base := uintptr(unsafe.Pointer(unsafe.SliceData(mem)))
	skip := int((hugePageBytes - base%hugePageBytes) % hugePageBytes)
	buf := mem[skip : skip+size]
	// A hint: without THP (an old kernel, "never") the copy still works.
	_ = unix.Madvise(buf, unix.MADV_HUGEPAGE)

	// What the copy reads, taken now: the Weights change only in apply.
	type job struct {
		src, dst []byte
		layout   uint8
		w        *engine.Weight
	}
	jobs := make([]job, len(ws))
	for i, w := range ws {
		jobs[i] = job{src: w.Data, dst: buf[offs[i] : offs[i]+len(w.Data) : offs[i]+len(w.Data)], w: w}
		if k.packs(w) {
			jobs[i].layout = layoutP16
		}
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		// The copy faults in fresh memory, slow enough (in a VM above
		// all) to double the first token's time if it runs beside it:
		// it starts once the first pass has ended, or after
		// copyStartWait if none comes.
		t := time.NewTimer(copyStartWait)
		defer t.Stop()
		select {
		case <-stop:
			return
		case <-p.FirstPass:
		case <-t.C:
		}
		lowerPriority()
		for i := range jobs {
			select {
			case <-stop:
				return
			default:
			}
			j := &jobs[i]
			if j.layout == layoutP16 {
				packRows(j.dst, j.src, j.w.Type, j.w.Rows, j.w.Cols)
			} else {
				copy(j.dst, j.src)
			}
		}
		// The weights are read-only from now on.
		_ = unix.Mprotect(mem, unix.PROT_READ)
		swap(func() {
			for i := range jobs {
				jobs[i].w.Data, jobs[i].w.Layout = jobs[i].dst, jobs[i].layout
			}
		})
		files := fileMappings()
		for i := range jobs {
			dropFilePages(jobs[i].src, files)
		}
	}()
	return func() {
		close(stop)
		<-done
		_ = unix.Munmap(mem)
	}, uint64(size), nil
}

// copyStartWait is how long the background copy waits for the model's
// first pass before it starts anyway.
const copyStartWait = 500 * time.Millisecond

// lowerPriority makes the calling goroutine's thread (locked to it
// until the goroutine ends) a background thread: nice 10, so that the
// pool's threads keep the cores while requests run.
func lowerPriority() {
	runtime.LockOSThread()
	_ = unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), 10)
}

// dropFilePages removes the whole pages of data from this process's
// resident set when data lies in a read-only file mapping (one of
// files); the page cache keeps them, and a later read refaults them.
// Other memory (the Go heap, anonymous or writable mappings) is left
// alone, since MADV_DONTNEED would discard its contents.
func dropFilePages(data []byte, files [][2]uintptr) {
	if len(data) == 0 {
		return
	}
	p := uintptr(unsafe.Pointer(unsafe.SliceData(data)))
	e := p + uintptr(len(data))
	pg := uintptr(os.Getpagesize())
	lo, hi := (p+pg-1)&^(pg-1), e&^(pg-1)
	if hi <= lo {
		return
	}
	for _, r := range files {
		if p >= r[0] && e <= r[1] {
			_, _, _ = unix.Syscall(unix.SYS_MADVISE, lo, hi-lo, unix.MADV_DONTNEED)
			return
		}
	}
}

// fileMappings lists the read-only, file-backed mappings of this
// process.
func fileMappings() [][2]uintptr {
	var out [][2]uintptr
	for _, m := range readMappings() {
		if m.file {
			out = append(out, [2]uintptr{m.lo, m.hi})
		}
	}
	return out
}

// memAvailable returns MemAvailable from /proc/meminfo in bytes.
func memAvailable() (uint64, bool) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	for line := range bytes.Lines(b) {
		f := bytes.Fields(line)
		if len(f) >= 2 && string(f[0]) == "MemAvailable:" {
			n, err := strconv.ParseUint(string(f[1]), 10, 64)
			if err != nil {
				return 0, false
			}
			return n << 10, true
		}
	}
	return 0, false
}

//go:build linux && amd64

package cpuavx2

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// adviseMinBytes is the smallest weight whose mapping is advised: below
// it the data is most likely on the Go heap (tests, small models).
const adviseMinBytes = 1 << 20

// hugeAdvisor asks the kernel to back read-only file mappings that hold
// weights (the memory-mapped model) with transparent huge pages
// (madvise MADV_HUGEPAGE on the whole mapping, once per mapping).
//
// Why: a token streams every weight once; from 4 KiB page-cache pages
// the page walks cap one core at ~10.4 GB/s on this machine, from 2 MiB
// folios it reaches ~13.4 GB/s (an anonymous huge-page copy: 14.3). On
// Linux ≥ 6.x with large-folio file systems (ext4, xfs, tmpfs) the hint
// makes the faults read the file in PMD-sized folios and map them with
// one PMD entry. Pages already cached in small folios stay small (until
// evicted), so the hint helps from the first read of a file onwards.
// The advice changes no data and retains no slice: only address ranges
// are remembered, so a later mapping at a remembered address merely
// misses the hint.
type hugeAdvisor struct {
	done [][2]uintptr // mappings already advised (or rejected)
}

// advise applies the hint to the mapping holding data, if data is a
// large slice of a read-only file mapping not advised yet.
func (h *hugeAdvisor) advise(data []byte) {
	if len(data) < adviseMinBytes {
		return
	}
	p := uintptr(unsafe.Pointer(unsafe.SliceData(data)))
	for _, r := range h.done {
		if p >= r[0] && p < r[1] {
			return
		}
	}
	lo, hi, file, ok := findMapping(p)
	if !ok {
		return
	}
	if len(h.done) >= 256 {
		h.done = h.done[:0]
	}
	h.done = append(h.done, [2]uintptr{lo, hi})
	if !file {
		return
	}
	// A hint: failure (an old kernel, THP disabled) changes nothing.
	_, _, _ = unix.Syscall(unix.SYS_MADVISE, lo, hi-lo, unix.MADV_HUGEPAGE)
}

// mapping is one line of /proc/self/maps: its bounds, and whether it is
// a read-only, file-backed mapping.
type mapping struct {
	lo, hi uintptr
	file   bool
}

// readMappings lists this process's mappings (nil if /proc is
// unreadable).
func readMappings() []mapping {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []mapping
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// start-end perms offset dev inode [path]
		fields := bytes.Fields(sc.Bytes())
		if len(fields) < 5 {
			continue
		}
		dash := bytes.IndexByte(fields[0], '-')
		if dash < 0 {
			continue
		}
		s, err1 := strconv.ParseUint(string(fields[0][:dash]), 16, 64)
		e, err2 := strconv.ParseUint(string(fields[0][dash+1:]), 16, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		perms := fields[1]
		file := len(fields) >= 6 && string(fields[4]) != "0" && len(perms) >= 2 && perms[1] == '-' && fields[5][0] == '/'
		out = append(out, mapping{uintptr(s), uintptr(e), file})
	}
	return out
}

// findMapping returns the bounds of the mapping containing p and
// whether it is a read-only, file-backed mapping.
func findMapping(p uintptr) (lo, hi uintptr, file, ok bool) {
	for _, m := range readMappings() {
		if p >= m.lo && p < m.hi {
			return m.lo, m.hi, m.file, true
		}
	}
	return 0, 0, false, false
}

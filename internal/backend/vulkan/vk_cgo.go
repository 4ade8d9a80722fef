//go:build cgo && vulkan_headers

package vulkan

/*
#cgo LDFLAGS: -ldl
#include <stdlib.h>
#include "shim.h"

// The vulkan_headers tag says the Vulkan headers are installed (the
// Makefile sets it when it finds them); it is part of the build cache
// key, so a build made before they were installed is never reused after.
#if defined(__has_include)
#if !__has_include(<vulkan/vulkan.h>)
#error "built with -tags vulkan_headers, but <vulkan/vulkan.h> is missing: install the Vulkan headers (Debian: libvulkan-dev) or build without the tag"
#endif
#endif
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/realmrt/realm/backends"
)

// vkResult turns a shim result code into an error (nil on success).
func vkResult(what string, r C.int) error {
	switch r {
	case C.RV_OK:
		return nil
	case C.RV_ERR_NOLOADER:
		return fmt.Errorf("vulkan: %s: no usable Vulkan loader", what)
	case C.RV_ERR_NOMEMTYPE:
		return fmt.Errorf("vulkan: %s: no suitable memory type: %w", what, backends.ErrOutOfMemory)
	case C.RV_ERR_POOL:
		return fmt.Errorf("vulkan: %s: %w", what, errPoolFull)
	case C.RV_ERR_TIMEOUT:
		return fmt.Errorf("vulkan: %s: %w", what, errTimeout)
	case C.RV_ERR_ARG:
		return fmt.Errorf("vulkan: %s: invalid argument to the shim", what)
	case -1, -2: // VK_ERROR_OUT_OF_HOST_MEMORY, VK_ERROR_OUT_OF_DEVICE_MEMORY
		return fmt.Errorf("vulkan: %s: VkResult %d: %w", what, int(r), backends.ErrOutOfMemory)
	case -4: // VK_ERROR_DEVICE_LOST
		return fmt.Errorf("vulkan: %s: %w", what, errDeviceLost)
	}
	return fmt.Errorf("vulkan: %s: VkResult %d", what, int(r))
}

var (
	errPoolFull = errors.New("descriptor pool exhausted")
	errTimeout  = errors.New("device did not finish in time")
	// errDeviceLost is VK_ERROR_DEVICE_LOST.
	errDeviceLost = errors.New("device lost")
)

// instance is a Vulkan instance over the dlopen'ed loader.
type instance struct{ c *C.rv_ctx }

// newInstance opens the Vulkan loader and creates an instance.
func newInstance() (*instance, error) {
	var c *C.rv_ctx
	var buf [512]C.char
	if r := C.rv_init(&c, &buf[0], C.int(len(buf))); r != C.RV_OK {
		return nil, fmt.Errorf("vulkan: %s", C.GoString(&buf[0]))
	}
	return &instance{c: c}, nil
}

func (in *instance) close() { C.rv_free(in.c) }

// devices describes the physical devices of the instance.
func (in *instance) devices() []DeviceInfo {
	n := int(C.rv_device_count(in.c))
	out := make([]DeviceInfo, 0, n)
	for i := 0; i < n; i++ {
		var d C.rv_devinfo
		if C.rv_device_info(in.c, C.int(i), &d) != C.RV_OK {
			continue
		}
		di := DeviceInfo{
			Index:           i,
			Name:            C.GoString(&d.name[0]),
			Kind:            deviceKind(int(d._type)),
			DriverName:      C.GoString(&d.driver_name[0]),
			DriverInfo:      C.GoString(&d.driver_info[0]),
			APIVersion:      apiVersion(uint32(d.api_version)),
			VendorID:        uint32(d.vendor_id),
			DeviceLocal:     uint64(d.device_local_bytes),
			SubgroupSize:    int(d.subgroup_size),
			FP16:            d.fp16 != 0,
			Int8:            d.int8 != 0,
			Storage16:       d.storage16 != 0,
			Compute:         d.has_compute != 0,
			MaxStorageRange: uint64(d.max_storage_range),
			MaxAlloc:        uint64(d.max_alloc),
			MaxShared:       int(d.max_shared),
			MaxGroups:       [3]uint32{uint32(d.max_wg_count[0]), uint32(d.max_wg_count[1]), uint32(d.max_wg_count[2])},
			MinStorageAlign: uint64(d.min_storage_align),
			MaxPush:         int(d.max_push),
		}
		for h := 0; h < int(d.heap_count); h++ {
			di.Heaps = append(di.Heaps, Heap{Bytes: uint64(d.heap_bytes[h]), DeviceLocal: d.heap_flags[h]&1 != 0})
		}
		out = append(out, di)
	}
	return out
}

// apiVersion formats a packed Vulkan version.
func apiVersion(v uint32) string {
	return fmt.Sprintf("%d.%d.%d", (v>>22)&0x7f, (v>>12)&0x3ff, v&0xfff)
}

// deviceKind names a VkPhysicalDeviceType.
func deviceKind(t int) string {
	switch t {
	case 1:
		return "integrated"
	case 2:
		return "discrete"
	case 3:
		return "virtual"
	case 4:
		return "cpu"
	}
	return "other"
}

// vkdev is an opened logical device with one compute queue.
type vkdev struct{ d *C.rv_dev }

func (in *instance) open(idx int) (*vkdev, error) {
	var d *C.rv_dev
	var buf [512]C.char
	if r := C.rv_dev_open(in.c, C.int(idx), &d, &buf[0], C.int(len(buf))); r != C.RV_OK {
		return nil, fmt.Errorf("vulkan: open device %d: %s", idx, C.GoString(&buf[0]))
	}
	return &vkdev{d: d}, nil
}

func (v *vkdev) close() { C.rv_dev_close(v.d) }

// buffer is a device buffer; mapped is its host view when it has one.
type buffer struct {
	p      *C.rv_buf
	size   uint64
	mapped []byte
	host   bool // allocated host-visible (newBuffer's host)
}

func (v *vkdev) newBuffer(size uint64, host bool) (*buffer, error) {
	var b *C.rv_buf
	h := C.int(0)
	if host {
		h = 1
	}
	if r := C.rv_buf_create(v.d, C.uint64_t(size), h, &b); r != C.RV_OK {
		return nil, vkResult(fmt.Sprintf("allocate %d bytes", size), r)
	}
	buf := &buffer{p: b, size: size, host: host}
	if m := C.rv_buf_map(b); m != nil {
		buf.mapped = unsafe.Slice((*byte)(m), int(size))
	}
	return buf, nil
}

func (v *vkdev) freeBuffer(b *buffer) {
	if b != nil && b.p != nil {
		C.rv_buf_destroy(v.d, b.p)
		b.p, b.mapped = nil, nil
	}
}

// pipeline is a compute pipeline with its binding count and push size.
type pipeline struct {
	p     *C.rv_pipe
	nbind int
	push  int // bytes
}

func (v *vkdev) newPipeline(spirv []byte, nbind, push int) (*pipeline, error) {
	if len(spirv)%4 != 0 || len(spirv) == 0 {
		return nil, fmt.Errorf("vulkan: SPIR-V of %d bytes is not a word stream", len(spirv))
	}
	code := C.malloc(C.size_t(len(spirv)))
	defer C.free(code)
	copy(unsafe.Slice((*byte)(code), len(spirv)), spirv)
	var p *C.rv_pipe
	if r := C.rv_pipe_create(v.d, (*C.uint32_t)(code), C.size_t(len(spirv)), C.int(nbind), C.int(push), &p); r != C.RV_OK {
		return nil, vkResult("create pipeline", r)
	}
	return &pipeline{p: p, nbind: nbind, push: push}, nil
}

func (v *vkdev) freePipeline(p *pipeline) { C.rv_pipe_destroy(v.d, p.p) }

func (v *vkdev) begin() error { return vkResult("begin command buffer", C.rv_begin(v.d)) }

func (v *vkdev) dispatch(p *pipeline, bufs []*buffer, push []uint32, gx, gy uint32) error {
	if len(bufs) != p.nbind || 4*len(push) != p.push {
		return fmt.Errorf("vulkan: dispatch with %d buffers and %d push bytes, pipeline wants %d and %d", len(bufs), 4*len(push), p.nbind, p.push)
	}
	var cb [8]*C.rv_buf
	for i, b := range bufs {
		cb[i] = b.p
	}
	var pp unsafe.Pointer
	if len(push) > 0 {
		pp = unsafe.Pointer(&push[0])
	}
	return vkResult("dispatch", C.rv_dispatch(v.d, p.p, &cb[0], C.int(len(bufs)), pp, C.int(4*len(push)), C.uint32_t(gx), C.uint32_t(gy), 1))
}

func (v *vkdev) copyBuffer(src *buffer, soff uint64, dst *buffer, doff, size uint64) error {
	return vkResult("copy", C.rv_copy(v.d, src.p, C.uint64_t(soff), dst.p, C.uint64_t(doff), C.uint64_t(size)))
}

func (v *vkdev) submit(timeoutMS uint64) error {
	return vkResult("submit", C.rv_submit(v.d, C.uint64_t(timeoutMS)))
}

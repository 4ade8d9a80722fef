package vulkan

import (
	"embed"
	"fmt"
	"strings"

	"github.com/realmrt/realm/backends"
)

// spirv holds the compiled shaders, one file per pipeline.
//
//go:embed spv/*.spv
var spirv embed.FS

// Name and Version identify the backend.
const (
	Name    = "vulkan"
	Version = "0.1.0"
)

// Heap is one memory heap of a device.
type Heap struct {
	Bytes       uint64 `json:"bytes"`
	DeviceLocal bool   `json:"device_local"`
}

// DeviceInfo describes a Vulkan physical device.
type DeviceInfo struct {
	Index           int       `json:"index"`
	Name            string    `json:"name"`
	Kind            string    `json:"kind"` // discrete, integrated, virtual, cpu, other
	DriverName      string    `json:"driver_name"`
	DriverInfo      string    `json:"driver_info"`
	APIVersion      string    `json:"api_version"`
	VendorID        uint32    `json:"vendor_id"`
	DeviceLocal     uint64    `json:"device_local_bytes"`
	Heaps           []Heap    `json:"heaps"`
	SubgroupSize    int       `json:"subgroup_size"`
	FP16            bool      `json:"fp16"`
	Int8            bool      `json:"int8"`
	Storage16       bool      `json:"storage16"`
	Compute         bool      `json:"compute"`
	MaxStorageRange uint64    `json:"max_storage_range"`
	MaxAlloc        uint64    `json:"max_alloc"`
	MaxShared       int       `json:"max_shared"`
	MaxGroups       [3]uint32 `json:"max_groups"`
	MinStorageAlign uint64    `json:"min_storage_align"`
	MaxPush         int       `json:"max_push"`
	// Err is why the device cannot be used ("" when it can).
	Err string `json:"error,omitempty"`
}

// Describe renders the device as a backends.Device: the driver field
// carries driver, API version, subgroup size and fp16/int8 support, and
// the reason when the device failed its checks.
func (d *DeviceInfo) Describe() backends.Device {
	var parts []string
	if d.DriverName != "" {
		parts = append(parts, d.DriverName)
	}
	if d.DriverInfo != "" {
		parts = append(parts, d.DriverInfo)
	}
	parts = append(parts, "Vulkan "+d.APIVersion, fmt.Sprintf("subgroup %d", d.SubgroupSize),
		fmt.Sprintf("fp16=%t int8=%t", d.FP16, d.Int8))
	if len(d.Heaps) > 0 {
		var hs []string
		for _, h := range d.Heaps {
			kind := "host"
			if h.DeviceLocal {
				kind = "device"
			}
			hs = append(hs, fmt.Sprintf("%.1f GiB %s", float64(h.Bytes)/(1<<30), kind))
		}
		parts = append(parts, "heaps "+strings.Join(hs, " + "))
	}
	if d.Err != "" {
		parts = append(parts, "UNUSABLE: "+d.Err)
	}
	return backends.Device{
		Name:        d.Name,
		Kind:        d.Kind,
		Driver:      strings.Join(parts, "; "),
		MemoryBytes: d.DeviceLocal,
	}
}

// Options configure New.
type Options struct {
	// Device selects a physical device by index (-1: the best usable
	// one, discrete before integrated before virtual before cpu).
	Device int
	// MemoryLimit caps the device memory that models and sessions may
	// use, in bytes (0: the size of the device-local heaps). Loads and
	// sessions beyond it fail with backends.ErrOutOfMemory.
	MemoryLimit uint64
	// DefaultContext is the session size for OpenSession(nCtx ≤ 0),
	// capped at the model's training context (0: 2048).
	DefaultContext int
}

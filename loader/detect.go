package loader

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"

	"github.com/klauspost/cpuid/v2"
)

// Machine is what detection found about the host. Selection reads only
// this value, so tests feed it fake CPUs.
type Machine struct {
	// OS and Arch are runtime.GOOS and runtime.GOARCH.
	OS   string `json:"os"`
	Arch string `json:"arch"`
	// Vendor and Brand are the CPU vendor and brand strings.
	Vendor string `json:"vendor"`
	Brand  string `json:"brand"`
	// Features lists the cpuid FeatureID names the CPU (and OS) support,
	// sorted.
	Features []string `json:"features"`
	// Cores is the number of physical cores (logical CPUs when unknown).
	Cores int `json:"cores"`
	// Threads is the number of logical CPUs.
	Threads int `json:"threads"`
	// VM reports that the CPU says it runs under a hypervisor.
	VM bool `json:"vm"`
	// GPUs lists display devices the OS exposes. It is a hint for the
	// decision table; a backend's probe is what decides.
	GPUs []GPU `json:"gpus,omitempty"`
}

// GPU is a display device found in the OS device tree.
type GPU struct {
	// Node is the device node name, e.g. "card0".
	Node string `json:"node"`
	// Vendor is the vendor name when known ("nvidia", "amd", "intel")
	// or the PCI vendor id.
	Vendor string `json:"vendor"`
	// VendorID and DeviceID are PCI ids ("0x10de").
	VendorID string `json:"vendor_id,omitempty"`
	DeviceID string `json:"device_id,omitempty"`
	// Driver is the kernel driver bound to the device.
	Driver string `json:"driver,omitempty"`
}

// Has reports whether the machine has the named cpuid feature.
func (m *Machine) Has(feature string) bool {
	_, ok := slices.BinarySearch(m.Features, feature)
	if ok {
		return true
	}
	return slices.Contains(m.Features, feature) // tolerate unsorted test input
}

// Detect fingerprints the host: CPU via cpuid, GPUs via the OS device
// tree (Linux /sys/class/drm). It returns a fresh value every call.
func Detect() Machine {
	return detectWith(cpuid.CPU, "/sys/class/drm")
}

// detectWith builds a Machine from a cpuid result and a DRM sysfs root.
func detectWith(c cpuid.CPUInfo, drmRoot string) Machine {
	m := Machine{
		OS:      runtime.GOOS,
		Arch:    runtime.GOARCH,
		Vendor:  c.VendorString,
		Brand:   strings.TrimSpace(c.BrandName),
		Cores:   c.PhysicalCores,
		Threads: c.LogicalCores,
		VM:      c.VM(),
	}
	if m.Vendor == "" {
		m.Vendor = c.VendorID.String()
	}
	if m.Threads <= 0 {
		m.Threads = runtime.NumCPU()
	}
	if m.Cores <= 0 {
		m.Cores = m.Threads
	}
	for _, f := range c.FeatureSet() {
		if f != "" {
			m.Features = append(m.Features, f)
		}
	}
	sort.Strings(m.Features)
	m.Features = slices.Compact(m.Features)
	m.GPUs = detectGPUs(drmRoot)
	return m
}

// pciVendors names the PCI vendor ids of common GPU makers.
func pciVendors() map[string]string {
	return map[string]string{
		"0x10de": "nvidia",
		"0x1002": "amd",
		"0x8086": "intel",
		"0x13b5": "arm",
		"0x5143": "qualcomm",
		"0x1af4": "virtio",
		"0x1234": "qemu",
		"0x15ad": "vmware",
		"0x1414": "microsoft",
	}
}

// detectGPUs lists the cardN nodes under a DRM sysfs directory.
func detectGPUs(root string) []GPU {
	des, err := os.ReadDir(root)
	if err != nil {
		return nil
	}
	var gpus []GPU
	for _, de := range des {
		name := de.Name()
		if !strings.HasPrefix(name, "card") || strings.Contains(name, "-") {
			continue // connectors are card0-HDMI-A-1
		}
		dev := filepath.Join(root, name, "device")
		read := func(f string) string {
			b, err := os.ReadFile(filepath.Join(dev, f))
			if err != nil {
				return ""
			}
			return strings.TrimSpace(string(b))
		}
		g := GPU{Node: name, VendorID: read("vendor"), DeviceID: read("device")}
		g.Vendor = pciVendors()[g.VendorID]
		if g.Vendor == "" {
			g.Vendor = g.VendorID
		}
		for _, line := range strings.Split(read("uevent"), "\n") {
			if v, ok := strings.CutPrefix(line, "DRIVER="); ok {
				g.Driver = v
			}
		}
		gpus = append(gpus, g)
	}
	return gpus
}

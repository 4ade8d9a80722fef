//go:build cgo && vulkan_headers

package vulkan

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"

	"github.com/realmrt/realm/gguf"
)

// submitTimeoutMS bounds one command buffer's execution.
const submitTimeoutMS = 300_000

// maxDispatches is how many dispatches one command buffer records before
// it is flushed (the descriptor pool holds 4096 sets).
const maxDispatches = 4000

// typeName is the shader suffix of a weight type the shaders read.
func typeName(t gguf.Type) (string, bool) {
	switch t {
	case gguf.TypeF32:
		return "f32", true
	case gguf.TypeF16:
		return "f16", true
	case gguf.TypeBF16:
		return "bf16", true
	case gguf.TypeQ4_0:
		return "q4_0", true
	case gguf.TypeQ4_1:
		return "q4_1", true
	case gguf.TypeQ5_0:
		return "q5_0", true
	case gguf.TypeQ5_1:
		return "q5_1", true
	case gguf.TypeQ8_0:
		return "q8_0", true
	case gguf.TypeQ2_K:
		return "q2_k", true
	case gguf.TypeQ3_K:
		return "q3_k", true
	case gguf.TypeQ4_K:
		return "q4_k", true
	case gguf.TypeQ5_K:
		return "q5_k", true
	case gguf.TypeQ6_K:
		return "q6_k", true
	case gguf.TypeIQ4_NL:
		return "iq4_nl", true
	case gguf.TypeIQ4_XS:
		return "iq4_xs", true
	}
	return "", false
}

// weightTypes lists the weight types with shaders: every weight type
// (a type added to gguf without its matmul/getrows shaders fails
// pipeline creation, and so the vulkan tests).
func weightTypes() []gguf.Type { return gguf.WeightTypes() }

// pipeSpec is a pipeline's binding count and push-constant words.
type pipeSpec struct{ nbind, push int }

// pipeSpecs lists every pipeline by SPIR-V file name.
func pipeSpecs() map[string]pipeSpec {
	m := map[string]pipeSpec{
		"rmsnorm":       {3, 6},
		"softmax":       {1, 3},
		"rope":          {2, 7},
		"binary":        {3, 7},
		"kvstore":       {2, 3},
		"attention_f16": {4, 11},
		"attention_f32": {4, 11},
		"moe":           {3, 4},
		"moesum":        {3, 3},
		"columns":       {2, 6},
	}
	for _, t := range weightTypes() {
		n, _ := typeName(t)
		m["matmul_"+n] = pipeSpec{3, 8}
		m["matmul32_"+n] = pipeSpec{3, 8}
		m["matmult_"+n] = pipeSpec{3, 8}
		m["matvec_"+n] = pipeSpec{3, 8}
		m["getrows_"+n] = pipeSpec{3, 8}
		m["matmulid_"+n] = pipeSpec{4, 10}
		m["matmulid32_"+n] = pipeSpec{4, 10}
	}
	return m
}

// Device is an opened Vulkan device with the compute pipelines. mu
// serializes command recording and submission: callers lock it around a
// whole begin … submit sequence.
type Device struct {
	Info  DeviceInfo
	inst  *instance
	vk    *vkdev
	pipes map[string]*pipeline

	mu    sync.Mutex
	ndisp int // dispatches recorded since begin
	// broken is set when the device cannot be used any more.
	broken error
	// staging makes upload copy through a staging buffer even into
	// mapped buffers (tests the path discrete GPUs take).
	staging bool
	// segCap is the largest buffer the backend allocates (a storage
	// buffer binding covers a whole buffer).
	segCap uint64
}

// rank orders device kinds: discrete first, cpu last.
func rank(kind string) int {
	switch kind {
	case "discrete":
		return 0
	case "integrated":
		return 1
	case "virtual":
		return 2
	case "cpu":
		return 3
	}
	return 4
}

// OpenDevice opens the Vulkan loader and the best usable device (or the
// one at index pin ≥ 0). Every device tried and rejected gets Err set in
// the returned list. With no usable device it returns the list and an
// error.
func OpenDevice(pin int) (*Device, []DeviceInfo, error) {
	inst, err := newInstance()
	if err != nil {
		return nil, nil, err
	}
	infos := inst.devices()
	if len(infos) == 0 {
		inst.close()
		return nil, nil, fmt.Errorf("vulkan: no Vulkan device found")
	}
	order := make([]int, len(infos))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return rank(infos[order[a]].Kind) < rank(infos[order[b]].Kind) })
	if pin >= 0 {
		if pin >= len(infos) {
			inst.close()
			return nil, infos, fmt.Errorf("vulkan: device %d requested, %d found", pin, len(infos))
		}
		order = []int{pin}
	}
	var lastErr error
	for _, i := range order {
		d, err := tryDevice(inst, infos[i])
		if err != nil {
			infos[i].Err = err.Error()
			lastErr = err
			continue
		}
		return d, infos, nil
	}
	inst.close()
	return nil, infos, fmt.Errorf("vulkan: no usable device: %w", lastErr)
}

// tryDevice checks a device's limits, opens it, builds the pipelines and
// runs the self-test.
func tryDevice(inst *instance, info DeviceInfo) (*Device, error) {
	switch {
	case !info.Compute:
		return nil, fmt.Errorf("no compute queue")
	case info.MaxShared < 2048*4:
		return nil, fmt.Errorf("%d bytes of shared memory (need 8192)", info.MaxShared)
	case info.MaxPush < 64:
		return nil, fmt.Errorf("%d bytes of push constants (need 64)", info.MaxPush)
	case info.MaxStorageRange < 1<<20:
		return nil, fmt.Errorf("storage buffer range %d too small", info.MaxStorageRange)
	}
	vk, err := inst.open(info.Index)
	if err != nil {
		return nil, err
	}
	d := &Device{Info: info, inst: inst, vk: vk, pipes: make(map[string]*pipeline)}
	d.segCap = info.MaxStorageRange
	if info.MaxAlloc > 0 && info.MaxAlloc < d.segCap {
		d.segCap = info.MaxAlloc
	}
	d.segCap = min(d.segCap, 1<<31) &^ 255
	d.segCap -= 256 // room to round a buffer's size up to whole words
	for name := range pipeSpecs() {
		if _, err := spirv.ReadFile("spv/" + name + ".spv"); err != nil {
			d.closeDevice()
			return nil, fmt.Errorf("shader %s: %w", name, err)
		}
	}
	if err := selfTest(d); err != nil {
		d.closeDevice()
		return nil, fmt.Errorf("self-test: %w", err)
	}
	return d, nil
}

// closeDevice releases the pipelines and the device (not the instance).
func (d *Device) closeDevice() {
	for _, p := range d.pipes {
		d.vk.freePipeline(p)
	}
	d.pipes = nil
	d.vk.close()
}

// Close releases the device and the instance.
func (d *Device) Close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closeDevice()
	d.inst.close()
}

// begin starts recording; the caller holds mu.
func (d *Device) begin() error {
	if d.broken != nil {
		return d.broken
	}
	d.ndisp = 0
	return d.vk.begin()
}

// submit runs what was recorded and waits for it; the caller holds mu.
// A submission that does not finish in time or loses the device leaves
// the device unusable: every later call fails with that error instead
// of reusing a command buffer the device may still be executing.
func (d *Device) submit() error {
	d.ndisp = 0
	err := d.vk.submit(submitTimeoutMS)
	if err != nil && (errors.Is(err, errTimeout) || errors.Is(err, errDeviceLost)) {
		d.broken = fmt.Errorf("vulkan: device %s is unusable after an earlier failure: %w", d.Info.Name, err)
	}
	return err
}

// run records one dispatch of groups workgroups (split over two
// dimensions where needed), flushing the command buffer when the
// descriptor pool would overflow.
func (d *Device) run(name string, bufs []*buffer, push []uint32, groups int) error {
	if groups <= 0 {
		return nil
	}
	p, err := d.pipeline(name)
	if err != nil {
		return err
	}
	if d.ndisp >= maxDispatches {
		if err := d.submit(); err != nil {
			return err
		}
		if err := d.begin(); err != nil {
			return err
		}
	}
	maxX := int(d.Info.MaxGroups[0])
	if maxX <= 0 || maxX > 65535 {
		maxX = 65535
	}
	gx := min(groups, maxX)
	gy := (groups + gx - 1) / gx
	if gy > int(d.Info.MaxGroups[1]) {
		return fmt.Errorf("vulkan: %s: %d workgroups exceed the device's grid", name, groups)
	}
	d.ndisp++
	return d.vk.dispatch(p, bufs, push, uint32(gx), uint32(gy))
}

// pipeline returns the named pipeline, building it on first use (a
// driver compiles a pipeline when it is created: building them lazily
// keeps the plugin's start, and so the host's probe, short). The caller
// holds mu.
func (d *Device) pipeline(name string) (*pipeline, error) {
	if p, ok := d.pipes[name]; ok {
		return p, nil
	}
	spec, ok := pipeSpecs()[name]
	if !ok {
		return nil, fmt.Errorf("vulkan: no pipeline %q", name)
	}
	code, err := spirv.ReadFile("spv/" + name + ".spv")
	if err != nil {
		return nil, fmt.Errorf("vulkan: shader %s: %w", name, err)
	}
	p, err := d.vk.newPipeline(code, spec.nbind, 4*spec.push)
	if err != nil {
		return nil, fmt.Errorf("vulkan: shader %s: %w", name, err)
	}
	d.pipes[name] = p
	return p, nil
}

// f32w encodes a float as a push-constant word.
func f32w(v float32) uint32 { return math.Float32bits(v) }

// segment is a run of weight rows in one buffer.
type segment struct {
	buf  *buffer
	off  uint64 // byte offset of the first row
	row0 int
	rows int
}

// devWeight is a weight matrix in device buffers, in GGUF block layout.
type devWeight struct {
	name     string
	typ      gguf.Type
	shader   string // type suffix
	rows     int
	cols     int
	rowBytes int
	segs     []segment
}

// placement records where a planned weight goes before buffers exist.
type placement struct {
	buf  int
	off  uint64
	row0 int
	rows int
}

// planner packs weights into buffers of at most segCap bytes, splitting
// a weight at row boundaries where it does not fit.
type planner struct {
	segCap uint64
	sizes  []uint64
}

// place plans rows rows of rowBytes bytes.
func (p *planner) place(rows, rowBytes int) ([]placement, error) {
	rb := uint64(rowBytes)
	if rb > p.segCap {
		return nil, fmt.Errorf("a row of %d bytes exceeds the device's buffer limit of %d", rb, p.segCap)
	}
	var out []placement
	for r := 0; r < rows; {
		if len(p.sizes) == 0 {
			p.sizes = append(p.sizes, 0)
		}
		cur := len(p.sizes) - 1
		off := (p.sizes[cur] + 255) &^ 255
		fit := 0
		if off < p.segCap {
			fit = int(min(uint64(rows-r), (p.segCap-off)/rb))
		}
		if fit == 0 {
			p.sizes = append(p.sizes, 0)
			continue
		}
		out = append(out, placement{buf: cur, off: off, row0: r, rows: fit})
		p.sizes[cur] = off + uint64(fit)*rb
		r += fit
	}
	return out, nil
}

// total returns the planned bytes.
func (p *planner) total() uint64 {
	var t uint64
	for _, s := range p.sizes {
		t += s
	}
	return t
}

// upload copies data into b at off: directly when b is mapped, through
// a host staging buffer otherwise. The caller holds mu and is not
// recording.
func (d *Device) upload(b *buffer, off uint64, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	if b.mapped != nil && !d.staging {
		copy(b.mapped[off:], data)
		return nil
	}
	chunk := min(uint64(len(data)), 32<<20)
	st, err := d.vk.newBuffer(chunk, true)
	if err != nil {
		return err
	}
	defer d.vk.freeBuffer(st)
	if st.mapped == nil {
		return fmt.Errorf("vulkan: staging buffer is not host-visible")
	}
	for len(data) > 0 {
		n := min(uint64(len(data)), chunk)
		copy(st.mapped, data[:n])
		if err := d.begin(); err != nil {
			return err
		}
		if err := d.vk.copyBuffer(st, 0, b, off, n); err != nil {
			_ = d.submit()
			return err
		}
		if err := d.submit(); err != nil {
			return err
		}
		data = data[n:]
		off += n
	}
	return nil
}

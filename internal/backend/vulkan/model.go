//go:build cgo && vulkan_headers

package vulkan

import (
	"fmt"
	"unsafe"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/gguf"
	"github.com/realmrt/realm/internal/engine"
)

// vecRef is an f32 vector in a device buffer (offset in elements).
type vecRef struct {
	buf *buffer
	off int
}

// gpuWeights are a model's weights on the device: every matrix and
// f32 vector the model's graph reads, keyed by the engine's pointers
// (a graph of the model always uses the same ones).
type gpuWeights struct {
	mats  map[*engine.Weight]*devWeight
	vecs  map[*float32]vecRef
	bufs  []*buffer
	bytes uint64
}

// free releases the weight buffers.
func (w *gpuWeights) free(d *Device) {
	for _, b := range w.bufs {
		d.vk.freeBuffer(b)
	}
	w.bufs = nil
}

// f32Bytes views floats as bytes (little-endian machines).
func f32Bytes(v []float32) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v))
}

// checkShape reports what the shaders cannot run for these
// hyperparameters.
func checkShape(hp *engine.HParams) error {
	if hp.HeadDim > maxHeadDim {
		return fmt.Errorf("%w: head size %d exceeds the attention shader's %d", backends.ErrUnsupported, hp.HeadDim, maxHeadDim)
	}
	if hp.KVDim()%2 != 0 {
		return fmt.Errorf("%w: odd key/value width %d (the f16 cache stores pairs)", backends.ErrUnsupported, hp.KVDim())
	}
	return nil
}

// uploadModel places every weight and vector the model's graph reads in
// device buffers. The caller holds d.mu. budget is the device memory
// the weights may use.
func uploadModel(d *Device, m *engine.Model, budget uint64) (*gpuWeights, error) {
	if err := checkShape(&m.HP); err != nil {
		return nil, err
	}
	type job struct {
		pl   []placement
		data []byte
		rb   int
		set  func(segs []segment)
	}
	p := &planner{segCap: d.segCap}
	var jobs []job
	gw := &gpuWeights{mats: make(map[*engine.Weight]*devWeight), vecs: make(map[*float32]vecRef)}
	matrix := func(w *engine.Weight) error {
		if _, ok := gw.mats[w]; ok {
			return nil
		}
		name, ok := typeName(w.Type)
		if !ok {
			return fmt.Errorf("%w: tensor %s has type %v, which has no shader", backends.ErrUnsupported, w.Name, w.Type)
		}
		dw := &devWeight{name: w.Name, typ: w.Type, shader: name, rows: w.Rows, cols: w.Cols, rowBytes: w.RowBytes()}
		pl, err := p.place(w.Rows, dw.rowBytes)
		if err != nil {
			return fmt.Errorf("%w: tensor %s: %w", backends.ErrUnsupported, w.Name, err)
		}
		gw.mats[w] = dw
		jobs = append(jobs, job{pl: pl, data: w.Data, rb: dw.rowBytes, set: func(s []segment) { dw.segs = s }})
		return nil
	}
	vector := func(v []float32) error {
		if len(v) == 0 {
			return nil
		}
		if _, ok := gw.vecs[&v[0]]; ok {
			return nil
		}
		pl, err := p.place(1, 4*len(v))
		if err != nil {
			return err
		}
		gw.vecs[&v[0]] = vecRef{}
		jobs = append(jobs, job{pl: pl, data: f32Bytes(v), rb: 4 * len(v), set: func(s []segment) {
			gw.vecs[&v[0]] = vecRef{buf: s[0].buf, off: int(s[0].off / 4)}
		}})
		return nil
	}
	g := m.Graph(&engine.Batch{Tokens: []int32{0, 0}, Pos: []int32{0, 1}, Seq: []int32{0, 0}, NCtx: m.HP.NCtxTrain})
	for i := range g.NumNodes() {
		n := g.Node(i)
		var ws []*engine.Weight
		if n.Weight != nil {
			ws = append(ws, n.Weight)
		}
		if e := n.MoE; e != nil {
			ws = append(append(append(append(ws, e.Router), e.Gate...), e.Up...), e.Down...)
		}
		for _, w := range ws {
			if err := matrix(w); err != nil {
				return nil, err
			}
		}
		if err := vector(n.Vec); err != nil {
			return nil, err
		}
		if a := n.Attn; a != nil && (a.HeadDim > maxHeadDim || a.NHeadKV*a.HeadDim%2 != 0) {
			return nil, fmt.Errorf("%w: attention of %d heads of %d elements (the shader takes heads of at most %d and an even key/value width)",
				backends.ErrUnsupported, a.NHeadKV, a.HeadDim, maxHeadDim)
		}
	}
	gw.bytes = p.total()
	if gw.bytes > budget {
		return nil, fmt.Errorf("%w: the weights need %d bytes of device memory, %d available on %s", backends.ErrOutOfMemory, gw.bytes, budget, d.Info.Name)
	}
	for _, n := range p.sizes {
		b, err := d.vk.newBuffer((n+15)&^15, false)
		if err != nil {
			gw.free(d)
			return nil, fmt.Errorf("weights (%d bytes in %d buffers): %w", gw.bytes, len(p.sizes), err)
		}
		gw.bufs = append(gw.bufs, b)
	}
	for _, j := range jobs {
		segs := make([]segment, len(j.pl))
		for i, q := range j.pl {
			b := gw.bufs[q.buf]
			segs[i] = segment{buf: b, off: q.off, row0: q.row0, rows: q.rows}
			if err := d.upload(b, q.off, j.data[q.row0*j.rb:(q.row0+q.rows)*j.rb]); err != nil {
				gw.free(d)
				return nil, fmt.Errorf("upload: %w", err)
			}
		}
		j.set(segs)
	}
	return gw, nil
}

// supportedType reports whether the shaders read a weight type (F32 is
// also accepted for the norm vectors, which the host converts).
func supportedType(t gguf.Type) bool {
	_, ok := typeName(t)
	return ok
}

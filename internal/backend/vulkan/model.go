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

// gpuLayer holds one transformer block's weights on the device.
type gpuLayer struct {
	attnNorm, ffnNorm          vecRef
	q, k, v, o, gate, up, down *devWeight
}

// gpuWeights are a model's weights on the device.
type gpuWeights struct {
	tok, out *devWeight
	outNorm  vecRef
	layers   []gpuLayer
	bufs     []*buffer
	bytes    uint64
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

// uploadModel places every weight of m in device buffers. The caller
// holds d.mu. budget is the device memory the weights may use.
func uploadModel(d *Device, m *engine.Model, budget uint64) (*gpuWeights, error) {
	hp := &m.HP
	if err := checkShape(hp); err != nil {
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
	gw := &gpuWeights{layers: make([]gpuLayer, len(m.Layers))}
	matrix := func(w *engine.Weight, dst **devWeight) error {
		name, ok := typeName(w.Type)
		if !ok {
			return fmt.Errorf("%w: tensor %s has type %v, which has no shader", backends.ErrUnsupported, w.Name, w.Type)
		}
		dw := &devWeight{name: w.Name, typ: w.Type, shader: name, rows: w.Rows, cols: w.Cols, rowBytes: w.RowBytes()}
		pl, err := p.place(w.Rows, dw.rowBytes)
		if err != nil {
			return fmt.Errorf("%w: tensor %s: %w", backends.ErrUnsupported, w.Name, err)
		}
		*dst = dw
		jobs = append(jobs, job{pl: pl, data: w.Data, rb: dw.rowBytes, set: func(s []segment) { dw.segs = s }})
		return nil
	}
	vector := func(v []float32, dst *vecRef) error {
		pl, err := p.place(1, 4*len(v))
		if err != nil {
			return err
		}
		jobs = append(jobs, job{pl: pl, data: f32Bytes(v), rb: 4 * len(v), set: func(s []segment) {
			*dst = vecRef{buf: s[0].buf, off: int(s[0].off / 4)}
		}})
		return nil
	}
	if err := matrix(m.TokEmbd, &gw.tok); err != nil {
		return nil, err
	}
	for i := range m.Layers {
		L, G := &m.Layers[i], &gw.layers[i]
		for _, e := range []struct {
			w   *engine.Weight
			dst **devWeight
		}{{L.Q, &G.q}, {L.K, &G.k}, {L.V, &G.v}, {L.O, &G.o}, {L.Gate, &G.gate}, {L.Up, &G.up}, {L.Down, &G.down}} {
			if err := matrix(e.w, e.dst); err != nil {
				return nil, err
			}
		}
		if err := vector(L.AttnNorm, &G.attnNorm); err != nil {
			return nil, err
		}
		if err := vector(L.FFNNorm, &G.ffnNorm); err != nil {
			return nil, err
		}
	}
	if err := vector(m.OutNorm, &gw.outNorm); err != nil {
		return nil, err
	}
	if m.Tied {
		gw.out = gw.tok
	} else if err := matrix(m.Output, &gw.out); err != nil {
		return nil, err
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

//go:build cgo && vulkan_headers

package vulkan

import (
	"context"
	"fmt"
	"math"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/internal/engine"
)

// maxMicroBatch is the most tokens one command buffer processes; longer
// prompts are split (bounding the activation buffers).
const maxMicroBatch = 128

// gpuSession is one sequence: the per-layer f16 KV cache and the
// activation buffers live on the device; ids, the RoPE table and the
// logits go through small host-visible buffers.
type gpuSession struct {
	m      *engine.Model
	w      *gpuWeights
	nCtx   int
	ub     int // tokens per command buffer (micro-batch)
	tokens []int32
	kc, vc []*buffer
	// activations, ub rows each
	x, cur, tmp, sum, q, att, kt, vt, gate, up, hid *buffer
	ids, cs, logits                                 *buffer // host-visible
	all                                             []*buffer
	bytes                                           uint64
}

// newSession allocates a session's device memory; the caller holds d.mu.
func newSession(d *Device, m *engine.Model, w *gpuWeights, nCtx int) (*gpuSession, error) {
	hp := &m.HP
	s := &gpuSession{m: m, w: w, nCtx: nCtx}
	rowBytes := 4 * uint64(max(hp.NEmbd, hp.QDim(), hp.NFF))
	s.ub = int(min(maxMicroBatch, d.segCap/rowBytes))
	if s.ub < 1 {
		return nil, fmt.Errorf("%w: an activation row of %d bytes exceeds the device's buffer limit", backends.ErrUnsupported, rowBytes)
	}
	kvBytes := uint64(nCtx) * uint64(hp.KVDim()) * 2
	if kvBytes > d.segCap {
		return nil, fmt.Errorf("%w: a layer's KV cache of %d positions needs %d bytes, more than one device buffer (%d)", backends.ErrOutOfMemory, nCtx, kvBytes, d.segCap)
	}
	alloc := func(n uint64, host bool) (*buffer, error) {
		b, err := d.vk.newBuffer((max(n, 16)+15)&^15, host)
		if err != nil {
			return nil, err
		}
		s.all = append(s.all, b)
		s.bytes += b.size
		return b, nil
	}
	var err error
	fail := func(e error) (*gpuSession, error) {
		s.free(d)
		return nil, fmt.Errorf("session of %d positions: %w", nCtx, e)
	}
	for range hp.NLayer {
		k, err := alloc(kvBytes, false)
		if err != nil {
			return fail(err)
		}
		v, err := alloc(kvBytes, false)
		if err != nil {
			return fail(err)
		}
		s.kc, s.vc = append(s.kc, k), append(s.vc, v)
	}
	u := uint64(s.ub)
	for _, a := range []struct {
		dst **buffer
		n   int
	}{{&s.x, hp.NEmbd}, {&s.cur, hp.NEmbd}, {&s.tmp, hp.NEmbd}, {&s.sum, hp.NEmbd}, {&s.q, hp.QDim()}, {&s.att, hp.QDim()},
		{&s.kt, hp.KVDim()}, {&s.vt, hp.KVDim()}, {&s.gate, hp.NFF}, {&s.up, hp.NFF}, {&s.hid, hp.NFF}} {
		if *a.dst, err = alloc(4*u*uint64(a.n), false); err != nil {
			return fail(err)
		}
	}
	if s.ids, err = alloc(4*u, true); err != nil {
		return fail(err)
	}
	if s.cs, err = alloc(4*u*uint64(hp.NRot), true); err != nil {
		return fail(err)
	}
	if s.logits, err = alloc(4*uint64(hp.NVocab), true); err != nil {
		return fail(err)
	}
	for _, b := range []*buffer{s.ids, s.cs, s.logits} {
		if b.mapped == nil {
			return fail(fmt.Errorf("host buffer is not mapped"))
		}
	}
	return s, nil
}

// free releases the session's buffers; the caller holds d.mu.
func (s *gpuSession) free(d *Device) {
	for _, b := range s.all {
		d.vk.freeBuffer(b)
	}
	s.all = nil
}

// decode runs the forward pass over tokens in micro-batches, one
// command buffer each, and returns the logits of the last position
// (nil when logits is false). On error the session keeps its length.
func (s *gpuSession) decode(ctx context.Context, d *Device, tokens []int32, logits bool) ([]float32, error) {
	hp := &s.m.HP
	start := len(s.tokens)
	if err := engine.CheckBatch(tokens, hp.NVocab, start, s.nCtx); err != nil {
		return nil, err
	}
	var out []float32
	for off := 0; off < len(tokens); off += s.ub {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		chunk := tokens[off:min(off+s.ub, len(tokens))]
		last := off+len(chunk) == len(tokens)
		if err := s.step(d, chunk, start+off, last && logits); err != nil {
			return nil, err
		}
		if last && logits {
			out = make([]float32, hp.NVocab)
			copy(out, floats(s.logits))
		}
	}
	s.tokens = append(s.tokens, tokens...)
	return out, nil
}

// step records and runs one micro-batch of B tokens at position start.
func (s *gpuSession) step(d *Device, tokens []int32, start int, logits bool) error {
	hp := &s.m.HP
	B := len(tokens)
	E, KV, FF := hp.NEmbd, hp.KVDim(), hp.NFF
	ids := words(s.ids)
	pos := make([]int32, B)
	for i, t := range tokens {
		ids[i] = uint32(t)
		pos[i] = int32(start + i)
	}
	copy(floats(s.cs), ropeTable(pos, hp.NRot, hp.RopeBase))
	half := hp.NRot / 2
	a := attnArgs{nHead: hp.NHead, nHeadKV: hp.NHeadKV, headDim: hp.HeadDim, startPos: start, batch: B,
		scale: float32(1 / math.Sqrt(float64(hp.HeadDim))), f16: true}

	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.begin(); err != nil {
		return err
	}
	err := func() error {
		x, sum := s.x, s.sum
		if err := d.opGetRows(s.w.tok, s.ids, 0, B, x, 0); err != nil {
			return err
		}
		for l := range s.w.layers {
			L := &s.w.layers[l]
			steps := []func() error{
				func() error { return d.opRMSNorm(x, 0, L.attnNorm.buf, L.attnNorm.off, s.cur, 0, E, B, hp.Eps) },
				func() error { return d.opMatMul(L.q, s.cur, 0, s.q, 0, B) },
				func() error { return d.opMatMul(L.k, s.cur, 0, s.kt, 0, B) },
				func() error { return d.opMatMul(L.v, s.cur, 0, s.vt, 0, B) },
				func() error { return d.opRoPE(s.q, 0, s.cs, 0, B, hp.NHead, hp.HeadDim, half) },
				func() error { return d.opRoPE(s.kt, 0, s.cs, 0, B, hp.NHeadKV, hp.HeadDim, half) },
				func() error { return d.opKVStore(s.kt, 0, s.kc[l], start*KV/2, B*KV/2) },
				func() error { return d.opKVStore(s.vt, 0, s.vc[l], start*KV/2, B*KV/2) },
				func() error { return d.opAttention(a, s.q, 0, s.kc[l], s.vc[l], s.att, 0) },
				func() error { return d.opMatMul(L.o, s.att, 0, s.tmp, 0, B) },
				func() error { return d.opBinary(binAdd, x, 0, s.tmp, 0, sum, 0, B*E) },
			}
			for _, f := range steps {
				if err := f(); err != nil {
					return err
				}
			}
			x, sum = sum, x
			steps = []func() error{
				func() error { return d.opRMSNorm(x, 0, L.ffnNorm.buf, L.ffnNorm.off, s.cur, 0, E, B, hp.Eps) },
				func() error { return d.opMatMul(L.gate, s.cur, 0, s.gate, 0, B) },
				func() error { return d.opMatMul(L.up, s.cur, 0, s.up, 0, B) },
				func() error { return d.opBinary(binSiLUMul, s.gate, 0, s.up, 0, s.hid, 0, B*FF) },
				func() error { return d.opMatMul(L.down, s.hid, 0, s.tmp, 0, B) },
				func() error { return d.opBinary(binAdd, x, 0, s.tmp, 0, sum, 0, B*E) },
			}
			for _, f := range steps {
				if err := f(); err != nil {
					return err
				}
			}
			x, sum = sum, x
		}
		if !logits {
			return nil
		}
		if err := d.opRMSNorm(x, (B-1)*E, s.w.outNorm.buf, s.w.outNorm.off, s.cur, 0, E, 1, hp.Eps); err != nil {
			return err
		}
		return d.opMatMul(s.w.out, s.cur, 0, s.logits, 0, 1)
	}()
	if err != nil {
		_ = d.submit()
		return err
	}
	return d.submit()
}

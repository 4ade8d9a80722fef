//go:build cgo && vulkan_headers

package vulkan

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync/atomic"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/internal/engine"
)

// maxMicroBatch is the most tokens one command buffer processes; longer
// batches are split (bounding the activation buffers).
const maxMicroBatch = 128

// gpuSession is one sequence: its per-layer f16 KV cache on the device
// and the tokens decoded so far. The forward pass itself belongs to the
// model (gpuExec), so one pass can serve several sessions.
type gpuSession struct {
	nCtx   int
	ub     int // tokens per command buffer (0: the executor's)
	tokens []int32
	kc, vc []*buffer
	bytes  uint64
}

// newSession allocates a session's KV cache; the caller holds d.mu.
func newSession(d *Device, hp *engine.HParams, nCtx int) (*gpuSession, error) {
	s := &gpuSession{nCtx: nCtx}
	kvBytes := uint64(nCtx) * uint64(hp.KVDim()) * 2
	if kvBytes > d.segCap {
		return nil, fmt.Errorf("%w: a layer's KV cache of %d positions needs %d bytes, more than one device buffer (%d)", backends.ErrOutOfMemory, nCtx, kvBytes, d.segCap)
	}
	for range hp.NLayer {
		for _, dst := range []*[]*buffer{&s.kc, &s.vc} {
			b, err := d.vk.newBuffer((max(kvBytes, 16)+15)&^15, false)
			if err != nil {
				s.free(d)
				return nil, fmt.Errorf("session of %d positions: %w", nCtx, err)
			}
			*dst = append(*dst, b)
			s.bytes += b.size
		}
	}
	return s, nil
}

// free releases the session's buffers; the caller holds d.mu.
func (s *gpuSession) free(d *Device) {
	for _, b := range slices.Concat(s.kc, s.vc) {
		d.vk.freeBuffer(b)
	}
	s.kc, s.vc = nil, nil
}

// gpuExec records the engine's graphs of one model into command
// buffers: weights and norm vectors are the model's device copies, the
// KV caches the sessions', and activations come from a pool of device
// buffers kept between calls (the buffers a call did not use are freed
// after it, so the pool stays at one micro-batch's needs). Its methods
// run with Device.mu held.
type gpuExec struct {
	m     *engine.Model
	w     *gpuWeights
	ub    int                  // tokens per command buffer
	free  map[uint64][]*buffer // device-local, by size
	hfree map[uint64][]*buffer // host-visible, by size
	used  map[*buffer]bool
	all   map[*buffer]bool
	bytes atomic.Uint64 // device bytes of the pool (read without d.mu by the budget)
}

// newExec returns the executor of model m with weights w.
func newExec(d *Device, m *engine.Model, w *gpuWeights) (*gpuExec, error) {
	x := &gpuExec{m: m, w: w, free: make(map[uint64][]*buffer), hfree: make(map[uint64][]*buffer),
		used: make(map[*buffer]bool), all: make(map[*buffer]bool)}
	// The widest row any tensor or scratch of a one-token graph has
	// bounds the micro-batch by the device's buffer limit.
	g := m.Graph(&engine.Batch{Tokens: []int32{0}, Pos: []int32{0}, Seq: []int32{0}, All: true, NCtx: m.HP.NCtxTrain})
	width := 1
	for t := range g.NumTensors() {
		_, c := g.Shape(engine.Tensor(t))
		width = max(width, c)
	}
	for i := range g.NumNodes() {
		if n := g.Node(i); n.MoE != nil {
			width = max(width, n.MoE.TopK*max(n.MoE.NFF, n.MoE.NEmbd), len(n.MoE.Gate))
		}
	}
	x.ub = int(min(maxMicroBatch, d.segCap/(4*uint64(width))))
	if x.ub < 1 {
		return nil, fmt.Errorf("%w: an activation row of %d bytes exceeds the device's buffer limit", backends.ErrUnsupported, 4*width)
	}
	return x, nil
}

// get returns a device buffer of at least n bytes from the pool.
func (x *gpuExec) get(d *Device, n uint64) (*buffer, error) { return x.alloc(d, n, false) }

// alloc returns a device-local or host-visible (mapped) buffer of at
// least n bytes from the pool.
func (x *gpuExec) alloc(d *Device, n uint64, host bool) (*buffer, error) {
	n = (max(n, 16) + 255) &^ 255
	free := x.free
	if host {
		free = x.hfree
	}
	if l := free[n]; len(l) > 0 {
		b := l[len(l)-1]
		free[n] = l[:len(l)-1]
		x.used[b] = true
		return b, nil
	}
	b, err := d.vk.newBuffer(n, host)
	if err != nil {
		return nil, fmt.Errorf("activations: %w", err)
	}
	if host && b.mapped == nil {
		d.vk.freeBuffer(b)
		return nil, fmt.Errorf("vulkan: host buffer is not mapped")
	}
	x.all[b] = true
	x.used[b] = true
	x.bytes.Add(b.size)
	return b, nil
}

// put returns a buffer to the pool.
func (x *gpuExec) put(b *buffer) {
	switch {
	case b == nil:
	case b.host:
		x.hfree[b.size] = append(x.hfree[b.size], b)
	default:
		x.free[b.size] = append(x.free[b.size], b)
	}
}

// trim frees the pooled buffers the last call did not use.
func (x *gpuExec) trim(d *Device) {
	for _, free := range []map[uint64][]*buffer{x.free, x.hfree} {
		for size, l := range free {
			keep := l[:0]
			for _, b := range l {
				if x.used[b] {
					keep = append(keep, b)
					continue
				}
				delete(x.all, b)
				x.bytes.Add(^(b.size - 1))
				d.vk.freeBuffer(b)
			}
			free[size] = keep
		}
	}
	clear(x.used)
}

// release frees every pooled buffer.
func (x *gpuExec) release(d *Device) {
	for b := range x.all {
		d.vk.freeBuffer(b)
	}
	clear(x.all)
	clear(x.free)
	clear(x.hfree)
	x.bytes.Store(0)
}

// decode runs batch b (rows of one sequence contiguous, with
// consecutive positions) through the model's graph in micro-batches of
// at most ub rows, one command buffer each, storing K/V into the
// caches of seqs[b.Seq[i]]. It returns the logits the CPU engine
// returns for b: every row's with b.All, else the last row's of each
// run of one sequence, in order. ub ≤ 0 means the executor's size.
// With logits false nothing is returned and the nodes after the last
// attention are not run. The caller holds d.mu and checks token ids;
// positions are checked against each session's context here.
func (x *gpuExec) decode(ctx context.Context, d *Device, b *engine.Batch, seqs []*gpuSession, logits bool, ub int) ([]float32, error) {
	n := len(b.Tokens)
	if len(b.Pos) != n || len(b.Seq) != n {
		return nil, fmt.Errorf("%w: batch of %d tokens has %d positions and %d sequence ids", backends.ErrInvalidArgument, n, len(b.Pos), len(b.Seq))
	}
	for r0 := 0; r0 < n; {
		r1 := r0 + 1
		for r1 < n && b.Seq[r1] == b.Seq[r0] {
			r1++
		}
		sq := b.Seq[r0]
		if sq < 0 || int(sq) >= len(seqs) || seqs[sq] == nil {
			return nil, fmt.Errorf("%w: batch row %d names sequence %d, which the batch does not have", backends.ErrInvalidArgument, r0, sq)
		}
		for r := r0; r < r1; r++ {
			if int(b.Pos[r]) != int(b.Pos[r0])+r-r0 {
				return nil, fmt.Errorf("%w: batch row %d of sequence %d has position %d, want %d (rows of a sequence must have consecutive positions)",
					backends.ErrInvalidArgument, r, sq, b.Pos[r], int(b.Pos[r0])+r-r0)
			}
		}
		if b.Pos[r0] < 0 || int(b.Pos[r1-1]) >= seqs[sq].nCtx {
			return nil, fmt.Errorf("%w: positions %d..%d exceed the context of sequence %d (%d)", backends.ErrInvalidArgument, b.Pos[r0], b.Pos[r1-1], sq, seqs[sq].nCtx)
		}
		if slices.Contains(b.Seq[r1:], sq) {
			return nil, fmt.Errorf("%w: the rows of sequence %d are not contiguous", backends.ErrInvalidArgument, sq)
		}
		r0 = r1
	}
	if ub <= 0 || ub > x.ub {
		ub = x.ub
	}
	nv := x.m.HP.NVocab
	var out []float32
	for off := 0; off < n; off += ub {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		end := min(off+ub, n)
		cb := &engine.Batch{Tokens: b.Tokens[off:end], Pos: b.Pos[off:end], Seq: b.Seq[off:end], All: b.All, NCtx: b.NCtx}
		// Rows whose logits the whole batch wants (the last of each
		// sequence's run, or all).
		var keep []int
		for r := off; r < end; r++ {
			if logits && (b.All || r == n-1 || b.Seq[r+1] != b.Seq[r]) {
				keep = append(keep, r-off)
			}
		}
		lg, err := x.run(d, cb, seqs, len(keep) > 0)
		if err != nil {
			return nil, err
		}
		if len(keep) == 0 {
			continue
		}
		if b.All {
			out = append(out, lg...)
			continue
		}
		// lg holds the last row of each run of the chunk, in order.
		ri := 0
		for r := 0; r < end-off; r++ {
			if r == end-off-1 || cb.Seq[r+1] != cb.Seq[r] {
				if slices.Contains(keep, r) {
					out = append(out, lg[ri*nv:(ri+1)*nv]...)
				}
				ri++
			}
		}
	}
	return out, nil
}

// ropeKey identifies a rotation's cos/sin table within one call.
type ropeKey struct {
	nDims                      int
	base, freqScale, attn, ext float32
	corr                       [2]float32
	factors                    *float32
}

// run records and submits one micro-batch; with logits false the
// output nodes are skipped and nil returned.
func (x *gpuExec) run(d *Device, b *engine.Batch, seqs []*gpuSession, logits bool) (res []float32, err error) {
	g := x.m.Graph(b)
	rows := len(b.Tokens)
	nt := g.NumTensors()
	last := make([]int, nt)
	for i := range last {
		last[i] = -1
	}
	for i := range g.NumNodes() {
		for _, t := range g.Node(i).In {
			if t >= 0 {
				last[t] = i
			}
		}
	}
	outT := g.Output()
	if outT < 0 {
		return nil, fmt.Errorf("%w: graph has no output", backends.ErrInvalidArgument)
	}
	last[outT] = g.NumNodes()
	// Host-visible inputs and output: token ids, every rotation's
	// cos/sin table, the logits.
	var host []*buffer
	defer func() {
		for _, h := range host {
			x.put(h)
		}
		x.trim(d)
	}()
	newHost := func(n int) (*buffer, error) {
		h, err := x.alloc(d, uint64(n), true)
		if err != nil {
			return nil, err
		}
		host = append(host, h)
		return h, nil
	}
	ids, err := newHost(4 * rows)
	if err != nil {
		return nil, err
	}
	for i, t := range b.Tokens {
		words(ids)[i] = uint32(t)
	}
	tables := make(map[ropeKey]int)
	var cs []float32
	for i := range g.NumNodes() {
		n := g.Node(i)
		if n.RoPE == nil {
			continue
		}
		k := keyOf(n.RoPE)
		if _, ok := tables[k]; !ok {
			tables[k] = len(cs)
			cs = append(cs, ropeTableExt(b.Pos, n.RoPE)...)
		}
	}
	var csBuf *buffer
	if len(cs) > 0 {
		if csBuf, err = newHost(4 * len(cs)); err != nil {
			return nil, err
		}
		copy(floats(csBuf), cs)
	}
	_, vocab := g.Shape(outT)
	outRows, _ := g.Shape(outT)
	var lgBuf *buffer
	if logits {
		if lgBuf, err = newHost(4 * outRows * vocab); err != nil {
			return nil, err
		}
	}

	bufs := make([]*buffer, nt)
	if err := d.begin(); err != nil {
		return nil, err
	}
	err = func() error {
		for i := range g.NumNodes() {
			n := g.Node(i)
			r, c := g.Shape(n.Out)
			var out *buffer
			inPlace := n.Op == engine.GOpRoPE || n.Op == engine.GOpRoPEExt
			if inPlace && last[n.In[0]] == i {
				out, bufs[n.In[0]] = bufs[n.In[0]], nil
			} else {
				if out, err = x.get(d, 4*uint64(r*c)); err != nil {
					return err
				}
				if inPlace {
					if err := d.vk.copyBuffer(bufs[n.In[0]], 0, out, 0, 4*uint64(r*c)); err != nil {
						return err
					}
				}
			}
			bufs[n.Out] = out
			if err := x.node(d, g, &n, bufs, out, ids, csBuf, tables, seqs); err != nil {
				return fmt.Errorf("node %d (%s): %w", i, n.Op, err)
			}
			for _, t := range n.In {
				if t >= 0 && last[t] == i && bufs[t] != nil {
					x.put(bufs[t])
					bufs[t] = nil
				}
			}
			if !logits && n.Op == engine.GOpAttention && lastAttention(g, i) {
				// The rest of the graph only feeds the logits.
				return nil
			}
		}
		if logits {
			return d.vk.copyBuffer(bufs[outT], 0, lgBuf, 0, 4*uint64(outRows*vocab))
		}
		return nil
	}()
	for i, bf := range bufs {
		if bf != nil {
			x.put(bf)
			bufs[i] = nil
		}
	}
	if err != nil {
		_ = d.submit()
		return nil, err
	}
	if err := d.submit(); err != nil {
		return nil, err
	}
	if !logits {
		return nil, nil
	}
	return slices.Clone(floats(lgBuf)[:outRows*vocab]), nil
}

// lastAttention reports whether node i is the graph's last attention
// node.
func lastAttention(g *engine.Graph, i int) bool {
	for j := i + 1; j < g.NumNodes(); j++ {
		if g.Node(j).Op == engine.GOpAttention {
			return false
		}
	}
	return true
}

// keyOf returns the table key of rotation p.
func keyOf(p *engine.RoPEParams) ropeKey {
	k := ropeKey{nDims: p.NDims, base: p.Base, freqScale: p.FreqScale, attn: p.AttnFactor, ext: p.ExtFactor, corr: p.CorrDims}
	if len(p.Factors) > 0 {
		k.factors = &p.Factors[0]
	}
	return k
}

// node records one graph node writing out.
func (x *gpuExec) node(d *Device, g *engine.Graph, n *engine.Node, bufs []*buffer, out, ids, cs *buffer,
	tables map[ropeKey]int, seqs []*gpuSession) error {
	in := func(j int) *buffer { return bufs[n.In[j]] }
	rows, cols := g.Shape(n.Out)
	mat := func(w *engine.Weight) (*devWeight, error) {
		dw, ok := x.w.mats[w]
		if !ok {
			return nil, fmt.Errorf("%w: weight %s is not on the device", backends.ErrUnsupported, w.Name)
		}
		return dw, nil
	}
	vec := func(v []float32) (vecRef, error) {
		if len(v) == 0 {
			return vecRef{}, fmt.Errorf("%w: empty vector operand", backends.ErrInvalidArgument)
		}
		r, ok := x.w.vecs[&v[0]]
		if !ok {
			return vecRef{}, fmt.Errorf("%w: a vector operand is not on the device", backends.ErrUnsupported)
		}
		return r, nil
	}
	switch n.Op {
	case engine.GOpGetRows:
		w, err := mat(n.Weight)
		if err != nil {
			return err
		}
		return d.opGetRows(w, ids, 0, rows, out, 0)
	case engine.GOpRMSNorm:
		v, err := vec(n.Vec)
		if err != nil {
			return err
		}
		return d.opRMSNorm(in(0), 0, v.buf, v.off, out, 0, n.N, rows*cols/n.N, n.F)
	case engine.GOpMatMul:
		w, err := mat(n.Weight)
		if err != nil {
			return err
		}
		return d.opMatMul(w, in(0), 0, out, 0, rows)
	case engine.GOpRoPE, engine.GOpRoPEExt:
		p := n.RoPE
		return d.opRoPE(out, 0, cs, tables[keyOf(p)], rows, n.Heads, p.HeadDim, p.NDims/2, p.Neox)
	case engine.GOpAttention:
		return x.attention(d, g, n, bufs, out, seqs)
	case engine.GOpSiLUMul:
		return d.opBinary(binSiLUMul, in(0), 0, in(1), 0, out, 0, rows*cols)
	case engine.GOpGELUMul:
		return d.opBinary(binGELUMul, in(0), 0, in(1), 0, out, 0, rows*cols)
	case engine.GOpAdd:
		return d.opBinary(binAdd, in(0), 0, in(1), 0, out, 0, rows*cols)
	case engine.GOpAddRow:
		v, err := vec(n.Vec)
		if err != nil {
			return err
		}
		return d.opBinaryF(binAddRow, in(0), 0, v.buf, v.off, out, 0, rows*cols, 0, len(n.Vec))
	case engine.GOpScale:
		return d.opBinaryF(binScale, in(0), 0, in(0), 0, out, 0, rows*cols, n.F, 0)
	case engine.GOpSoftCap:
		return d.opBinaryF(binSoftCap, in(0), 0, in(0), 0, out, 0, rows*cols, n.F, 0)
	case engine.GOpSplitColumns:
		_, xc := g.Shape(n.In[0])
		return d.opColumns(in(0), 0, rows, xc, n.N, cols, out, 0)
	case engine.GOpSelectRows:
		for i, r := range n.Rows {
			if err := d.vk.copyBuffer(in(0), 4*uint64(int(r)*cols), out, 4*uint64(i*cols), 4*uint64(cols)); err != nil {
				return err
			}
		}
		return nil
	case engine.GOpMoE:
		return x.moe(d, n.MoE, in(0), out, rows)
	}
	return fmt.Errorf("%w: graph op %s", backends.ErrUnsupported, n.Op)
}

// attention stores the batch's K and V rows (f16) into each sequence's
// cache and attends each run of rows of one sequence over it.
func (x *gpuExec) attention(d *Device, g *engine.Graph, n *engine.Node, bufs []*buffer, out *buffer, seqs []*gpuSession) error {
	a := n.Attn
	if a.HeadDim > maxHeadDim {
		return fmt.Errorf("%w: head size %d exceeds the attention shader's %d", backends.ErrUnsupported, a.HeadDim, maxHeadDim)
	}
	q, k, v := bufs[n.In[0]], bufs[n.In[1]], bufs[n.In[2]]
	qd, kvd := a.NHead*a.HeadDim, a.NHeadKV*a.HeadDim
	b := g.Batch()
	for r0 := 0; r0 < len(b.Seq); {
		r1 := r0 + 1
		for r1 < len(b.Seq) && b.Seq[r1] == b.Seq[r0] {
			r1++
		}
		s := seqs[b.Seq[r0]]
		start, nr := int(b.Pos[r0]), r1-r0
		if err := d.opKVStore(k, r0*kvd, s.kc[a.Layer], start*kvd/2, nr*kvd/2); err != nil {
			return err
		}
		if err := d.opKVStore(v, r0*kvd, s.vc[a.Layer], start*kvd/2, nr*kvd/2); err != nil {
			return err
		}
		args := attnArgs{nHead: a.NHead, nHeadKV: a.NHeadKV, headDim: a.HeadDim, startPos: start, batch: nr,
			scale: a.Scale, f16: true, window: a.Window, softCap: a.SoftCap}
		if err := d.opAttention(args, q, r0*qd, s.kc[a.Layer], s.vc[a.Layer], out, r0*qd); err != nil {
			return err
		}
		r0 = r1
	}
	return nil
}

// moe records a mixture-of-experts block on the device: the router's
// softmax, the top-k routing, each expert's gate and up products over
// the slots routed to it (mul_mat_id), SiLU·up over every slot, each
// expert's down product, and the weighted sum of a row's slots.
func (x *gpuExec) moe(d *Device, m *engine.MoESpec, in, out *buffer, rows int) error {
	ne, k := len(m.Gate), m.TopK
	slots := rows * k
	var scratch []*buffer
	defer func() {
		for _, b := range scratch {
			x.put(b)
		}
	}()
	get := func(n int) (*buffer, error) {
		b, err := x.get(d, 4*uint64(n))
		if err == nil {
			scratch = append(scratch, b)
		}
		return b, err
	}
	var probs, ids, wts, gt, up, hid, eo *buffer
	for _, a := range []struct {
		dst **buffer
		n   int
	}{{&probs, rows * ne}, {&ids, slots}, {&wts, slots}, {&gt, slots * m.NFF}, {&up, slots * m.NFF}, {&hid, slots * m.NFF}, {&eo, slots * m.NEmbd}} {
		b, err := get(a.n)
		if err != nil {
			return err
		}
		*a.dst = b
	}
	mat := func(w *engine.Weight) (*devWeight, error) {
		dw, ok := x.w.mats[w]
		if !ok {
			return nil, fmt.Errorf("%w: weight %s is not on the device", backends.ErrUnsupported, w.Name)
		}
		return dw, nil
	}
	router, err := mat(m.Router)
	if err != nil {
		return err
	}
	if err := d.opMatMul(router, in, 0, probs, 0, rows); err != nil {
		return err
	}
	if err := d.opSoftmax(probs, 0, ne, rows); err != nil {
		return err
	}
	if err := d.opMoERoute(probs, ids, wts, rows, ne, k, m.NormTopK); err != nil {
		return err
	}
	for e := range ne {
		for _, p := range []struct {
			w *engine.Weight
			y *buffer
		}{{m.Gate[e], gt}, {m.Up[e], up}} {
			w, err := mat(p.w)
			if err != nil {
				return err
			}
			if err := d.opMatMulID(w, in, ids, e, k, p.y, slots); err != nil {
				return err
			}
		}
	}
	if err := d.opBinary(binSiLUMul, gt, 0, up, 0, hid, 0, slots*m.NFF); err != nil {
		return err
	}
	for e := range ne {
		w, err := mat(m.Down[e])
		if err != nil {
			return err
		}
		if err := d.opMatMulID(w, hid, ids, e, 1, eo, slots); err != nil {
			return err
		}
	}
	return d.opMoESum(eo, wts, out, rows, m.NEmbd, k)
}

// ropeTableExt returns the cos/sin table [len(pos)][NDims/2][2] of
// rotation p (frequency factors, linear scaling, YaRN ramp and
// attention factor applied), computed in float64 as the engine's
// portable RoPEExt does.
func ropeTableExt(pos []int32, p *engine.RoPEParams) []float32 {
	half := p.NDims / 2
	fs := float64(p.FreqScale)
	if fs == 0 {
		fs = 1
	}
	mscale := float64(p.AttnFactor)
	if mscale == 0 {
		mscale = 1
	}
	ext := float64(p.ExtFactor)
	if ext != 0 {
		mscale *= 1 + 0.1*math.Log(1/fs)
	}
	out := make([]float32, 2*half*len(pos))
	for b, ps := range pos {
		for i := 0; i < half; i++ {
			theta := float64(ps) * math.Pow(float64(p.Base), -2*float64(i)/float64(p.NDims))
			if p.Factors != nil {
				theta /= float64(p.Factors[i])
			}
			if ext != 0 {
				y := (float64(i) - float64(p.CorrDims[0])) / math.Max(0.001, float64(p.CorrDims[1]-p.CorrDims[0]))
				ramp := (1 - math.Min(1, math.Max(0, y))) * ext
				theta = fs*theta*(1-ramp) + theta*ramp
			} else {
				theta *= fs
			}
			out[2*(b*half+i)] = float32(math.Cos(theta) * mscale)
			out[2*(b*half+i)+1] = float32(math.Sin(theta) * mscale)
		}
	}
	return out
}

//go:build cgo && vulkan_headers

package vulkan

import (
	"fmt"
	"math"
)

// The ops below record one operation each into the command buffer being
// built; the caller holds Device.mu and has called begin. Offsets are
// in elements (f32 for activations, uint words for the f16 cache).

// groups64 is the number of 64-wide workgroups covering n elements.
func groups64(n int) int { return (n + 63) / 64 }

// u32 checks that an element count or offset fits a push constant.
func u32(v int) uint32 {
	if v < 0 || v > math.MaxUint32 {
		panic(fmt.Sprintf("vulkan: value %d does not fit a 32-bit push constant", v))
	}
	return uint32(v)
}

// blockRowMin is the shortest row the 32-elements-per-thread matmul
// takes (64 threads × 32 elements: every thread busy).
const blockRowMin = 2048

// tiledBatchMin is the smallest batch the tiled matmul (matmul_tiled.comp:
// 64-row × 64-column tiles staged in shared memory) takes; smaller
// batches run one workgroup per weight row (matmul.comp), which reads
// each row once per 4 columns; a single column of rows that are a
// multiple of 32 runs four rows per workgroup (matvec.comp).
const tiledBatchMin = 8

// opMatMul records y[yOff + b*w.rows + r] = Σ_k w[r][k]·x[xOff + b*w.cols + k].
func (d *Device) opMatMul(w *devWeight, x *buffer, xOff int, y *buffer, yOff, batch int) error {
	shader := "matmul_" + w.shader
	if w.cols%32 == 0 && w.cols >= blockRowMin {
		shader = "matmul32_" + w.shader
	}
	tiled := batch >= tiledBatchMin
	vec := batch == 1 && w.cols%32 == 0
	switch {
	case tiled:
		shader = "matmult_" + w.shader
	case vec:
		shader = "matvec_" + w.shader
	}
	for _, s := range w.segs {
		push := []uint32{u32(w.cols), u32(s.rows), u32(batch), uint32(s.off), u32(w.rowBytes), u32(xOff), u32(yOff + s.row0), u32(w.rows)}
		groups := s.rows
		switch {
		case tiled:
			groups = (s.rows + 63) / 64 * ((batch + 63) / 64)
		case vec:
			groups = (s.rows + 3) / 4
		}
		if err := d.run(shader, []*buffer{s.buf, x, y}, push, groups); err != nil {
			return err
		}
	}
	return nil
}

// opGetRows records y[yOff + i*cols + c] = w[ids[idOff+i]][c] for i < n.
func (d *Device) opGetRows(w *devWeight, ids *buffer, idOff, n int, y *buffer, yOff int) error {
	for _, s := range w.segs {
		push := []uint32{u32(w.cols), u32(n), uint32(s.off), u32(w.rowBytes), u32(s.row0), u32(s.rows), u32(idOff), u32(yOff)}
		if err := d.run("getrows_"+w.shader, []*buffer{s.buf, ids, y}, push, groups64(n*w.cols)); err != nil {
			return err
		}
	}
	return nil
}

// opRMSNorm records y = rmsnorm(x)·wt over rows rows of n elements.
func (d *Device) opRMSNorm(x *buffer, xOff int, wt *buffer, wOff int, y *buffer, yOff, n, rows int, eps float32) error {
	push := []uint32{u32(n), u32(rows), f32w(eps), u32(xOff), u32(yOff), u32(wOff)}
	return d.run("rmsnorm", []*buffer{x, wt, y}, push, rows)
}

// opSoftmax records an in-place softmax of rows rows of n elements.
func (d *Device) opSoftmax(x *buffer, xOff, n, rows int) error {
	return d.run("softmax", []*buffer{x}, []uint32{u32(n), u32(rows), u32(xOff)}, rows)
}

// opRoPE records the rotation of x [rows][nHeads][headDim] in place by
// the cos/sin table cs [rows][half][2] (pairs (i, i+half) with neox,
// else (2i, 2i+1)).
func (d *Device) opRoPE(x *buffer, xOff int, cs *buffer, csOff, rows, nHeads, headDim, half int, neox bool) error {
	nx := uint32(0)
	if neox {
		nx = 1
	}
	push := []uint32{u32(rows), u32(nHeads), u32(headDim), u32(half), u32(xOff), u32(csOff), nx}
	return d.run("rope", []*buffer{x, cs}, push, groups64(rows*nHeads*half))
}

// Operations of the binary shader.
const (
	binAdd     = 0
	binMul     = 1
	binSiLUMul = 2
	binGELUMul = 3
	binScale   = 4 // a·f
	binSoftCap = 5 // f·tanh(a/f)
	binAddRow  = 6 // a[i] + b[i mod m]
)

// opBinary records y = a op b over n elements.
func (d *Device) opBinary(op int, a *buffer, aOff int, b *buffer, bOff int, y *buffer, yOff, n int) error {
	return d.opBinaryF(op, a, aOff, b, bOff, y, yOff, n, 0, 0)
}

// opBinaryF records y = a op b over n elements with the scalar f and
// the row width m of the ops that take them.
func (d *Device) opBinaryF(op int, a *buffer, aOff int, b *buffer, bOff int, y *buffer, yOff, n int, f float32, m int) error {
	push := []uint32{u32(n), uint32(op), u32(aOff), u32(bOff), u32(yOff), f32w(f), u32(m)}
	return d.run("binary", []*buffer{a, b, y}, push, groups64(n))
}

// opColumns records y[r][c] = x[r][off+c] for r < rows, c < w, x rows
// of xc elements.
func (d *Device) opColumns(x *buffer, xOff, rows, xc, off, w int, y *buffer, yOff int) error {
	push := []uint32{u32(rows), u32(w), u32(xc), u32(off), u32(xOff), u32(yOff)}
	return d.run("columns", []*buffer{x, y}, push, groups64(rows*w))
}

// opMoERoute records the top-k routing of rows rows of ne expert
// probabilities p into ids and wts ([rows][topk] each).
func (d *Device) opMoERoute(p, ids, wts *buffer, rows, ne, topk int, norm bool) error {
	nb := uint32(0)
	if norm {
		nb = 1
	}
	return d.run("moe", []*buffer{p, ids, wts}, []uint32{u32(rows), u32(ne), u32(topk), nb}, groups64(rows))
}

// opMoESum records y[r] = Σ_j eo[r·topk+j]·wts[r·topk+j] over rows of n.
func (d *Device) opMoESum(eo, wts, y *buffer, rows, n, topk int) error {
	return d.run("moesum", []*buffer{eo, wts, y}, []uint32{u32(rows), u32(n), u32(topk)}, groups64(rows*n))
}

// opMatMulID records, for every column b < slots whose ids[b] is
// expert, y[b*w.rows + r] = Σ_k w[r][k]·x[(b/xdiv)*w.cols + k].
func (d *Device) opMatMulID(w *devWeight, x *buffer, ids *buffer, expert, xdiv int, y *buffer, slots int) error {
	shader := "matmulid_" + w.shader
	if w.cols%32 == 0 && w.cols >= blockRowMin {
		shader = "matmulid32_" + w.shader
	}
	for _, s := range w.segs {
		push := []uint32{u32(w.cols), u32(s.rows), u32(slots), uint32(s.off), u32(w.rowBytes), 0, u32(s.row0), u32(w.rows),
			u32(expert), u32(xdiv)}
		if err := d.run(shader, []*buffer{s.buf, x, y, ids}, push, s.rows); err != nil {
			return err
		}
	}
	return nil
}

// opKVStore records the f16 packing of 2·npairs values of x into the
// cache c starting at word cOff.
func (d *Device) opKVStore(x *buffer, xOff int, c *buffer, cOff, npairs int) error {
	return d.run("kvstore", []*buffer{x, c}, []uint32{u32(npairs), u32(xOff), u32(cOff)}, groups64(npairs))
}

// attnArgs are the parameters of one attention call.
type attnArgs struct {
	nHead, nHeadKV, headDim int
	startPos, batch         int
	scale                   float32
	f16                     bool    // the cache holds f16 pairs
	window                  int     // sliding window (0: none)
	softCap                 float32 // score soft-capping (0: none)
}

// maxHeadDim is the largest head the attention shader handles.
const maxHeadDim = 256

// opAttention records causal attention of q [batch][nHead][headDim]
// against the cache k, v into o.
func (d *Device) opAttention(a attnArgs, q *buffer, qOff int, k, v, o *buffer, oOff int) error {
	if a.headDim > maxHeadDim {
		return fmt.Errorf("vulkan: head size %d exceeds %d", a.headDim, maxHeadDim)
	}
	name := "attention_f32"
	if a.f16 {
		name = "attention_f16"
	}
	push := []uint32{u32(a.nHead), u32(a.nHead / a.nHeadKV), u32(a.headDim), u32(a.nHeadKV * a.headDim),
		u32(a.startPos), u32(a.batch), f32w(a.scale), u32(qOff), u32(oOff), u32(a.window), f32w(a.softCap)}
	return d.run(name, []*buffer{q, k, v, o}, push, a.batch*a.nHead)
}

// ropeTable returns the cos/sin table [len(pos)][half][2] for the
// positions, computed in float64 as the reference does.
func ropeTable(pos []int32, nDims int, base float32) []float32 {
	half := nDims / 2
	out := make([]float32, 2*half*len(pos))
	freq := make([]float64, half)
	for i := range freq {
		freq[i] = math.Pow(float64(base), -2*float64(i)/float64(nDims))
	}
	for b, p := range pos {
		for i, f := range freq {
			th := float64(p) * f
			out[2*(b*half+i)] = float32(math.Cos(th))
			out[2*(b*half+i)+1] = float32(math.Sin(th))
		}
	}
	return out
}

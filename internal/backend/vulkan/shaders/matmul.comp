#version 450
// matmul: Y[yOff + b*yStride + r] = Σ_k W[row r][k] · X[xOff + b*cols + k]
// for r < rows, b < batch. One workgroup per weight row; the row is read
// in its GGUF block layout starting at byte wOff + r*rowBytes. Built
// twice: with BLOCKS each thread takes 32 elements (a block or
// sub-block) per step, decoding whole words (for rows that are a
// multiple of 32 and long enough to keep every thread busy); without,
// one element per thread and step. Each dequantized element is used for
// up to NC batch columns at once. With MOE_ID (mul_mat_id) the batch
// columns are expert slots: column b is computed only when IDS[b] is
// this dispatch's expert, from X row b/xdiv (a token's slots share its
// input row), each column on its own.
#include "common.glsl"
#define NC 4u
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer WB { uint W[]; };
layout(std430, binding = 1) readonly buffer XB { float X[]; };
layout(std430, binding = 2) writeonly buffer YB { float Y[]; };
#ifdef MOE_ID
layout(std430, binding = 3) readonly buffer IB { uint IDS[]; };
#endif
layout(push_constant) uniform P {
	uint cols; uint rows; uint batch; uint wOff;
	uint rowBytes; uint xOff; uint yOff; uint yStride;
#ifdef MOE_ID
	uint expert; uint xdiv;
#endif
} p;
#include "deq.glsl"
#include "dot32.glsl"
shared vec4 red[64];
shared float red1[64];

// rowDot1 is the single-column product (decode), reduced as scalars.
void rowDot1(uint r, uint t, uint ro, uint xo, uint yo) {
	float s = 0.0;
#ifdef BLOCKS
	vec4 acc = vec4(0.0);
	for (uint u = t; u < p.cols / 32u; u += 64u) dot32(ro, u, xo, 1u, p.cols, acc);
	s = acc.x;
#else
	for (uint k = t; k < p.cols; k += 64u) s += deq(ro, k) * X[xo + k];
#endif
	red1[t] = s;
	barrier();
	for (uint w = 32u; w > 0u; w >>= 1) {
		if (t < w) red1[t] += red1[t + w];
		barrier();
	}
	if (t == 0u) Y[yo + r] = red1[0];
	barrier();
}

void main() {
	uint r = gid();
	if (r >= p.rows) return;
	uint t = gl_LocalInvocationID.x;
	uint ro = p.wOff + r * p.rowBytes;
#ifdef MOE_ID
	for (uint b = 0u; b < p.batch; b++) {
		if (IDS[b] != p.expert) continue;
		rowDot1(r, t, ro, p.xOff + (b / p.xdiv) * p.cols, p.yOff + b * p.yStride);
	}
	return;
#endif
	if (p.batch == 1u) {
		rowDot1(r, t, ro, p.xOff, p.yOff);
		return;
	}
	for (uint b0 = 0u; b0 < p.batch; b0 += NC) {
		uint nc = min(NC, p.batch - b0);
		vec4 acc = vec4(0.0);
		uint xb = p.xOff + b0 * p.cols;
#ifdef BLOCKS
		for (uint u = t; u < p.cols / 32u; u += 64u) dot32(ro, u, xb, nc, p.cols, acc);
#else
		for (uint k = t; k < p.cols; k += 64u) acc4(acc, deq(ro, k), xb + k, nc, p.cols);
#endif
		red[t] = acc;
		barrier();
		for (uint w = 32u; w > 0u; w >>= 1) {
			if (t < w) red[t] += red[t + w];
			barrier();
		}
		if (t < nc) Y[p.yOff + (b0 + t) * p.yStride + r] = red[0][t];
		barrier();
	}
}

#version 450
// rope: rotates, in place, pairs i < half of every head of X laid out
// [rows][nHeads][headDim]: adjacent pairs (2i, 2i+1), or (i, i+half)
// with neox (ggml's NEOX mode). CS holds cos and sin per (row, i),
// computed on the host in float64 with every frequency factor, scaling
// and attention factor already applied.
#include "common.glsl"
layout(local_size_x = 64) in;
layout(std430, binding = 0) buffer XB { float X[]; };
layout(std430, binding = 1) readonly buffer CB { float CS[]; };
layout(push_constant) uniform P { uint rows; uint nHeads; uint headDim; uint half_; uint xOff; uint csOff; uint neox; } p;
void main() {
	uint e = gid() * 64u + gl_LocalInvocationID.x;
	if (e >= p.rows * p.nHeads * p.half_) return;
	uint i = e % p.half_;
	uint rh = e / p.half_;
	uint r = rh / p.nHeads;
	uint i0 = p.xOff + rh * p.headDim + 2u * i;
	uint i1 = i0 + 1u;
	if (p.neox != 0u) {
		i0 = p.xOff + rh * p.headDim + i;
		i1 = i0 + p.half_;
	}
	uint cs = p.csOff + 2u * (r * p.half_ + i);
	float c = CS[cs], s = CS[cs + 1u];
	float x0 = X[i0], x1 = X[i1];
	X[i0] = x0 * c - x1 * s;
	X[i1] = x0 * s + x1 * c;
}

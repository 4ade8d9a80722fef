#version 450
// rope: rotates, in place, adjacent pairs (2i, 2i+1), i < half, of every
// head of X laid out [rows][nHeads][headDim]; CS holds cos and sin per
// (row, i), computed on the host in float64.
#include "common.glsl"
layout(local_size_x = 64) in;
layout(std430, binding = 0) buffer XB { float X[]; };
layout(std430, binding = 1) readonly buffer CB { float CS[]; };
layout(push_constant) uniform P { uint rows; uint nHeads; uint headDim; uint half_; uint xOff; uint csOff; } p;
void main() {
	uint e = gid() * 64u + gl_LocalInvocationID.x;
	if (e >= p.rows * p.nHeads * p.half_) return;
	uint i = e % p.half_;
	uint rh = e / p.half_;
	uint r = rh / p.nHeads;
	uint base = p.xOff + rh * p.headDim + 2u * i;
	uint cs = p.csOff + 2u * (r * p.half_ + i);
	float c = CS[cs], s = CS[cs + 1u];
	float x0 = X[base], x1 = X[base + 1u];
	X[base] = x0 * c - x1 * s;
	X[base + 1u] = x0 * s + x1 * c;
}

#version 450
// matvec: the single-column product of matmul.comp (decode) for rows
// that are a multiple of 32 elements, four weight rows per workgroup:
// each thread takes 32 elements (a block or sub-block) of each of the
// four rows per step, and one reduction over the workgroup finishes all
// four. A quarter of the workgroups and reductions of one row each.
#include "common.glsl"
#define NR 4u
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer WB { uint W[]; };
layout(std430, binding = 1) readonly buffer XB { float X[]; };
layout(std430, binding = 2) writeonly buffer YB { float Y[]; };
layout(push_constant) uniform P {
	uint cols; uint rows; uint batch; uint wOff;
	uint rowBytes; uint xOff; uint yOff; uint yStride;
} p;
#include "deq.glsl"
#include "dot32.glsl"
shared vec4 red[64];

void main() {
	uint r0 = gid() * NR;
	if (r0 >= p.rows) return;
	uint t = gl_LocalInvocationID.x;
	uint nr = min(NR, p.rows - r0);
	vec4 s = vec4(0.0);
	for (uint u = t; u < p.cols / 32u; u += 64u) {
		for (uint i = 0u; i < nr; i++) {
			vec4 acc = vec4(0.0);
			dot32(p.wOff + (r0 + i) * p.rowBytes, u, p.xOff, 1u, p.cols, acc);
			s[i] += acc.x;
		}
	}
	red[t] = s;
	barrier();
	for (uint w = 32u; w > 0u; w >>= 1) {
		if (t < w) red[t] += red[t + w];
		barrier();
	}
	if (t < nr) Y[p.yOff + r0 + t] = red[0][t];
}

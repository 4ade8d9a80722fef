#version 450
// columns: Y[yOff + r·w + c] = X[xOff + r·xc + off + c] for r < rows,
// c < w (a column range of every row).
#include "common.glsl"
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer XB { float X[]; };
layout(std430, binding = 1) writeonly buffer YB { float Y[]; };
layout(push_constant) uniform P { uint rows; uint w; uint xc; uint off; uint xOff; uint yOff; } p;
void main() {
	uint e = gid() * 64u + gl_LocalInvocationID.x;
	if (e >= p.rows * p.w) return;
	uint r = e / p.w, c = e % p.w;
	Y[p.yOff + e] = X[p.xOff + r * p.xc + p.off + c];
}

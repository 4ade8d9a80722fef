#version 450
// binary: Y[i] = A[i] op B[i] for op 0 add, 1 mul, 2 silu(A)·B.
#include "common.glsl"
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer AB { float A[]; };
layout(std430, binding = 1) readonly buffer BB { float B[]; };
layout(std430, binding = 2) writeonly buffer YB { float Y[]; };
layout(push_constant) uniform P { uint n; uint op; uint aOff; uint bOff; uint yOff; } p;
void main() {
	uint e = gid() * 64u + gl_LocalInvocationID.x;
	if (e >= p.n) return;
	float a = A[p.aOff + e], b = B[p.bOff + e];
	float y;
	if (p.op == 0u) y = a + b;
	else if (p.op == 1u) y = a * b;
	else y = (a / (1.0 + exp(-a))) * b;
	Y[p.yOff + e] = y;
}

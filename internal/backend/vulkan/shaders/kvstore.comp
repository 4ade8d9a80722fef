#version 450
// kvstore: packs npairs pairs of f32 values from X into the f16 cache C
// (two halves per uint) starting at uint index cOff.
#include "common.glsl"
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer XB { float X[]; };
layout(std430, binding = 1) writeonly buffer CB { uint C[]; };
layout(push_constant) uniform P { uint npairs; uint xOff; uint cOff; } p;
void main() {
	uint e = gid() * 64u + gl_LocalInvocationID.x;
	if (e >= p.npairs) return;
	C[p.cOff + e] = packHalf2x16(vec2(X[p.xOff + 2u * e], X[p.xOff + 2u * e + 1u]));
}

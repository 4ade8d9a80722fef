#version 450
// moesum: Y[r][i] = Σ_j EO[r·topk+j][i] · WT[r·topk+j], j in slot order
// (the weighted sum of a row's expert outputs).
#include "common.glsl"
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer EB { float EO[]; };
layout(std430, binding = 1) readonly buffer WB { float WT[]; };
layout(std430, binding = 2) writeonly buffer YB { float Y[]; };
layout(push_constant) uniform P { uint rows; uint n; uint topk; } p;
void main() {
	uint e = gid() * 64u + gl_LocalInvocationID.x;
	if (e >= p.rows * p.n) return;
	uint r = e / p.n, i = e % p.n;
	uint s0 = r * p.topk;
	float y = EO[s0 * p.n + i] * WT[s0];
	for (uint j = 1u; j < p.topk; j++) y += EO[(s0 + j) * p.n + i] * WT[s0 + j];
	Y[e] = y;
}

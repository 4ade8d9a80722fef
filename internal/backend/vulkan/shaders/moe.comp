#version 450
// moe: the routing of a mixture-of-experts block. For each row of the
// router's probabilities P [rows][ne] (already softmaxed), the topk
// largest (the lowest index first among equal ones, as a stable sort)
// go to IDS [rows][topk] with their probabilities in WT, renormalized
// to sum 1 when norm is set. One invocation per row (ne and topk are
// small).
#include "common.glsl"
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer PB { float P[]; };
layout(std430, binding = 1) buffer IB { uint IDS[]; };
layout(std430, binding = 2) buffer WB { float WT[]; };
layout(push_constant) uniform Q { uint rows; uint ne; uint topk; uint norm; } p;
void main() {
	uint r = gid() * 64u + gl_LocalInvocationID.x;
	if (r >= p.rows) return;
	uint pb = r * p.ne, ob = r * p.topk;
	float sum = 0.0;
	for (uint j = 0u; j < p.topk; j++) {
		uint best = 0xffffffffu;
		for (uint e = 0u; e < p.ne; e++) {
			bool taken = false;
			for (uint i = 0u; i < j; i++) taken = taken || IDS[ob + i] == e;
			if (taken) continue;
			if (best == 0xffffffffu || P[pb + e] > P[pb + best]) best = e;
		}
		IDS[ob + j] = best;
		WT[ob + j] = P[pb + best];
		sum += P[pb + best];
	}
	if (p.norm != 0u) {
		for (uint j = 0u; j < p.topk; j++) WT[ob + j] = WT[ob + j] / sum;
	}
}

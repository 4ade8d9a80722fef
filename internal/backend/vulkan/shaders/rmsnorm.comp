#version 450
// rmsnorm: per row of n elements, Y = (X * 1/sqrt(mean(X²)+eps)) * Wt.
#include "common.glsl"
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer XB { float X[]; };
layout(std430, binding = 1) readonly buffer WB { float Wt[]; };
layout(std430, binding = 2) writeonly buffer YB { float Y[]; };
layout(push_constant) uniform P { uint n; uint rows; float eps; uint xOff; uint yOff; uint wOff; } p;
shared float red[64];
void main() {
	uint r = gid();
	if (r >= p.rows) return;
	uint t = gl_LocalInvocationID.x;
	uint xb = p.xOff + r * p.n;
	float s = 0.0;
	for (uint k = t; k < p.n; k += 64u) { float v = X[xb + k]; s += v * v; }
	red[t] = s;
	barrier();
	for (uint w = 32u; w > 0u; w >>= 1) {
		if (t < w) red[t] += red[t + w];
		barrier();
	}
	float scale = 1.0 / sqrt(red[0] / float(p.n) + p.eps);
	uint yb = p.yOff + r * p.n;
	for (uint k = t; k < p.n; k += 64u) Y[yb + k] = (X[xb + k] * scale) * Wt[p.wOff + k];
}

#version 450
// softmax: each row of n elements of X, in place (max-subtracted).
#include "common.glsl"
layout(local_size_x = 64) in;
layout(std430, binding = 0) buffer XB { float X[]; };
layout(push_constant) uniform P { uint n; uint rows; uint xOff; } p;
shared float red[64];
void main() {
	uint r = gid();
	if (r >= p.rows) return;
	uint t = gl_LocalInvocationID.x;
	uint xb = p.xOff + r * p.n;
	float m = uintBitsToFloat(0xff800000u);
	for (uint k = t; k < p.n; k += 64u) m = max(m, X[xb + k]);
	red[t] = m;
	barrier();
	for (uint w = 32u; w > 0u; w >>= 1) {
		if (t < w) red[t] = max(red[t], red[t + w]);
		barrier();
	}
	m = red[0];
	barrier();
	if (isinf(m) && m < 0.0) {
		for (uint k = t; k < p.n; k += 64u) X[xb + k] = 1.0 / float(p.n);
		return;
	}
	float s = 0.0;
	for (uint k = t; k < p.n; k += 64u) { float e = exp(X[xb + k] - m); X[xb + k] = e; s += e; }
	red[t] = s;
	barrier();
	for (uint w = 32u; w > 0u; w >>= 1) {
		if (t < w) red[t] += red[t + w];
		barrier();
	}
	float inv = 1.0 / red[0];
	for (uint k = t; k < p.n; k += 64u) X[xb + k] *= inv;
}

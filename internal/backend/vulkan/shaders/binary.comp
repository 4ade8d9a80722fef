#version 450
// binary: Y[i] = A[i] op B[i] for op 0 add, 1 mul, 2 silu(A)·B,
// 3 gelu(A)·B (tanh approximation, as ggml_gelu), 4 A·f (B unused),
// 5 f·tanh(A/f) (soft-capping, B unused), 6 A[i] + B[i mod m] (a bias row
// added to every row of m elements).
#include "common.glsl"
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer AB { float A[]; };
layout(std430, binding = 1) readonly buffer BB { float B[]; };
layout(std430, binding = 2) writeonly buffer YB { float Y[]; };
layout(push_constant) uniform P { uint n; uint op; uint aOff; uint bOff; uint yOff; float f; uint m; } p;

// tanhs is tanh without the overflow of exp(2x) for large |x|.
float tanhs(float x) {
	float t = exp(-2.0 * abs(x));
	return sign(x) * (1.0 - t) / (1.0 + t);
}

void main() {
	uint e = gid() * 64u + gl_LocalInvocationID.x;
	if (e >= p.n) return;
	float a = A[p.aOff + e];
	float y;
	if (p.op == 0u) y = a + B[p.bOff + e];
	else if (p.op == 1u) y = a * B[p.bOff + e];
	else if (p.op == 2u) y = (a / (1.0 + exp(-a))) * B[p.bOff + e];
	else if (p.op == 3u) y = (0.5 * a * (1.0 + tanhs(0.7978845608028654 * a * (1.0 + 0.044715 * a * a)))) * B[p.bOff + e];
	else if (p.op == 4u) y = a * p.f;
	else if (p.op == 5u) y = p.f * tanhs(a / p.f);
	else y = a + B[p.bOff + e % p.m];
	Y[p.yOff + e] = y;
}

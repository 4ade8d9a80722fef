#version 450
// attention: causal grouped-query attention of one layer. One workgroup
// per (query row b, head h): scores against cache rows 0..startPos+b of
// kv head h/group (only the last window of them when window > 0), each
// score soft-capped (cap·tanh(s/cap)) when cap ≠ 0, an online softmax
// over tiles of TILE keys, and the weighted sum of the values. The cache is f16 (two halves per uint)
// when KV_F16 is defined, f32 otherwise. headDim ≤ 256.
#include "common.glsl"
#define TILE 256u
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer QB { float Q[]; };
#ifdef KV_F16
layout(std430, binding = 1) readonly buffer KB { uint K[]; };
layout(std430, binding = 2) readonly buffer VB { uint V[]; };
float kval(uint e) { return unpackHalf2x16(K[e >> 1])[e & 1u]; }
float vval(uint e) { return unpackHalf2x16(V[e >> 1])[e & 1u]; }
#else
layout(std430, binding = 1) readonly buffer KB { float K[]; };
layout(std430, binding = 2) readonly buffer VB { float V[]; };
float kval(uint e) { return K[e]; }
float vval(uint e) { return V[e]; }
#endif
layout(std430, binding = 3) writeonly buffer OB { float O[]; };
layout(push_constant) uniform P {
	uint nHead; uint group; uint headDim; uint kvStride;
	uint startPos; uint batch; float scale; uint qOff; uint oOff;
	uint window; float cap;
} p;
shared float qs[256];
shared float sc[TILE];
shared float red[64];

// tanhs is tanh without the overflow of exp(2x) for large |x|.
float tanhs(float x) {
	float t = exp(-2.0 * abs(x));
	return sign(x) * (1.0 - t) / (1.0 + t);
}

float reduceMax(uint t, float v) {
	red[t] = v;
	barrier();
	for (uint w = 32u; w > 0u; w >>= 1) {
		if (t < w) red[t] = max(red[t], red[t + w]);
		barrier();
	}
	float r = red[0];
	barrier();
	return r;
}

float reduceSum(uint t, float v) {
	red[t] = v;
	barrier();
	for (uint w = 32u; w > 0u; w >>= 1) {
		if (t < w) red[t] += red[t + w];
		barrier();
	}
	float r = red[0];
	barrier();
	return r;
}

void main() {
	uint g = gid();
	if (g >= p.batch * p.nHead) return;
	uint t = gl_LocalInvocationID.x;
	uint b = g / p.nHead;
	uint h = g % p.nHead;
	uint D = p.headDim;
	uint kvh = h / p.group;
	uint qb = p.qOff + g * D;
	for (uint i = t; i < D; i += 64u) qs[i] = Q[qb + i];
	barrier();
	uint n = p.startPos + b + 1u;
	uint lo = 0u;
	if (p.window > 0u && n > p.window) lo = n - p.window;
	float m = uintBitsToFloat(0xff800000u);
	float l = 0.0;
	float acc[4] = float[4](0.0, 0.0, 0.0, 0.0);
	for (uint t0 = lo; t0 < n; t0 += TILE) {
		uint tn = min(TILE, n - t0);
		float lm = uintBitsToFloat(0xff800000u);
		for (uint j = t; j < tn; j += 64u) {
			uint kb = (t0 + j) * p.kvStride + kvh * D;
			float s = 0.0;
			for (uint i = 0u; i < D; i++) s += qs[i] * kval(kb + i);
			s *= p.scale;
			if (p.cap != 0.0) s = p.cap * tanhs(s / p.cap);
			sc[j] = s;
			lm = max(lm, s);
		}
		float mt = reduceMax(t, lm);
		float mn = max(m, mt);
		float corr = (isinf(m) && m < 0.0) ? 0.0 : exp(m - mn);
		float ls = 0.0;
		for (uint j = t; j < tn; j += 64u) {
			float e = exp(sc[j] - mn);
			sc[j] = e;
			ls += e;
		}
		float lt = reduceSum(t, ls);
		l = l * corr + lt;
		for (uint a = 0u; a < 4u; a++) {
			uint i = t + 64u * a;
			if (i >= D) break;
			float s = acc[a] * corr;
			for (uint j = 0u; j < tn; j++) s += sc[j] * vval((t0 + j) * p.kvStride + kvh * D + i);
			acc[a] = s;
		}
		m = mn;
		barrier();
	}
	for (uint a = 0u; a < 4u; a++) {
		uint i = t + 64u * a;
		if (i >= D) break;
		O[p.oOff + g * D + i] = acc[a] / l;
	}
}

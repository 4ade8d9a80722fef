#version 450
// matmul: Y[yOff + b*yStride + r] = Σ_k W[row r][k] · X[xOff + b*cols + k]
// for r < rows, b < batch. One workgroup per weight row; the row is read
// in its GGUF block layout starting at byte wOff + r*rowBytes, and each
// dequantized element is used for up to NC batch columns at once.
#include "common.glsl"
#define NC 4u
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer WB { uint W[]; };
layout(std430, binding = 1) readonly buffer XB { float X[]; };
layout(std430, binding = 2) writeonly buffer YB { float Y[]; };
layout(push_constant) uniform P {
	uint cols; uint rows; uint batch; uint wOff;
	uint rowBytes; uint xOff; uint yOff; uint yStride;
} p;
#include "deq.glsl"
shared vec4 red[64];
void main() {
	uint r = gid();
	if (r >= p.rows) return;
	uint t = gl_LocalInvocationID.x;
	uint ro = p.wOff + r * p.rowBytes;
	for (uint b0 = 0u; b0 < p.batch; b0 += NC) {
		uint nc = min(NC, p.batch - b0);
		vec4 acc = vec4(0.0);
		uint xb = p.xOff + b0 * p.cols;
		if (nc == 1u) {
			for (uint k = t; k < p.cols; k += 64u) acc.x += deq(ro, k) * X[xb + k];
		} else {
			for (uint k = t; k < p.cols; k += 64u) {
				float w = deq(ro, k);
				uint i = xb + k;
				acc.x += w * X[i];
				acc.y += w * X[i + p.cols];
				if (nc > 2u) acc.z += w * X[i + 2u * p.cols];
				if (nc > 3u) acc.w += w * X[i + 3u * p.cols];
			}
		}
		red[t] = acc;
		barrier();
		for (uint w = 32u; w > 0u; w >>= 1) {
			if (t < w) red[t] += red[t + w];
			barrier();
		}
		if (t < nc) Y[p.yOff + (b0 + t) * p.yStride + r] = red[0][t];
		barrier();
	}
}

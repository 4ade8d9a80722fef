#version 450
// matmul: Y[b*yStride + yOff + r] = Σ_k W[row r][k] · X[xOff + b*cols + k]
// for r < rows, b < batch. One workgroup per weight row; the row is read
// in its GGUF block layout starting at byte wOff + r*rowBytes.
#include "common.glsl"
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer WB { uint W[]; };
layout(std430, binding = 1) readonly buffer XB { float X[]; };
layout(std430, binding = 2) writeonly buffer YB { float Y[]; };
layout(push_constant) uniform P {
	uint cols; uint rows; uint batch; uint wOff;
	uint rowBytes; uint xOff; uint yOff; uint yStride;
} p;
#include "deq.glsl"
shared float red[64];
void main() {
	uint r = gid();
	if (r >= p.rows) return;
	uint t = gl_LocalInvocationID.x;
	uint ro = p.wOff + r * p.rowBytes;
	for (uint b = 0u; b < p.batch; b++) {
		uint xb = p.xOff + b * p.cols;
		float s = 0.0;
		for (uint k = t; k < p.cols; k += 64u) {
			s += deq(ro, k) * X[xb + k];
		}
		red[t] = s;
		barrier();
		for (uint w = 32u; w > 0u; w >>= 1) {
			if (t < w) red[t] += red[t + w];
			barrier();
		}
		if (t == 0u) Y[p.yOff + b * p.yStride + r] = red[0];
		barrier();
	}
}

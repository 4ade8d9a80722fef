#version 450
// matmul_tiled: the product of matmul.comp for batches of many columns
// (prompt processing). One workgroup per tile of 64 weight rows × 64
// batch columns: each step stages 32 dequantized elements of each of the
// tile's rows and the 32 matching inputs of each of its columns in
// shared memory, then each of the 128 threads accumulates a block of
// 4 rows × 8 columns, so every weight element is decoded once per 64
// columns instead of once per 4. Any rows, cols and batch (edges are
// zero-padded); 128 invocations, 16 KiB of shared memory.
#include "common.glsl"
#define TM 64u
#define TN 64u
#define TK 32u
layout(local_size_x = 128) in;
layout(std430, binding = 0) readonly buffer WB { uint W[]; };
layout(std430, binding = 1) readonly buffer XB { float X[]; };
layout(std430, binding = 2) writeonly buffer YB { float Y[]; };
layout(push_constant) uniform P {
	uint cols; uint rows; uint batch; uint wOff;
	uint rowBytes; uint xOff; uint yOff; uint yStride;
} p;
#include "deq.glsl"
shared vec4 ws[TK][TM / 4u]; // ws[k][i]: rows 4i..4i+3 of the tile at column k0+k
shared vec4 xs[TK][TN / 4u]; // xs[k][j]: batch columns 4j..4j+3 at k0+k

void main() {
	uint nR = (p.rows + TM - 1u) / TM;
	uint g = gid();
	uint r0 = (g % nR) * TM, b0 = (g / nR) * TN;
	if (b0 >= p.batch) return; // uniform over the workgroup
	uint t = gl_LocalInvocationID.x;
	uint tx = t & 15u, ty = t >> 4; // rows 4tx..4tx+3, columns 8ty..8ty+7
	// Staging: thread t loads 16 elements of tile row (and column) t/2.
	uint lr = t >> 1, lk = (t & 1u) * 16u;
	uint wr = r0 + lr, xc = b0 + lr;
	bool wok = wr < p.rows, xok = xc < p.batch;
	uint ro = p.wOff + (wok ? wr : 0u) * p.rowBytes;
	uint xo = p.xOff + (xok ? xc : 0u) * p.cols;
	vec4 a0 = vec4(0.0), a1 = vec4(0.0), a2 = vec4(0.0), a3 = vec4(0.0);
	vec4 a4 = vec4(0.0), a5 = vec4(0.0), a6 = vec4(0.0), a7 = vec4(0.0);
	for (uint k0 = 0u; k0 < p.cols; k0 += TK) {
		for (uint i = 0u; i < 16u; i++) {
			uint k = k0 + lk + i;
			bool kok = k < p.cols;
			ws[lk + i][lr >> 2][lr & 3u] = (wok && kok) ? deq(ro, k) : 0.0;
			xs[lk + i][lr >> 2][lr & 3u] = (xok && kok) ? X[xo + k] : 0.0;
		}
		barrier();
		for (uint k = 0u; k < TK; k++) {
			vec4 w = ws[k][tx];
			vec4 x0 = xs[k][2u * ty], x1 = xs[k][2u * ty + 1u];
			a0 += w * x0.x; a1 += w * x0.y; a2 += w * x0.z; a3 += w * x0.w;
			a4 += w * x1.x; a5 += w * x1.y; a6 += w * x1.z; a7 += w * x1.w;
		}
		barrier();
	}
	vec4 acc[8] = vec4[8](a0, a1, a2, a3, a4, a5, a6, a7);
	for (uint j = 0u; j < 8u; j++) {
		uint b = b0 + 8u * ty + j;
		if (b >= p.batch) break;
		for (uint i = 0u; i < 4u; i++) {
			uint r = r0 + 4u * tx + i;
			if (r < p.rows) Y[p.yOff + b * p.yStride + r] = acc[j][i];
		}
	}
}

#version 450
// getrows: Y[yOff + i*cols + c] = W[row ids[i]][c] for the ids that fall
// in this weight segment (rows row0 .. row0+nrows-1 starting at byte wOff).
#include "common.glsl"
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer WB { uint W[]; };
layout(std430, binding = 1) readonly buffer IB { uint ids[]; };
layout(std430, binding = 2) writeonly buffer YB { float Y[]; };
layout(push_constant) uniform P {
	uint cols; uint n; uint wOff; uint rowBytes;
	uint row0; uint nrows; uint idOff; uint yOff;
} p;
#include "deq.glsl"
void main() {
	uint e = gid() * 64u + gl_LocalInvocationID.x;
	if (e >= p.n * p.cols) return;
	uint i = e / p.cols;
	uint c = e % p.cols;
	uint id = ids[p.idOff + i];
	if (id < p.row0 || id - p.row0 >= p.nrows) return;
	Y[p.yOff + e] = deq(p.wOff + (id - p.row0) * p.rowBytes, c);
}

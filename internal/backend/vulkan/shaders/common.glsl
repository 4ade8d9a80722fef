// common.glsl: helpers shared by the compute shaders. Buffers are arrays
// of uint; the helpers read bytes, f16 values and quantized elements in
// their GGUF block layout.

// gid returns the flat workgroup index of a (possibly 2-D) dispatch.
uint gid() { return gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x; }

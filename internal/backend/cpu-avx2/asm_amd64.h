// Macros shared by the cpu-avx2 assembly files (#include "asm_amd64.h").

// HSUM reduces the 8 floats of Y register r into the low float of xr
// (r's X half), using X register xt.
#define HSUM(r, xr, xt) \
	VEXTRACTF128 $1, r, xt \
	VADDPS xt, xr, xr      \
	VMOVHLPS xr, xt, xt    \
	VADDPS xt, xr, xr      \
	VMOVSHDUP xr, xt       \
	VADDSS xt, xr, xr

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

// K4SCALES decodes the 6-bit scales and mins of the Q4_K (or Q5_K) block at SI:
// sc words (both lanes) into ysc, min words doubled ([m0,m0,m1,m1,..])
// into ym. Clobbers AX, CX, X2 (via xt), yt.
#define K4SCALES(xt, ysc, xsc, ym, xm, yt) \
	MOVL 4(SI), AX \
	ANDL $0x3f3f3f3f, AX \
	VMOVD AX, xt \
	MOVL 12(SI), CX \
	ANDL $0x0f0f0f0f, CX \
	MOVL 4(SI), AX \
	SHRL $2, AX \
	ANDL $0x30303030, AX \
	ORL AX, CX \
	VPINSRD $1, CX, xt, xt \
	MOVL 8(SI), AX \
	ANDL $0x3f3f3f3f, AX \
	VPINSRD $2, AX, xt, xt \
	MOVL 12(SI), CX \
	SHRL $4, CX \
	ANDL $0x0f0f0f0f, CX \
	MOVL 8(SI), AX \
	SHRL $2, AX \
	ANDL $0x30303030, AX \
	ORL AX, CX \
	VPINSRD $3, CX, xt, xt \
	VPMOVZXBW xt, xsc \
	VINSERTI128 $1, xsc, ysc, ysc \
	VPSRLDQ $8, xt, xm \
	VPMOVZXBW xm, xm \
	VPMOVZXWD xm, ym \
	VPSLLD $16, ym, yt \
	VPOR yt, ym, ym

// Q4K4ROW/Q4K4ROWH add one activation row's products with the low (Y8)
// or high (Y9) nibble quants, scaled by the words in Y10/Y11, to isum
// (the 4-row K-quant kernels; Y12 is scratch).
#define Q4K4ROW(aoff, isum) \
	VPMADDUBSW aoff, Y8, Y12 \
	VPMADDWD Y10, Y12, Y12 \
	VPADDD Y12, isum, isum

#define Q4K4ROWH(aoff, isum) \
	VPMADDUBSW aoff, Y9, Y12 \
	VPMADDWD Y11, Y12, Y12 \
	VPADDD Y12, isum, isum

// Q4K4FIN folds row j's sums into its accumulator: X8 = [d, dmin].
#define Q4K4FIN(dmem, bmem, isum, acc) \
	VBROADCASTSS dmem, X9 \
	VMULPS X8, X9, X9 \
	VBROADCASTSS X9, Y10 \
	VMOVSHDUP X9, X11 \
	VBROADCASTSS X11, Y11 \
	VCVTDQ2PS isum, Y12 \
	VFMADD231PS Y10, Y12, acc \
	VPMADDWD bmem, Y13, Y12 \
	VCVTDQ2PS Y12, Y12 \
	VFNMADD231PS Y11, Y12, acc

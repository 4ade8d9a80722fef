//go:build amd64

#include "textflag.h"

// K-quant weights (Q4_K, Q6_K) against Q8_K activations: int8 quants
// (256 per super-block), one f32 scale and 16 int16 sums of 16 quants
// per super-block.

// k4mask word k: broadcasts 16-bit word k within each 128-bit lane.
// k6mask g: word 2g in the low lane, word 2g+1 in the high lane.
DATA ·k4mask<>+0(SB)/8, $0x0100010001000100
DATA ·k4mask<>+8(SB)/8, $0x0100010001000100
DATA ·k4mask<>+16(SB)/8, $0x0100010001000100
DATA ·k4mask<>+24(SB)/8, $0x0100010001000100
DATA ·k4mask<>+32(SB)/8, $0x0302030203020302
DATA ·k4mask<>+40(SB)/8, $0x0302030203020302
DATA ·k4mask<>+48(SB)/8, $0x0302030203020302
DATA ·k4mask<>+56(SB)/8, $0x0302030203020302
DATA ·k4mask<>+64(SB)/8, $0x0504050405040504
DATA ·k4mask<>+72(SB)/8, $0x0504050405040504
DATA ·k4mask<>+80(SB)/8, $0x0504050405040504
DATA ·k4mask<>+88(SB)/8, $0x0504050405040504
DATA ·k4mask<>+96(SB)/8, $0x0706070607060706
DATA ·k4mask<>+104(SB)/8, $0x0706070607060706
DATA ·k4mask<>+112(SB)/8, $0x0706070607060706
DATA ·k4mask<>+120(SB)/8, $0x0706070607060706
DATA ·k4mask<>+128(SB)/8, $0x0908090809080908
DATA ·k4mask<>+136(SB)/8, $0x0908090809080908
DATA ·k4mask<>+144(SB)/8, $0x0908090809080908
DATA ·k4mask<>+152(SB)/8, $0x0908090809080908
DATA ·k4mask<>+160(SB)/8, $0x0b0a0b0a0b0a0b0a
DATA ·k4mask<>+168(SB)/8, $0x0b0a0b0a0b0a0b0a
DATA ·k4mask<>+176(SB)/8, $0x0b0a0b0a0b0a0b0a
DATA ·k4mask<>+184(SB)/8, $0x0b0a0b0a0b0a0b0a
DATA ·k4mask<>+192(SB)/8, $0x0d0c0d0c0d0c0d0c
DATA ·k4mask<>+200(SB)/8, $0x0d0c0d0c0d0c0d0c
DATA ·k4mask<>+208(SB)/8, $0x0d0c0d0c0d0c0d0c
DATA ·k4mask<>+216(SB)/8, $0x0d0c0d0c0d0c0d0c
DATA ·k4mask<>+224(SB)/8, $0x0f0e0f0e0f0e0f0e
DATA ·k4mask<>+232(SB)/8, $0x0f0e0f0e0f0e0f0e
DATA ·k4mask<>+240(SB)/8, $0x0f0e0f0e0f0e0f0e
DATA ·k4mask<>+248(SB)/8, $0x0f0e0f0e0f0e0f0e
GLOBL ·k4mask<>(SB), RODATA|NOPTR, $256
DATA ·k6mask<>+0(SB)/8, $0x0100010001000100
DATA ·k6mask<>+8(SB)/8, $0x0100010001000100
DATA ·k6mask<>+16(SB)/8, $0x0302030203020302
DATA ·k6mask<>+24(SB)/8, $0x0302030203020302
DATA ·k6mask<>+32(SB)/8, $0x0504050405040504
DATA ·k6mask<>+40(SB)/8, $0x0504050405040504
DATA ·k6mask<>+48(SB)/8, $0x0706070607060706
DATA ·k6mask<>+56(SB)/8, $0x0706070607060706
DATA ·k6mask<>+64(SB)/8, $0x0908090809080908
DATA ·k6mask<>+72(SB)/8, $0x0908090809080908
DATA ·k6mask<>+80(SB)/8, $0x0b0a0b0a0b0a0b0a
DATA ·k6mask<>+88(SB)/8, $0x0b0a0b0a0b0a0b0a
DATA ·k6mask<>+96(SB)/8, $0x0d0c0d0c0d0c0d0c
DATA ·k6mask<>+104(SB)/8, $0x0d0c0d0c0d0c0d0c
DATA ·k6mask<>+112(SB)/8, $0x0f0e0f0e0f0e0f0e
DATA ·k6mask<>+120(SB)/8, $0x0f0e0f0e0f0e0f0e
GLOBL ·k6mask<>(SB), RODATA|NOPTR, $128

DATA ·k0F<>+0(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA ·k0F<>+8(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA ·k0F<>+16(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA ·k0F<>+24(SB)/8, $0x0f0f0f0f0f0f0f0f
GLOBL ·k0F<>(SB), RODATA|NOPTR, $32

DATA ·k30<>+0(SB)/8, $0x3030303030303030
DATA ·k30<>+8(SB)/8, $0x3030303030303030
DATA ·k30<>+16(SB)/8, $0x3030303030303030
DATA ·k30<>+24(SB)/8, $0x3030303030303030
GLOBL ·k30<>(SB), RODATA|NOPTR, $32

#define HSUM(r, xr, xt) \
	VEXTRACTF128 $1, r, xt \
	VADDPS xt, xr, xr      \
	VMOVHLPS xr, xt, xt    \
	VADDPS xt, xr, xr      \
	VMOVSHDUP xr, xt       \
	VADDSS xt, xr, xr

// K4SCALES decodes the 6-bit scales and mins of the Q4_K block at SI:
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

// func dotQ4K(w *byte, a *int8, ad *float32, bs *int16, nb int) float32
TEXT ·dotQ4K(SB), NOSPLIT, $0-44
	MOVQ w+0(FP), SI
	MOVQ a+8(FP), DI
	MOVQ ad+16(FP), DX
	MOVQ bs+24(FP), BX
	MOVQ nb+32(FP), R8
	VMOVDQU ·k0F<>(SB), Y15
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	TESTQ R8, R8
	JEQ q4k_done
q4k_loop:
	K4SCALES(X9, Y2, X2, Y3, X3, Y4)
	VPMADDWD (BX), Y3, Y3
	VPXOR Y4, Y4, Y4
	// chunk 0
	VMOVDQU 16(SI), Y5
	VPSRLW $4, Y5, Y6
	VPAND Y15, Y5, Y5
	VPAND Y15, Y6, Y6
	VPMADDUBSW (DI), Y5, Y5
	VPMADDUBSW 32(DI), Y6, Y6
	VPSHUFB ·k4mask<>+0(SB), Y2, Y7
	VPMADDWD Y7, Y5, Y5
	VPSHUFB ·k4mask<>+32(SB), Y2, Y8
	VPMADDWD Y8, Y6, Y6
	VPADDD Y5, Y4, Y4
	VPADDD Y6, Y4, Y4
	// chunk 1
	VMOVDQU 48(SI), Y5
	VPSRLW $4, Y5, Y6
	VPAND Y15, Y5, Y5
	VPAND Y15, Y6, Y6
	VPMADDUBSW 64(DI), Y5, Y5
	VPMADDUBSW 96(DI), Y6, Y6
	VPSHUFB ·k4mask<>+64(SB), Y2, Y7
	VPMADDWD Y7, Y5, Y5
	VPSHUFB ·k4mask<>+96(SB), Y2, Y8
	VPMADDWD Y8, Y6, Y6
	VPADDD Y5, Y4, Y4
	VPADDD Y6, Y4, Y4
	// chunk 2
	VMOVDQU 80(SI), Y5
	VPSRLW $4, Y5, Y6
	VPAND Y15, Y5, Y5
	VPAND Y15, Y6, Y6
	VPMADDUBSW 128(DI), Y5, Y5
	VPMADDUBSW 160(DI), Y6, Y6
	VPSHUFB ·k4mask<>+128(SB), Y2, Y7
	VPMADDWD Y7, Y5, Y5
	VPSHUFB ·k4mask<>+160(SB), Y2, Y8
	VPMADDWD Y8, Y6, Y6
	VPADDD Y5, Y4, Y4
	VPADDD Y6, Y4, Y4
	// chunk 3
	VMOVDQU 112(SI), Y5
	VPSRLW $4, Y5, Y6
	VPAND Y15, Y5, Y5
	VPAND Y15, Y6, Y6
	VPMADDUBSW 192(DI), Y5, Y5
	VPMADDUBSW 224(DI), Y6, Y6
	VPSHUFB ·k4mask<>+192(SB), Y2, Y7
	VPMADDWD Y7, Y5, Y5
	VPSHUFB ·k4mask<>+224(SB), Y2, Y8
	VPMADDWD Y8, Y6, Y6
	VPADDD Y5, Y4, Y4
	VPADDD Y6, Y4, Y4
	// scales: [d·da, dmin·da]
	VMOVD (SI), X5
	VCVTPH2PS X5, X5
	VBROADCASTSS (DX), X6
	VMULPS X6, X5, X5
	VBROADCASTSS X5, Y6
	VMOVSHDUP X5, X7
	VBROADCASTSS X7, Y7
	VCVTDQ2PS Y4, Y4
	VFMADD231PS Y6, Y4, Y0
	VCVTDQ2PS Y3, Y3
	VFMADD231PS Y7, Y3, Y1
	ADDQ $144, SI
	ADDQ $256, DI
	ADDQ $4, DX
	ADDQ $32, BX
	DECQ R8
	JNE q4k_loop
q4k_done:
	VSUBPS Y1, Y0, Y0
	HSUM(Y0, X0, X1)
	VZEROUPPER
	MOVSS X0, ret+40(FP)
	RET

// Q4K4CHUNK handles quant chunk c (byte offset qo = 16+32c, activation
// offset ao = 64c, mask offsets mo, mo+32) for 4 activation rows.
#define Q4K4ROW(aoff, isum) \
	VPMADDUBSW aoff, Y8, Y12 \
	VPMADDWD Y10, Y12, Y12 \
	VPADDD Y12, isum, isum

#define Q4K4ROWH(aoff, isum) \
	VPMADDUBSW aoff, Y9, Y12 \
	VPMADDWD Y11, Y12, Y12 \
	VPADDD Y12, isum, isum

#define Q4K4CHUNK(qo, ao, ao2, mo, mo2) \
	VMOVDQU qo(SI), Y8 \
	VPSRLW $4, Y8, Y9 \
	VPAND Y15, Y8, Y8 \
	VPAND Y15, Y9, Y9 \
	VPSHUFB ·k4mask<>+mo(SB), Y14, Y10 \
	VPSHUFB ·k4mask<>+mo2(SB), Y14, Y11 \
	Q4K4ROW(ao(DI), Y4) \
	Q4K4ROW(ao(DI)(R8*1), Y5) \
	Q4K4ROW(ao(DI)(R8*2), Y6) \
	Q4K4ROW(ao(DI)(R10*1), Y7) \
	Q4K4ROWH(ao2(DI), Y4) \
	Q4K4ROWH(ao2(DI)(R8*1), Y5) \
	Q4K4ROWH(ao2(DI)(R8*2), Y6) \
	Q4K4ROWH(ao2(DI)(R10*1), Y7)

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

// func dotQ4Kx4(w *byte, a *int8, astride int, ad *float32, dstride int, bs *int16, bstride int, nb int, out *float32)
TEXT ·dotQ4Kx4(SB), NOSPLIT, $0-72
	MOVQ w+0(FP), SI
	MOVQ a+8(FP), DI
	MOVQ astride+16(FP), R8
	MOVQ ad+24(FP), DX
	MOVQ dstride+32(FP), R9
	MOVQ bs+40(FP), BX
	MOVQ bstride+48(FP), R12
	LEAQ (R8)(R8*2), R10
	LEAQ (R9)(R9*2), R11
	LEAQ (R12)(R12*2), R13
	VMOVDQU ·k0F<>(SB), Y15
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	CMPQ nb+56(FP), $0
	JEQ q4k4_done
q4k4_loop:
	K4SCALES(X9, Y14, X14, Y13, X13, Y12)
	VPXOR Y4, Y4, Y4
	VPXOR Y5, Y5, Y5
	VPXOR Y6, Y6, Y6
	VPXOR Y7, Y7, Y7
	Q4K4CHUNK(16, 0, 32, 0, 32)
	Q4K4CHUNK(48, 64, 96, 64, 96)
	Q4K4CHUNK(80, 128, 160, 128, 160)
	Q4K4CHUNK(112, 192, 224, 192, 224)
	VMOVD (SI), X8
	VCVTPH2PS X8, X8
	Q4K4FIN((DX), (BX), Y4, Y0)
	Q4K4FIN((DX)(R9*1), (BX)(R12*1), Y5, Y1)
	Q4K4FIN((DX)(R9*2), (BX)(R12*2), Y6, Y2)
	Q4K4FIN((DX)(R11*1), (BX)(R13*1), Y7, Y3)
	ADDQ $144, SI
	ADDQ $256, DI
	ADDQ $4, DX
	ADDQ $32, BX
	DECQ nb+56(FP)
	JNE q4k4_loop
q4k4_done:
	MOVQ out+64(FP), DI
	HSUM(Y0, X0, X8)
	HSUM(Y1, X1, X8)
	HSUM(Y2, X2, X8)
	HSUM(Y3, X3, X8)
	VMOVSS X0, (DI)
	VMOVSS X1, 4(DI)
	VMOVSS X2, 8(DI)
	VMOVSS X3, 12(DI)
	VZEROUPPER
	RET

// Q6Q builds the 6-bit quants (0..63) of one group into Y5 for one-row.
// Q6GROUP(lo, hi-shift...) is spelled out per group below.

// func dotQ6K(w *byte, a *int8, ad *float32, bs *int16, nb int) float32
TEXT ·dotQ6K(SB), NOSPLIT, $0-44
	MOVQ w+0(FP), SI
	MOVQ a+8(FP), DI
	MOVQ ad+16(FP), DX
	MOVQ bs+24(FP), BX
	MOVQ nb+32(FP), CX
	VMOVDQU ·k0F<>(SB), Y15
	VMOVDQU ·k30<>(SB), Y14
	VXORPS Y0, Y0, Y0
	TESTQ CX, CX
	JEQ q6k_done
q6k_loop:
	VPMOVSXBW 192(SI), Y8
	VPMADDWD (BX), Y8, Y8
	VPSLLD $5, Y8, Y8
	VPXOR Y4, Y4, Y4
	VPSUBD Y8, Y4, Y4
	MOVQ $0, AX
q6k_half:
	VPMOVSXBW 192(SI)(AX*8), X9
	VINSERTI128 $1, X9, Y9, Y9
	MOVQ AX, R9
	SHLQ $6, R9
	VMOVDQU (SI)(R9*1), Y1
	VMOVDQU 32(SI)(R9*1), Y2
	MOVQ AX, R10
	SHLQ $5, R10
	VMOVDQU 128(SI)(R10*1), Y3
	SHLQ $1, R9 // activation offset 128·half
	// q1
	VPAND Y15, Y1, Y5
	VPSLLW $4, Y3, Y6
	VPAND Y14, Y6, Y6
	VPOR Y6, Y5, Y5
	VPMADDUBSW (DI)(R9*1), Y5, Y5
	VPSHUFB ·k6mask<>+0(SB), Y9, Y6
	VPMADDWD Y6, Y5, Y5
	VPADDD Y5, Y4, Y4
	// q2
	VPAND Y15, Y2, Y5
	VPSLLW $2, Y3, Y6
	VPAND Y14, Y6, Y6
	VPOR Y6, Y5, Y5
	VPMADDUBSW 32(DI)(R9*1), Y5, Y5
	VPSHUFB ·k6mask<>+32(SB), Y9, Y6
	VPMADDWD Y6, Y5, Y5
	VPADDD Y5, Y4, Y4
	// q3
	VPSRLW $4, Y1, Y5
	VPAND Y15, Y5, Y5
	VPAND Y14, Y3, Y6
	VPOR Y6, Y5, Y5
	VPMADDUBSW 64(DI)(R9*1), Y5, Y5
	VPSHUFB ·k6mask<>+64(SB), Y9, Y6
	VPMADDWD Y6, Y5, Y5
	VPADDD Y5, Y4, Y4
	// q4
	VPSRLW $4, Y2, Y5
	VPAND Y15, Y5, Y5
	VPSRLW $2, Y3, Y6
	VPAND Y14, Y6, Y6
	VPOR Y6, Y5, Y5
	VPMADDUBSW 96(DI)(R9*1), Y5, Y5
	VPSHUFB ·k6mask<>+96(SB), Y9, Y6
	VPMADDWD Y6, Y5, Y5
	VPADDD Y5, Y4, Y4
	INCQ AX
	CMPQ AX, $2
	JLT q6k_half
	VPBROADCASTW 208(SI), X5
	VCVTPH2PS X5, Y5
	VBROADCASTSS (DX), Y6
	VMULPS Y6, Y5, Y5
	VCVTDQ2PS Y4, Y4
	VFMADD231PS Y5, Y4, Y0
	ADDQ $210, SI
	ADDQ $256, DI
	ADDQ $4, DX
	ADDQ $32, BX
	DECQ CX
	JNE q6k_loop
q6k_done:
	HSUM(Y0, X0, X1)
	VZEROUPPER
	MOVSS X0, ret+40(FP)
	RET

#define Q6K4ROW(aoff, isum) \
	VPMADDUBSW aoff, Y11, Y9 \
	VPMADDWD Y12, Y9, Y9 \
	VPADDD Y9, isum, isum

#define Q6K4ROWS(ao) \
	Q6K4ROW(ao(DI), Y4) \
	Q6K4ROW(ao(DI)(R8*1), Y5) \
	Q6K4ROW(ao(DI)(R8*2), Y6) \
	Q6K4ROW(ao(DI)(R10*1), Y7)

#define Q6K4CORR(bmem, isum) \
	VPMADDWD bmem, Y12, Y9 \
	VPSLLD $5, Y9, Y9 \
	VPXOR isum, isum, isum \
	VPSUBD Y9, isum, isum

#define Q6K4FIN(dmem, isum, acc) \
	VBROADCASTSS dmem, Y9 \
	VMULPS Y10, Y9, Y9 \
	VCVTDQ2PS isum, isum \
	VFMADD231PS Y9, isum, acc

// Q6K4HALF processes one 128-element half of a Q6_K block for 4 rows.
#define Q6K4HALF(ql0, ql1, qh, sc, a1, a2, a3, a4) \
	VPMOVSXBW sc(SI), X13 \
	VINSERTI128 $1, X13, Y13, Y13 \
	VMOVDQU qh(SI), Y8 \
	VPAND ql0(SI), Y15, Y11 \
	VPSLLW $4, Y8, Y10 \
	VPAND Y14, Y10, Y10 \
	VPOR Y10, Y11, Y11 \
	VPSHUFB ·k6mask<>+0(SB), Y13, Y12 \
	Q6K4ROWS(a1) \
	VPAND ql1(SI), Y15, Y11 \
	VPSLLW $2, Y8, Y10 \
	VPAND Y14, Y10, Y10 \
	VPOR Y10, Y11, Y11 \
	VPSHUFB ·k6mask<>+32(SB), Y13, Y12 \
	Q6K4ROWS(a2) \
	VMOVDQU ql0(SI), Y11 \
	VPSRLW $4, Y11, Y11 \
	VPAND Y15, Y11, Y11 \
	VPAND Y14, Y8, Y10 \
	VPOR Y10, Y11, Y11 \
	VPSHUFB ·k6mask<>+64(SB), Y13, Y12 \
	Q6K4ROWS(a3) \
	VMOVDQU ql1(SI), Y11 \
	VPSRLW $4, Y11, Y11 \
	VPAND Y15, Y11, Y11 \
	VPSRLW $2, Y8, Y10 \
	VPAND Y14, Y10, Y10 \
	VPOR Y10, Y11, Y11 \
	VPSHUFB ·k6mask<>+96(SB), Y13, Y12 \
	Q6K4ROWS(a4)

// func dotQ6Kx4(w *byte, a *int8, astride int, ad *float32, dstride int, bs *int16, bstride int, nb int, out *float32)
TEXT ·dotQ6Kx4(SB), NOSPLIT, $0-72
	MOVQ w+0(FP), SI
	MOVQ a+8(FP), DI
	MOVQ astride+16(FP), R8
	MOVQ ad+24(FP), DX
	MOVQ dstride+32(FP), R9
	MOVQ bs+40(FP), BX
	MOVQ bstride+48(FP), R12
	LEAQ (R8)(R8*2), R10
	LEAQ (R9)(R9*2), R11
	LEAQ (R12)(R12*2), R13
	VMOVDQU ·k0F<>(SB), Y15
	VMOVDQU ·k30<>(SB), Y14
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	CMPQ nb+56(FP), $0
	JEQ q6k4_done
q6k4_loop:
	VPMOVSXBW 192(SI), Y12
	Q6K4CORR((BX), Y4)
	Q6K4CORR((BX)(R12*1), Y5)
	Q6K4CORR((BX)(R12*2), Y6)
	Q6K4CORR((BX)(R13*1), Y7)
	Q6K4HALF(0, 32, 128, 192, 0, 32, 64, 96)
	Q6K4HALF(64, 96, 160, 200, 128, 160, 192, 224)
	VPBROADCASTW 208(SI), X10
	VCVTPH2PS X10, Y10
	Q6K4FIN((DX), Y4, Y0)
	Q6K4FIN((DX)(R9*1), Y5, Y1)
	Q6K4FIN((DX)(R9*2), Y6, Y2)
	Q6K4FIN((DX)(R11*1), Y7, Y3)
	ADDQ $210, SI
	ADDQ $256, DI
	ADDQ $4, DX
	ADDQ $32, BX
	DECQ nb+56(FP)
	JNE q6k4_loop
q6k4_done:
	MOVQ out+64(FP), DI
	HSUM(Y0, X0, X8)
	HSUM(Y1, X1, X8)
	HSUM(Y2, X2, X8)
	HSUM(Y3, X3, X8)
	VMOVSS X0, (DI)
	VMOVSS X1, 4(DI)
	VMOVSS X2, 8(DI)
	VMOVSS X3, 12(DI)
	VZEROUPPER
	RET

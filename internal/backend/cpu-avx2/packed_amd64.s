//go:build amd64

#include "textflag.h"

// Kernels over the packed layout of Q4_0/Q8_0 weights (see packed.go):
// per group of 16 rows, the 16 rows' f16 scales of every block, then per
// block the quants as chunks of 64 bytes, 4 bytes of each of the 16 rows,
// so that one VPDPBUSD multiplies 4 weights of 16 rows at once by 4
// activation quants broadcast from memory, and the 16 lanes of the
// accumulator are the 16 rows' dot products: no horizontal sums, one
// scale conversion per block for 16 rows.
//
// Registers shared by the macros: R10 = the block's quants, SI = its 16
// f16 scales, Z4..Z11 = the block's weights as unsigned bytes (chunk c,
// and for Q4_0 its high nibbles), Z12 = the 16 scales as f32, Z15 = 0x0F.

// LOADQ4 prefetches 4 KiB ahead into L2 and loads the 4 chunks of a Q4_0
// block: low nibbles (weights 4c..4c+3) in Z4, Z6, Z8, Z10, high nibbles
// (weights 16+4c..) in Z5, Z7, Z9, Z11.
#define LOADQ4 \
	PREFETCHT2 4096(R10) \
	PREFETCHT2 4160(R10) \
	PREFETCHT2 4224(R10) \
	PREFETCHT2 4288(R10) \
	VMOVDQU64 0(R10), Z4 \
	VMOVDQU64 64(R10), Z6 \
	VMOVDQU64 128(R10), Z8 \
	VMOVDQU64 192(R10), Z10 \
	VPSRLD $4, Z4, Z5 \
	VPSRLD $4, Z6, Z7 \
	VPSRLD $4, Z8, Z9 \
	VPSRLD $4, Z10, Z11 \
	VPANDD Z15, Z4, Z4 \
	VPANDD Z15, Z5, Z5 \
	VPANDD Z15, Z6, Z6 \
	VPANDD Z15, Z7, Z7 \
	VPANDD Z15, Z8, Z8 \
	VPANDD Z15, Z9, Z9 \
	VPANDD Z15, Z10, Z10 \
	VPANDD Z15, Z11, Z11

// LOADQ8 loads the 8 chunks of a Q8_0 block (weights 4c..4c+3 in Z4+c)
// as two 256-bit halves each, with an L1 prefetch 3 KiB ahead: 3–5% more
// GB/s on 2 threads than 512-bit loads with an L2 prefetch (which is
// what suits Q4_0).
#define LOADQ8 \
	PREFETCHT0 3072(R10) \
	PREFETCHT0 3136(R10) \
	PREFETCHT0 3200(R10) \
	PREFETCHT0 3264(R10) \
	PREFETCHT0 3328(R10) \
	PREFETCHT0 3392(R10) \
	PREFETCHT0 3456(R10) \
	PREFETCHT0 3520(R10) \
	VMOVDQU 0(R10), Y4 \
	VINSERTI64X4 $1, 32(R10), Z4, Z4 \
	VMOVDQU 64(R10), Y5 \
	VINSERTI64X4 $1, 96(R10), Z5, Z5 \
	VMOVDQU 128(R10), Y6 \
	VINSERTI64X4 $1, 160(R10), Z6, Z6 \
	VMOVDQU 192(R10), Y7 \
	VINSERTI64X4 $1, 224(R10), Z7, Z7 \
	VMOVDQU 256(R10), Y8 \
	VINSERTI64X4 $1, 288(R10), Z8, Z8 \
	VMOVDQU 320(R10), Y9 \
	VINSERTI64X4 $1, 352(R10), Z9, Z9 \
	VMOVDQU 384(R10), Y10 \
	VINSERTI64X4 $1, 416(R10), Z10, Z10 \
	VMOVDQU 448(R10), Y11 \
	VINSERTI64X4 $1, 480(R10), Z11, Z11

// DOTQ4 adds one activation row's block (32 signed quants at a) times
// the loaded Q4_0 block into c1 and c2 (two chains, 16 rows each).
#define DOTQ4(a, c1, c2) \
	VPDPBUSD.BCST 0(a), Z4, c1 \
	VPDPBUSD.BCST 16(a), Z5, c2 \
	VPDPBUSD.BCST 4(a), Z6, c1 \
	VPDPBUSD.BCST 20(a), Z7, c2 \
	VPDPBUSD.BCST 8(a), Z8, c1 \
	VPDPBUSD.BCST 24(a), Z9, c2 \
	VPDPBUSD.BCST 12(a), Z10, c1 \
	VPDPBUSD.BCST 28(a), Z11, c2

// DOTQ8 is DOTQ4 for a loaded Q8_0 block.
#define DOTQ8(a, c1, c2) \
	VPDPBUSD.BCST 0(a), Z4, c1 \
	VPDPBUSD.BCST 4(a), Z5, c2 \
	VPDPBUSD.BCST 8(a), Z6, c1 \
	VPDPBUSD.BCST 12(a), Z7, c2 \
	VPDPBUSD.BCST 16(a), Z8, c1 \
	VPDPBUSD.BCST 20(a), Z9, c2 \
	VPDPBUSD.BCST 24(a), Z10, c1 \
	VPDPBUSD.BCST 28(a), Z11, c2

// START4 starts a row's block sum at its correction cneg (−8·Σa) ...
#define START4(cn, c1, c2) \
	VPBROADCASTD cn, c1 \
	VPXORD c2, c2, c2

// ... and START8 at 16·cneg = −128·Σa (Q8_0 quants are stored +128).
#define START8(cn, c1, c2) \
	VPBROADCASTD cn, c1 \
	VPSLLD $4, c1, c1 \
	VPXORD c2, c2, c2

// FINISH adds the block's integer sums (c1 + c2) scaled by the weight
// scales (Z12) and the activation scale at dx to the row's accumulator.
#define FINISH(c1, c2, dx, t, acc) \
	VPADDD c2, c1, c1 \
	VCVTDQ2PS c1, c1 \
	VMULPS.BCST dx, Z12, t \
	VFMADD231PS t, c1, acc

// ONEROW is the body of the one-activation-row kernels (func w *byte, nb
// int, a *int8, cneg *int32, dx *float32, out *float32):
// out[n] = Σ_i d_w[i][n]·dx[i]·(Σ_k w[i][n][k]·a[32i+k] + corr[i]) for
// the 16 rows n of the group at w.
#define ONEROW(LOAD, START, DOT, qstep, loop, done) \
	MOVQ w+0(FP), SI \
	MOVQ nb+8(FP), CX \
	MOVQ a+16(FP), DI \
	MOVQ cneg+24(FP), BX \
	MOVQ dx+32(FP), DX \
	MOVQ CX, R8 \
	SHLQ $5, R8 \
	LEAQ (SI)(R8*1), R10 \
	VPBROADCASTQ ·mask0F(SB), Z15 \
	VPXORD Z0, Z0, Z0 \
	TESTQ CX, CX \
	JEQ done \
loop: \
	LOAD \
	VCVTPH2PS (SI), Z12 \
	START((BX), Z1, Z2) \
	DOT(DI, Z1, Z2) \
	FINISH(Z1, Z2, (DX), Z3, Z0) \
	ADDQ $32, SI \
	ADDQ $qstep, R10 \
	ADDQ $32, DI \
	ADDQ $4, BX \
	ADDQ $4, DX \
	DECQ CX \
	JNE loop \
done: \
	MOVQ out+40(FP), R9 \
	VMOVUPS Z0, (R9) \
	VZEROUPPER \
	RET

// FOURROWS is the body of the four-activation-row kernels (func w *byte,
// nb int, a *int8, astride int, cneg *int32, dx *float32, sstride int,
// out *float32, ostride int): ONEROW for activation rows astride bytes
// apart (their cneg and dx rows sstride bytes apart, outputs ostride
// bytes apart), each weight block loaded and unpacked once for the 4.
#define FOURROWS(LOAD, START, DOT, qstep, loop, done) \
	MOVQ w+0(FP), SI \
	MOVQ nb+8(FP), CX \
	MOVQ a+16(FP), DI \
	MOVQ astride+24(FP), AX \
	LEAQ (DI)(AX*1), R11 \
	LEAQ (DI)(AX*2), R12 \
	LEAQ (R11)(AX*2), R13 \
	MOVQ cneg+32(FP), BX \
	MOVQ dx+40(FP), DX \
	MOVQ sstride+48(FP), R8 \
	LEAQ (R8)(R8*2), R9 \
	MOVQ CX, AX \
	SHLQ $5, AX \
	LEAQ (SI)(AX*1), R10 \
	VPBROADCASTQ ·mask0F(SB), Z15 \
	VPXORD Z0, Z0, Z0 \
	VPXORD Z1, Z1, Z1 \
	VPXORD Z2, Z2, Z2 \
	VPXORD Z3, Z3, Z3 \
	TESTQ CX, CX \
	JEQ done \
loop: \
	LOAD \
	VCVTPH2PS (SI), Z12 \
	START((BX), Z16, Z17) \
	DOT(DI, Z16, Z17) \
	FINISH(Z16, Z17, (DX), Z24, Z0) \
	START((BX)(R8*1), Z18, Z19) \
	DOT(R11, Z18, Z19) \
	FINISH(Z18, Z19, (DX)(R8*1), Z25, Z1) \
	START((BX)(R8*2), Z20, Z21) \
	DOT(R12, Z20, Z21) \
	FINISH(Z20, Z21, (DX)(R8*2), Z26, Z2) \
	START((BX)(R9*1), Z22, Z23) \
	DOT(R13, Z22, Z23) \
	FINISH(Z22, Z23, (DX)(R9*1), Z27, Z3) \
	ADDQ $32, SI \
	ADDQ $qstep, R10 \
	ADDQ $32, DI \
	ADDQ $32, R11 \
	ADDQ $32, R12 \
	ADDQ $32, R13 \
	ADDQ $4, BX \
	ADDQ $4, DX \
	DECQ CX \
	JNE loop \
done: \
	MOVQ out+56(FP), AX \
	MOVQ ostride+64(FP), R8 \
	VMOVUPS Z0, (AX) \
	VMOVUPS Z1, (AX)(R8*1) \
	VMOVUPS Z2, (AX)(R8*2) \
	LEAQ (AX)(R8*2), AX \
	VMOVUPS Z3, (AX)(R8*1) \
	VZEROUPPER \
	RET

// func dotQ4_0P16(w *byte, nb int, a *int8, cneg *int32, dx *float32, out *float32)
// (cneg[i] = −8·Σ_k a[32i+k], the nibbles' offset)
TEXT ·dotQ4_0P16(SB), NOSPLIT, $0-48
	ONEROW(LOADQ4, START4, DOTQ4, 256, p4_loop, p4_done)

// func dotQ8_0P16(w *byte, nb int, a *int8, cneg *int32, dx *float32, out *float32)
// (weights stored as unsigned q+128: the correction is 16·cneg[i])
TEXT ·dotQ8_0P16(SB), NOSPLIT, $0-48
	ONEROW(LOADQ8, START8, DOTQ8, 512, p8_loop, p8_done)

// func dotQ4_0P16x4(w *byte, nb int, a *int8, astride int, cneg *int32, dx *float32, sstride int, out *float32, ostride int)
TEXT ·dotQ4_0P16x4(SB), NOSPLIT, $0-72
	FOURROWS(LOADQ4, START4, DOTQ4, 256, p4x4_loop, p4x4_done)

// func dotQ8_0P16x4(w *byte, nb int, a *int8, astride int, cneg *int32, dx *float32, sstride int, out *float32, ostride int)
TEXT ·dotQ8_0P16x4(SB), NOSPLIT, $0-72
	FOURROWS(LOADQ8, START8, DOTQ8, 512, p8x4_loop, p8x4_done)

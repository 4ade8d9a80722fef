//go:build amd64

#include "textflag.h"

DATA ·p0F<>+0(SB)/8, $0x0f0f0f0f0f0f0f0f
GLOBL ·p0F<>(SB), RODATA|NOPTR, $8

// Kernels over the packed layout of Q4_0/Q8_0 weights (see packed.go):
// per group of 16 rows, the 16 rows' f16 scales of every block, then per
// block the quants as chunks of 64 bytes, 4 bytes of each of the 16 rows,
// so that one VPDPBUSD multiplies 4 weights of 16 rows at once by 4
// activation quants broadcast from memory, and the 16 lanes of the
// accumulator are the 16 rows' dot products: no horizontal sums, one
// scale conversion per block for 16 rows.

// func dotQ4_0P16(w *byte, nb int, a *int8, cneg *int32, dx *float32, out *float32)
//
// out[n] = Σ_i d_w[i][n]·dx[i]·(Σ_k nib[i][n][k]·a[32i+k] + cneg[i]) for
// the 16 rows n of the group at w (cneg[i] = −8·Σ_k a[32i+k]).
TEXT ·dotQ4_0P16(SB), NOSPLIT, $0-48
	MOVQ w+0(FP), SI
	MOVQ nb+8(FP), CX
	MOVQ a+16(FP), DI
	MOVQ cneg+24(FP), BX
	MOVQ dx+32(FP), DX
	MOVQ out+40(FP), R9
	MOVQ CX, R8
	SHLQ $5, R8
	LEAQ (SI)(R8*1), R10
	VPBROADCASTQ ·p0F<>(SB), Z15
	VPXORD Z0, Z0, Z0
	TESTQ CX, CX
	JEQ p4_done

p4_loop:
	PREFETCHT2 4096(R10)
	PREFETCHT2 4160(R10)
	PREFETCHT2 4224(R10)
	PREFETCHT2 4288(R10)
	VPBROADCASTD (BX), Z1
	VPXORD Z2, Z2, Z2
	VMOVDQU64 0(R10), Z4
	VMOVDQU64 64(R10), Z6
	VMOVDQU64 128(R10), Z8
	VMOVDQU64 192(R10), Z10
	VPSRLD $4, Z4, Z5
	VPSRLD $4, Z6, Z7
	VPSRLD $4, Z8, Z9
	VPSRLD $4, Z10, Z11
	VPANDD Z15, Z4, Z4
	VPANDD Z15, Z5, Z5
	VPANDD Z15, Z6, Z6
	VPANDD Z15, Z7, Z7
	VPANDD Z15, Z8, Z8
	VPANDD Z15, Z9, Z9
	VPANDD Z15, Z10, Z10
	VPANDD Z15, Z11, Z11
	VPDPBUSD.BCST 0(DI), Z4, Z1
	VPDPBUSD.BCST 16(DI), Z5, Z2
	VPDPBUSD.BCST 4(DI), Z6, Z1
	VPDPBUSD.BCST 20(DI), Z7, Z2
	VPDPBUSD.BCST 8(DI), Z8, Z1
	VPDPBUSD.BCST 24(DI), Z9, Z2
	VPDPBUSD.BCST 12(DI), Z10, Z1
	VPDPBUSD.BCST 28(DI), Z11, Z2
	VPADDD Z2, Z1, Z1
	VCVTDQ2PS Z1, Z1
	VCVTPH2PS (SI), Z3
	VMULPS.BCST (DX), Z3, Z3
	VFMADD231PS Z3, Z1, Z0
	ADDQ $32, SI
	ADDQ $256, R10
	ADDQ $32, DI
	ADDQ $4, BX
	ADDQ $4, DX
	DECQ CX
	JNE p4_loop

p4_done:
	VMOVUPS Z0, (R9)
	VZEROUPPER
	RET

// func dotQ8_0P16(w *byte, nb int, a *int8, cneg *int32, dx *float32, out *float32)
//
// As dotQ4_0P16 for packed Q8_0 weights, stored as unsigned bytes
// q+128: the correction is 16·cneg[i] = −128·Σ_k a[32i+k].
TEXT ·dotQ8_0P16(SB), NOSPLIT, $0-48
	MOVQ w+0(FP), SI
	MOVQ nb+8(FP), CX
	MOVQ a+16(FP), DI
	MOVQ cneg+24(FP), BX
	MOVQ dx+32(FP), DX
	MOVQ out+40(FP), R9
	MOVQ CX, R8
	SHLQ $5, R8
	LEAQ (SI)(R8*1), R10
	VPXORD Z0, Z0, Z0
	TESTQ CX, CX
	JEQ p8_done

p8_loop:
	PREFETCHT2 8192(R10)
	PREFETCHT2 8256(R10)
	PREFETCHT2 8320(R10)
	PREFETCHT2 8384(R10)
	PREFETCHT2 8448(R10)
	PREFETCHT2 8512(R10)
	PREFETCHT2 8576(R10)
	PREFETCHT2 8640(R10)
	VPBROADCASTD (BX), Z1
	VPSLLD $4, Z1, Z1
	VPXORD Z2, Z2, Z2
	VMOVDQU64 0(R10), Z4
	VMOVDQU64 64(R10), Z5
	VMOVDQU64 128(R10), Z6
	VMOVDQU64 192(R10), Z7
	VMOVDQU64 256(R10), Z8
	VMOVDQU64 320(R10), Z9
	VMOVDQU64 384(R10), Z10
	VMOVDQU64 448(R10), Z11
	VPDPBUSD.BCST 0(DI), Z4, Z1
	VPDPBUSD.BCST 4(DI), Z5, Z2
	VPDPBUSD.BCST 8(DI), Z6, Z1
	VPDPBUSD.BCST 12(DI), Z7, Z2
	VPDPBUSD.BCST 16(DI), Z8, Z1
	VPDPBUSD.BCST 20(DI), Z9, Z2
	VPDPBUSD.BCST 24(DI), Z10, Z1
	VPDPBUSD.BCST 28(DI), Z11, Z2
	VPADDD Z2, Z1, Z1
	VCVTDQ2PS Z1, Z1
	VCVTPH2PS (SI), Z3
	VMULPS.BCST (DX), Z3, Z3
	VFMADD231PS Z3, Z1, Z0
	ADDQ $32, SI
	ADDQ $512, R10
	ADDQ $32, DI
	ADDQ $4, BX
	ADDQ $4, DX
	DECQ CX
	JNE p8_loop

p8_done:
	VMOVUPS Z0, (R9)
	VZEROUPPER
	RET

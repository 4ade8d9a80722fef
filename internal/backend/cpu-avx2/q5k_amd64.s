//go:build amd64

#include "textflag.h"
#include "asm_amd64.h"

// Q5_K weights against Q8_K activations. A Q5_K block is a Q4_K block
// (f16 d, f16 dmin, 12 bytes of 6-bit scales and mins) with a fifth bit
// per element: byte l of qh[32] (offset 16) holds it for element l of
// each 32-element sub-block j in bit j; the low nibbles follow at 48.
// The products are Q4_K's (k_amd64.s): unsigned 5-bit quants × int8
// activations with VPMADDUBSW (31·127·2 fits int16), sub-block scales by
// VPMADDWD, and the mins through the activations' 16-element sums.

// bytes10: 0x10 in every byte (the fifth bit's value).
DATA ·bytes10<>+0(SB)/8, $0x1010101010101010
DATA ·bytes10<>+8(SB)/8, $0x1010101010101010
DATA ·bytes10<>+16(SB)/8, $0x1010101010101010
DATA ·bytes10<>+24(SB)/8, $0x1010101010101010
GLOBL ·bytes10<>(SB), RODATA|NOPTR, $32

// func dotQ5K(w *byte, a *int8, ad *float32, bs *int16, nb int) float32
TEXT ·dotQ5K(SB), NOSPLIT, $0-44
	MOVQ w+0(FP), SI
	MOVQ a+8(FP), DI
	MOVQ ad+16(FP), DX
	MOVQ bs+24(FP), BX
	MOVQ nb+32(FP), R8
	VMOVDQU ·mask0F(SB), Y15
	VMOVDQU ·bytes10<>(SB), Y14
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	TESTQ R8, R8
	JEQ q5k_done
q5k_loop:
	PREFETCHT0 2048(SI)
	PREFETCHT0 2112(SI)
	PREFETCHT0 2176(SI)
	K4SCALES(X9, Y2, X2, Y3, X3, Y4)
	VPMADDWD (BX), Y3, Y3
	VPXOR Y4, Y4, Y4
	VMOVDQU 16(SI), Y13
	// chunk 0: sub-blocks 0 (low nibbles, qh bit 0) and 1 (high, bit 1)
	VMOVDQU 48(SI), Y5
	VPSRLW $4, Y5, Y6
	VPAND Y15, Y5, Y5
	VPAND Y15, Y6, Y6
	VPSLLW $4, Y13, Y7
	VPAND Y14, Y7, Y7
	VPOR Y7, Y5, Y5
	VPSLLW $3, Y13, Y7
	VPAND Y14, Y7, Y7
	VPOR Y7, Y6, Y6
	VPMADDUBSW 0(DI), Y5, Y5
	VPMADDUBSW 32(DI), Y6, Y6
	VPSHUFB ·k4mask+0(SB), Y2, Y7
	VPMADDWD Y7, Y5, Y5
	VPSHUFB ·k4mask+32(SB), Y2, Y8
	VPMADDWD Y8, Y6, Y6
	VPADDD Y5, Y4, Y4
	VPADDD Y6, Y4, Y4
	// chunk 1: sub-blocks 2 (low nibbles, qh bit 2) and 3 (high, bit 3)
	VMOVDQU 80(SI), Y5
	VPSRLW $4, Y5, Y6
	VPAND Y15, Y5, Y5
	VPAND Y15, Y6, Y6
	VPSLLW $2, Y13, Y7
	VPAND Y14, Y7, Y7
	VPOR Y7, Y5, Y5
	VPSLLW $1, Y13, Y7
	VPAND Y14, Y7, Y7
	VPOR Y7, Y6, Y6
	VPMADDUBSW 64(DI), Y5, Y5
	VPMADDUBSW 96(DI), Y6, Y6
	VPSHUFB ·k4mask+64(SB), Y2, Y7
	VPMADDWD Y7, Y5, Y5
	VPSHUFB ·k4mask+96(SB), Y2, Y8
	VPMADDWD Y8, Y6, Y6
	VPADDD Y5, Y4, Y4
	VPADDD Y6, Y4, Y4
	// chunk 2: sub-blocks 4 (low nibbles, qh bit 4) and 5 (high, bit 5)
	VMOVDQU 112(SI), Y5
	VPSRLW $4, Y5, Y6
	VPAND Y15, Y5, Y5
	VPAND Y15, Y6, Y6
	VPAND Y14, Y13, Y7
	VPOR Y7, Y5, Y5
	VPSRLW $1, Y13, Y7
	VPAND Y14, Y7, Y7
	VPOR Y7, Y6, Y6
	VPMADDUBSW 128(DI), Y5, Y5
	VPMADDUBSW 160(DI), Y6, Y6
	VPSHUFB ·k4mask+128(SB), Y2, Y7
	VPMADDWD Y7, Y5, Y5
	VPSHUFB ·k4mask+160(SB), Y2, Y8
	VPMADDWD Y8, Y6, Y6
	VPADDD Y5, Y4, Y4
	VPADDD Y6, Y4, Y4
	// chunk 3: sub-blocks 6 (low nibbles, qh bit 6) and 7 (high, bit 7)
	VMOVDQU 144(SI), Y5
	VPSRLW $4, Y5, Y6
	VPAND Y15, Y5, Y5
	VPAND Y15, Y6, Y6
	VPSRLW $2, Y13, Y7
	VPAND Y14, Y7, Y7
	VPOR Y7, Y5, Y5
	VPSRLW $3, Y13, Y7
	VPAND Y14, Y7, Y7
	VPOR Y7, Y6, Y6
	VPMADDUBSW 192(DI), Y5, Y5
	VPMADDUBSW 224(DI), Y6, Y6
	VPSHUFB ·k4mask+192(SB), Y2, Y7
	VPMADDWD Y7, Y5, Y5
	VPSHUFB ·k4mask+224(SB), Y2, Y8
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
	ADDQ $176, SI
	ADDQ $256, DI
	ADDQ $4, DX
	ADDQ $32, BX
	DECQ R8
	JNE q5k_loop
q5k_done:
	VSUBPS Y1, Y0, Y0
	HSUM(Y0, X0, X1)
	VZEROUPPER
	MOVSS X0, ret+40(FP)
	RET

// Q5K4HB ORs the fifth bit of each quant into dst (Y8 or Y9): the qh
// bytes (re-read from the block, Y12 is the only free register) shifted
// so that bit b lands on bit 4, masked with 0x10.

// func dotQ5Kx4(w *byte, a *int8, astride int, ad *float32, dstride int, bs *int16, bstride int, nb int, out *float32)
// dotQ5K for 4 activation rows (row j at a + j·astride, its scales at
// ad + j·dstride, its sums at bs + j·bstride; strides in bytes), each weight block decoded
// once (the register plan of dotQ4Kx4).
TEXT ·dotQ5Kx4(SB), NOSPLIT, $0-72
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
	VMOVDQU ·mask0F(SB), Y15
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	CMPQ nb+56(FP), $0
	JEQ q5k4_done
q5k4_loop:
	PREFETCHT0 2048(SI)
	PREFETCHT0 2112(SI)
	PREFETCHT0 2176(SI)
	K4SCALES(X9, Y14, X14, Y13, X13, Y12)
	VPXOR Y4, Y4, Y4
	VPXOR Y5, Y5, Y5
	VPXOR Y6, Y6, Y6
	VPXOR Y7, Y7, Y7
	// chunk 0
	VMOVDQU 48(SI), Y8
	VPSRLW $4, Y8, Y9
	VPAND Y15, Y8, Y8
	VPAND Y15, Y9, Y9
	VMOVDQU 16(SI), Y12
	VPSLLW $4, Y12, Y12
	VPAND ·bytes10<>(SB), Y12, Y12
	VPOR Y12, Y8, Y8
	VMOVDQU 16(SI), Y12
	VPSLLW $3, Y12, Y12
	VPAND ·bytes10<>(SB), Y12, Y12
	VPOR Y12, Y9, Y9
	VPSHUFB ·k4mask+0(SB), Y14, Y10
	VPSHUFB ·k4mask+32(SB), Y14, Y11
	Q4K4ROW(0(DI), Y4)
	Q4K4ROW(0(DI)(R8*1), Y5)
	Q4K4ROW(0(DI)(R8*2), Y6)
	Q4K4ROW(0(DI)(R10*1), Y7)
	Q4K4ROWH(32(DI), Y4)
	Q4K4ROWH(32(DI)(R8*1), Y5)
	Q4K4ROWH(32(DI)(R8*2), Y6)
	Q4K4ROWH(32(DI)(R10*1), Y7)
	// chunk 1
	VMOVDQU 80(SI), Y8
	VPSRLW $4, Y8, Y9
	VPAND Y15, Y8, Y8
	VPAND Y15, Y9, Y9
	VMOVDQU 16(SI), Y12
	VPSLLW $2, Y12, Y12
	VPAND ·bytes10<>(SB), Y12, Y12
	VPOR Y12, Y8, Y8
	VMOVDQU 16(SI), Y12
	VPSLLW $1, Y12, Y12
	VPAND ·bytes10<>(SB), Y12, Y12
	VPOR Y12, Y9, Y9
	VPSHUFB ·k4mask+64(SB), Y14, Y10
	VPSHUFB ·k4mask+96(SB), Y14, Y11
	Q4K4ROW(64(DI), Y4)
	Q4K4ROW(64(DI)(R8*1), Y5)
	Q4K4ROW(64(DI)(R8*2), Y6)
	Q4K4ROW(64(DI)(R10*1), Y7)
	Q4K4ROWH(96(DI), Y4)
	Q4K4ROWH(96(DI)(R8*1), Y5)
	Q4K4ROWH(96(DI)(R8*2), Y6)
	Q4K4ROWH(96(DI)(R10*1), Y7)
	// chunk 2
	VMOVDQU 112(SI), Y8
	VPSRLW $4, Y8, Y9
	VPAND Y15, Y8, Y8
	VPAND Y15, Y9, Y9
	VMOVDQU 16(SI), Y12
	VPAND ·bytes10<>(SB), Y12, Y12
	VPOR Y12, Y8, Y8
	VMOVDQU 16(SI), Y12
	VPSRLW $1, Y12, Y12
	VPAND ·bytes10<>(SB), Y12, Y12
	VPOR Y12, Y9, Y9
	VPSHUFB ·k4mask+128(SB), Y14, Y10
	VPSHUFB ·k4mask+160(SB), Y14, Y11
	Q4K4ROW(128(DI), Y4)
	Q4K4ROW(128(DI)(R8*1), Y5)
	Q4K4ROW(128(DI)(R8*2), Y6)
	Q4K4ROW(128(DI)(R10*1), Y7)
	Q4K4ROWH(160(DI), Y4)
	Q4K4ROWH(160(DI)(R8*1), Y5)
	Q4K4ROWH(160(DI)(R8*2), Y6)
	Q4K4ROWH(160(DI)(R10*1), Y7)
	// chunk 3
	VMOVDQU 144(SI), Y8
	VPSRLW $4, Y8, Y9
	VPAND Y15, Y8, Y8
	VPAND Y15, Y9, Y9
	VMOVDQU 16(SI), Y12
	VPSRLW $2, Y12, Y12
	VPAND ·bytes10<>(SB), Y12, Y12
	VPOR Y12, Y8, Y8
	VMOVDQU 16(SI), Y12
	VPSRLW $3, Y12, Y12
	VPAND ·bytes10<>(SB), Y12, Y12
	VPOR Y12, Y9, Y9
	VPSHUFB ·k4mask+192(SB), Y14, Y10
	VPSHUFB ·k4mask+224(SB), Y14, Y11
	Q4K4ROW(192(DI), Y4)
	Q4K4ROW(192(DI)(R8*1), Y5)
	Q4K4ROW(192(DI)(R8*2), Y6)
	Q4K4ROW(192(DI)(R10*1), Y7)
	Q4K4ROWH(224(DI), Y4)
	Q4K4ROWH(224(DI)(R8*1), Y5)
	Q4K4ROWH(224(DI)(R8*2), Y6)
	Q4K4ROWH(224(DI)(R10*1), Y7)
	VMOVD (SI), X8
	VCVTPH2PS X8, X8
	Q4K4FIN((DX), (BX), Y4, Y0)
	Q4K4FIN((DX)(R9*1), (BX)(R12*1), Y5, Y1)
	Q4K4FIN((DX)(R9*2), (BX)(R12*2), Y6, Y2)
	Q4K4FIN((DX)(R11*1), (BX)(R13*1), Y7, Y3)
	ADDQ $176, SI
	ADDQ $256, DI
	ADDQ $4, DX
	ADDQ $32, BX
	DECQ nb+56(FP)
	JNE q5k4_loop
q5k4_done:
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

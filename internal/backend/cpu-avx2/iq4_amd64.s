//go:build amd64

#include "textflag.h"
#include "asm_amd64.h"

// IQ4_NL and IQ4_XS weights: 4-bit indices into a 16-entry int8 grid
// (gguf.IQ4NLValues), looked up with VPSHUFB. Grid values are signed, so
// the products use VPSIGNB to move the weight's sign onto the
// activation: |w| (unsigned) × a·sign(w) (signed) with VPMADDUBSW; |w|
// and |a| are at most 127, so a pair sum fits int16.

DATA ·iq4grid<>+0(SB)/8, $0xf6eaddcfbfad9881
DATA ·iq4grid<>+8(SB)/8, $0x7159453526190d01
GLOBL ·iq4grid<>(SB), RODATA|NOPTR, $16

// func dotIQ4NL(w *byte, a *int8, ad *float32, nb int) float32
// IQ4_NL blocks (f16 d, 16 bytes: low nibbles elements 0..15, high
// 16..31) against Q8_0 activations (32 quants, f32 scale per block).
TEXT ·dotIQ4NL(SB), NOSPLIT, $0-36
	MOVQ w+0(FP), SI
	MOVQ a+8(FP), DI
	MOVQ ad+16(FP), DX
	MOVQ nb+24(FP), R8
	VMOVDQU ·mask0F(SB), Y15
	VBROADCASTI128 ·iq4grid<>(SB), Y14
	VMOVDQU ·ones16(SB), Y13
	VXORPS Y0, Y0, Y0
	TESTQ R8, R8
	JEQ iq4nl_done
iq4nl_loop:
	VMOVDQU 2(SI), X5
	VPSRLW $4, X5, X6
	VINSERTI128 $1, X6, Y5, Y5
	VPAND Y15, Y5, Y5
	VPSHUFB Y5, Y14, Y5
	VMOVDQU (DI), Y6
	VPSIGNB Y5, Y5, Y7
	VPSIGNB Y5, Y6, Y6
	VPMADDUBSW Y6, Y7, Y7
	VPMADDWD Y13, Y7, Y7
	VCVTDQ2PS Y7, Y7
	MOVWLZX (SI), AX
	VMOVD AX, X8
	VCVTPH2PS X8, X8
	VMULSS (DX), X8, X8
	VBROADCASTSS X8, Y8
	VFMADD231PS Y8, Y7, Y0
	ADDQ $18, SI
	ADDQ $32, DI
	ADDQ $4, DX
	DECQ R8
	JNE iq4nl_loop
iq4nl_done:
	HSUM(Y0, X0, X1)
	VZEROUPPER
	MOVSS X0, ret+32(FP)
	RET

// IQ4XSSCALE puts the signed 6-bit scale (low nibble of byte R10 shifted
// by lsh, two bits of the u16 R9 at hsh, minus 32) into AX.
#define IQ4XSSCALE(lsh, hsh) \
	MOVL R10, AX \
	SHRL $lsh, AX \
	ANDL $15, AX \
	MOVL R9, CX \
	SHRL $hsh, CX \
	ANDL $3, CX \
	SHLL $4, CX \
	ORL CX, AX \
	SUBL $32, AX

// IQ4XSPAIR adds to Y4 the integer dot products of one pair of IQ4_XS
// sub-blocks: scales from byte sb of scales_l (and bits h0, h1 of R9),
// nibbles at q(SI), activations at a0(DI) and a1(DI).
#define IQ4XSPAIR(sb, h0, h1, q, a0, a1) \
	MOVBLZX sb(SI), R10 \
	IQ4XSSCALE(0, h0) \
	VMOVD AX, X11 \
	VPBROADCASTW X11, Y11 \
	IQ4XSSCALE(4, h1) \
	VMOVD AX, X12 \
	VPBROADCASTW X12, Y12 \
	VMOVDQU q(SI), Y5 \
	VPSRLW $4, Y5, Y6 \
	VPAND Y15, Y5, Y5 \
	VPAND Y15, Y6, Y6 \
	VPSHUFB Y5, Y14, Y5 \
	VPSHUFB Y6, Y14, Y6 \
	VPERM2I128 $0x20, Y6, Y5, Y9 \
	VPERM2I128 $0x31, Y6, Y5, Y10 \
	VMOVDQU a0(DI), Y7 \
	VMOVDQU a1(DI), Y8 \
	VPSIGNB Y9, Y9, Y5 \
	VPSIGNB Y9, Y7, Y7 \
	VPMADDUBSW Y7, Y5, Y5 \
	VPSIGNB Y10, Y10, Y6 \
	VPSIGNB Y10, Y8, Y8 \
	VPMADDUBSW Y8, Y6, Y6 \
	VPMADDWD Y11, Y5, Y5 \
	VPMADDWD Y12, Y6, Y6 \
	VPADDD Y5, Y4, Y4 \
	VPADDD Y6, Y4, Y4

// func dotIQ4XS(w *byte, a *int8, ad *float32, nb int) float32
// IQ4_XS super-blocks (f16 d, u16 scales_h, 4 bytes scales_l, 128 bytes
// of nibbles, 16 per 32-element sub-block) against Q8_K activations
// (256 quants, f32 scale). Sub-blocks go in pairs: one 32-byte load
// holds both (lane 0 the first's bytes, lane 1 the second's); after the
// lookup the lanes are regrouped (VPERM2I128) so that each register
// holds one sub-block in element order, matching whole activation loads.
TEXT ·dotIQ4XS(SB), NOSPLIT, $0-36
	MOVQ w+0(FP), SI
	MOVQ a+8(FP), DI
	MOVQ ad+16(FP), DX
	MOVQ nb+24(FP), R8
	VMOVDQU ·mask0F(SB), Y15
	VBROADCASTI128 ·iq4grid<>(SB), Y14
	VXORPS Y0, Y0, Y0
	TESTQ R8, R8
	JEQ iq4xs_done
iq4xs_loop:
	PREFETCHT0 1024(SI)
	PREFETCHT0 1088(SI)
	MOVWLZX 2(SI), R9
	VPXOR Y4, Y4, Y4
	IQ4XSPAIR(4, 0, 2, 8, 0, 32) // sub-blocks 0, 1
	IQ4XSPAIR(5, 4, 6, 40, 64, 96) // sub-blocks 2, 3
	IQ4XSPAIR(6, 8, 10, 72, 128, 160) // sub-blocks 4, 5
	IQ4XSPAIR(7, 12, 14, 104, 192, 224) // sub-blocks 6, 7
	MOVWLZX (SI), AX
	VMOVD AX, X8
	VCVTPH2PS X8, X8
	VMULSS (DX), X8, X8
	VBROADCASTSS X8, Y8
	VCVTDQ2PS Y4, Y4
	VFMADD231PS Y8, Y4, Y0
	ADDQ $136, SI
	ADDQ $256, DI
	ADDQ $4, DX
	DECQ R8
	JNE iq4xs_loop
iq4xs_done:
	HSUM(Y0, X0, X1)
	VZEROUPPER
	MOVSS X0, ret+32(FP)
	RET

// func dotIQ4NLx4(w *byte, a *int8, astride int, ad *float32, dstride int, nb int, out *float32)
// dotIQ4NL for 4 activation rows (row j at a + j·astride, its scales at
// ad + j·dstride; strides in bytes), each weight block looked up once.
TEXT ·dotIQ4NLx4(SB), NOSPLIT, $0-56
	MOVQ w+0(FP), SI
	MOVQ a+8(FP), DI
	MOVQ astride+16(FP), R8
	MOVQ ad+24(FP), DX
	MOVQ dstride+32(FP), R9
	MOVQ nb+40(FP), BX
	LEAQ (R8)(R8*2), R10
	LEAQ (R9)(R9*2), R11
	VMOVDQU ·mask0F(SB), Y15
	VBROADCASTI128 ·iq4grid<>(SB), Y14
	VMOVDQU ·ones16(SB), Y12
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	TESTQ BX, BX
	JEQ iq4nl4_done
iq4nl4_loop:
	VMOVDQU 2(SI), X8
	VPSRLW $4, X8, X9
	VINSERTI128 $1, X9, Y8, Y8
	VPAND Y15, Y8, Y8
	VPSHUFB Y8, Y14, Y8
	VPSIGNB Y8, Y8, Y10
	MOVWLZX (SI), AX
	VMOVD AX, X11
	VCVTPH2PS X11, X11
	VMOVDQU (DI), Y13
	VPSIGNB Y8, Y13, Y13
	VPMADDUBSW Y13, Y10, Y13
	VPMADDWD Y12, Y13, Y13
	VCVTDQ2PS Y13, Y13
	VMULSS (DX), X11, X9
	VBROADCASTSS X9, Y9
	VFMADD231PS Y9, Y13, Y0
	VMOVDQU (DI)(R8*1), Y13
	VPSIGNB Y8, Y13, Y13
	VPMADDUBSW Y13, Y10, Y13
	VPMADDWD Y12, Y13, Y13
	VCVTDQ2PS Y13, Y13
	VMULSS (DX)(R9*1), X11, X9
	VBROADCASTSS X9, Y9
	VFMADD231PS Y9, Y13, Y1
	VMOVDQU (DI)(R8*2), Y13
	VPSIGNB Y8, Y13, Y13
	VPMADDUBSW Y13, Y10, Y13
	VPMADDWD Y12, Y13, Y13
	VCVTDQ2PS Y13, Y13
	VMULSS (DX)(R9*2), X11, X9
	VBROADCASTSS X9, Y9
	VFMADD231PS Y9, Y13, Y2
	VMOVDQU (DI)(R10*1), Y13
	VPSIGNB Y8, Y13, Y13
	VPMADDUBSW Y13, Y10, Y13
	VPMADDWD Y12, Y13, Y13
	VCVTDQ2PS Y13, Y13
	VMULSS (DX)(R11*1), X11, X9
	VBROADCASTSS X9, Y9
	VFMADD231PS Y9, Y13, Y3
	ADDQ $18, SI
	ADDQ $32, DI
	ADDQ $4, DX
	DECQ BX
	JNE iq4nl4_loop
iq4nl4_done:
	MOVQ out+48(FP), DI
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

// IQ4XSSCALE4 is IQ4XSSCALE with the scale bytes in R13 and R12.
#define IQ4XSSCALE4(lsh, hsh) \
	MOVL R13, AX \
	SHRL $lsh, AX \
	ANDL $15, AX \
	MOVL R12, CX \
	SHRL $hsh, CX \
	ANDL $3, CX \
	SHLL $4, CX \
	ORL CX, AX \
	SUBL $32, AX

// func dotIQ4XSx4(w *byte, a *int8, astride int, ad *float32, dstride int, nb int, out *float32)
// dotIQ4XS for 4 activation rows (strides in bytes), each weight
// super-block decoded once: per pair of sub-blocks the grid values of
// each (Y10, Y11: lanes regrouped so the activations load whole) and
// their magnitudes (Y8, Y9), one sub-block's scale at a time in Y12.
TEXT ·dotIQ4XSx4(SB), NOSPLIT, $0-56
	MOVQ w+0(FP), SI
	MOVQ a+8(FP), DI
	MOVQ astride+16(FP), R8
	MOVQ ad+24(FP), DX
	MOVQ dstride+32(FP), R9
	MOVQ nb+40(FP), BX
	LEAQ (R8)(R8*2), R10
	LEAQ (R9)(R9*2), R11
	VMOVDQU ·mask0F(SB), Y15
	VBROADCASTI128 ·iq4grid<>(SB), Y14
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	TESTQ BX, BX
	JEQ iq4xs4_done
iq4xs4_loop:
	PREFETCHT0 1024(SI)
	PREFETCHT0 1088(SI)
	MOVWLZX 2(SI), R12
	VPXOR Y4, Y4, Y4
	VPXOR Y5, Y5, Y5
	VPXOR Y6, Y6, Y6
	VPXOR Y7, Y7, Y7
	// sub-blocks 0, 1: grid values of each in one register
	VMOVDQU 8(SI), Y8
	VPSRLW $4, Y8, Y9
	VPAND Y15, Y8, Y8
	VPAND Y15, Y9, Y9
	VPSHUFB Y8, Y14, Y8
	VPSHUFB Y9, Y14, Y9
	VPERM2I128 $0x20, Y9, Y8, Y10
	VPERM2I128 $0x31, Y9, Y8, Y11
	VPSIGNB Y10, Y10, Y8
	VPSIGNB Y11, Y11, Y9
	MOVBLZX 4(SI), R13
	IQ4XSSCALE4(0, 0)
	VMOVD AX, X12
	VPBROADCASTW X12, Y12
	VMOVDQU 0(DI), Y13
	VPSIGNB Y10, Y13, Y13
	VPMADDUBSW Y13, Y8, Y13
	VPMADDWD Y12, Y13, Y13
	VPADDD Y13, Y4, Y4
	VMOVDQU 0(DI)(R8*1), Y13
	VPSIGNB Y10, Y13, Y13
	VPMADDUBSW Y13, Y8, Y13
	VPMADDWD Y12, Y13, Y13
	VPADDD Y13, Y5, Y5
	VMOVDQU 0(DI)(R8*2), Y13
	VPSIGNB Y10, Y13, Y13
	VPMADDUBSW Y13, Y8, Y13
	VPMADDWD Y12, Y13, Y13
	VPADDD Y13, Y6, Y6
	VMOVDQU 0(DI)(R10*1), Y13
	VPSIGNB Y10, Y13, Y13
	VPMADDUBSW Y13, Y8, Y13
	VPMADDWD Y12, Y13, Y13
	VPADDD Y13, Y7, Y7
	IQ4XSSCALE4(4, 2)
	VMOVD AX, X12
	VPBROADCASTW X12, Y12
	VMOVDQU 32(DI), Y13
	VPSIGNB Y11, Y13, Y13
	VPMADDUBSW Y13, Y9, Y13
	VPMADDWD Y12, Y13, Y13
	VPADDD Y13, Y4, Y4
	VMOVDQU 32(DI)(R8*1), Y13
	VPSIGNB Y11, Y13, Y13
	VPMADDUBSW Y13, Y9, Y13
	VPMADDWD Y12, Y13, Y13
	VPADDD Y13, Y5, Y5
	VMOVDQU 32(DI)(R8*2), Y13
	VPSIGNB Y11, Y13, Y13
	VPMADDUBSW Y13, Y9, Y13
	VPMADDWD Y12, Y13, Y13
	VPADDD Y13, Y6, Y6
	VMOVDQU 32(DI)(R10*1), Y13
	VPSIGNB Y11, Y13, Y13
	VPMADDUBSW Y13, Y9, Y13
	VPMADDWD Y12, Y13, Y13
	VPADDD Y13, Y7, Y7
	// sub-blocks 2, 3: grid values of each in one register
	VMOVDQU 40(SI), Y8
	VPSRLW $4, Y8, Y9
	VPAND Y15, Y8, Y8
	VPAND Y15, Y9, Y9
	VPSHUFB Y8, Y14, Y8
	VPSHUFB Y9, Y14, Y9
	VPERM2I128 $0x20, Y9, Y8, Y10
	VPERM2I128 $0x31, Y9, Y8, Y11
	VPSIGNB Y10, Y10, Y8
	VPSIGNB Y11, Y11, Y9
	MOVBLZX 5(SI), R13
	IQ4XSSCALE4(0, 4)
	VMOVD AX, X12
	VPBROADCASTW X12, Y12
	VMOVDQU 64(DI), Y13
	VPSIGNB Y10, Y13, Y13
	VPMADDUBSW Y13, Y8, Y13
	VPMADDWD Y12, Y13, Y13
	VPADDD Y13, Y4, Y4
	VMOVDQU 64(DI)(R8*1), Y13
	VPSIGNB Y10, Y13, Y13
	VPMADDUBSW Y13, Y8, Y13
	VPMADDWD Y12, Y13, Y13
	VPADDD Y13, Y5, Y5
	VMOVDQU 64(DI)(R8*2), Y13
	VPSIGNB Y10, Y13, Y13
	VPMADDUBSW Y13, Y8, Y13
	VPMADDWD Y12, Y13, Y13
	VPADDD Y13, Y6, Y6
	VMOVDQU 64(DI)(R10*1), Y13
	VPSIGNB Y10, Y13, Y13
	VPMADDUBSW Y13, Y8, Y13
	VPMADDWD Y12, Y13, Y13
	VPADDD Y13, Y7, Y7
	IQ4XSSCALE4(4, 6)
	VMOVD AX, X12
	VPBROADCASTW X12, Y12
	VMOVDQU 96(DI), Y13
	VPSIGNB Y11, Y13, Y13
	VPMADDUBSW Y13, Y9, Y13
	VPMADDWD Y12, Y13, Y13
	VPADDD Y13, Y4, Y4
	VMOVDQU 96(DI)(R8*1), Y13
	VPSIGNB Y11, Y13, Y13
	VPMADDUBSW Y13, Y9, Y13
	VPMADDWD Y12, Y13, Y13
	VPADDD Y13, Y5, Y5
	VMOVDQU 96(DI)(R8*2), Y13
	VPSIGNB Y11, Y13, Y13
	VPMADDUBSW Y13, Y9, Y13
	VPMADDWD Y12, Y13, Y13
	VPADDD Y13, Y6, Y6
	VMOVDQU 96(DI)(R10*1), Y13
	VPSIGNB Y11, Y13, Y13
	VPMADDUBSW Y13, Y9, Y13
	VPMADDWD Y12, Y13, Y13
	VPADDD Y13, Y7, Y7
	// sub-blocks 4, 5: grid values of each in one register
	VMOVDQU 72(SI), Y8
	VPSRLW $4, Y8, Y9
	VPAND Y15, Y8, Y8
	VPAND Y15, Y9, Y9
	VPSHUFB Y8, Y14, Y8
	VPSHUFB Y9, Y14, Y9
	VPERM2I128 $0x20, Y9, Y8, Y10
	VPERM2I128 $0x31, Y9, Y8, Y11
	VPSIGNB Y10, Y10, Y8
	VPSIGNB Y11, Y11, Y9
	MOVBLZX 6(SI), R13
	IQ4XSSCALE4(0, 8)
	VMOVD AX, X12
	VPBROADCASTW X12, Y12
	VMOVDQU 128(DI), Y13
	VPSIGNB Y10, Y13, Y13
	VPMADDUBSW Y13, Y8, Y13
	VPMADDWD Y12, Y13, Y13
	VPADDD Y13, Y4, Y4
	VMOVDQU 128(DI)(R8*1), Y13
	VPSIGNB Y10, Y13, Y13
	VPMADDUBSW Y13, Y8, Y13
	VPMADDWD Y12, Y13, Y13
	VPADDD Y13, Y5, Y5
	VMOVDQU 128(DI)(R8*2), Y13
	VPSIGNB Y10, Y13, Y13
	VPMADDUBSW Y13, Y8, Y13
	VPMADDWD Y12, Y13, Y13
	VPADDD Y13, Y6, Y6
	VMOVDQU 128(DI)(R10*1), Y13
	VPSIGNB Y10, Y13, Y13
	VPMADDUBSW Y13, Y8, Y13
	VPMADDWD Y12, Y13, Y13
	VPADDD Y13, Y7, Y7
	IQ4XSSCALE4(4, 10)
	VMOVD AX, X12
	VPBROADCASTW X12, Y12
	VMOVDQU 160(DI), Y13
	VPSIGNB Y11, Y13, Y13
	VPMADDUBSW Y13, Y9, Y13
	VPMADDWD Y12, Y13, Y13
	VPADDD Y13, Y4, Y4
	VMOVDQU 160(DI)(R8*1), Y13
	VPSIGNB Y11, Y13, Y13
	VPMADDUBSW Y13, Y9, Y13
	VPMADDWD Y12, Y13, Y13
	VPADDD Y13, Y5, Y5
	VMOVDQU 160(DI)(R8*2), Y13
	VPSIGNB Y11, Y13, Y13
	VPMADDUBSW Y13, Y9, Y13
	VPMADDWD Y12, Y13, Y13
	VPADDD Y13, Y6, Y6
	VMOVDQU 160(DI)(R10*1), Y13
	VPSIGNB Y11, Y13, Y13
	VPMADDUBSW Y13, Y9, Y13
	VPMADDWD Y12, Y13, Y13
	VPADDD Y13, Y7, Y7
	// sub-blocks 6, 7: grid values of each in one register
	VMOVDQU 104(SI), Y8
	VPSRLW $4, Y8, Y9
	VPAND Y15, Y8, Y8
	VPAND Y15, Y9, Y9
	VPSHUFB Y8, Y14, Y8
	VPSHUFB Y9, Y14, Y9
	VPERM2I128 $0x20, Y9, Y8, Y10
	VPERM2I128 $0x31, Y9, Y8, Y11
	VPSIGNB Y10, Y10, Y8
	VPSIGNB Y11, Y11, Y9
	MOVBLZX 7(SI), R13
	IQ4XSSCALE4(0, 12)
	VMOVD AX, X12
	VPBROADCASTW X12, Y12
	VMOVDQU 192(DI), Y13
	VPSIGNB Y10, Y13, Y13
	VPMADDUBSW Y13, Y8, Y13
	VPMADDWD Y12, Y13, Y13
	VPADDD Y13, Y4, Y4
	VMOVDQU 192(DI)(R8*1), Y13
	VPSIGNB Y10, Y13, Y13
	VPMADDUBSW Y13, Y8, Y13
	VPMADDWD Y12, Y13, Y13
	VPADDD Y13, Y5, Y5
	VMOVDQU 192(DI)(R8*2), Y13
	VPSIGNB Y10, Y13, Y13
	VPMADDUBSW Y13, Y8, Y13
	VPMADDWD Y12, Y13, Y13
	VPADDD Y13, Y6, Y6
	VMOVDQU 192(DI)(R10*1), Y13
	VPSIGNB Y10, Y13, Y13
	VPMADDUBSW Y13, Y8, Y13
	VPMADDWD Y12, Y13, Y13
	VPADDD Y13, Y7, Y7
	IQ4XSSCALE4(4, 14)
	VMOVD AX, X12
	VPBROADCASTW X12, Y12
	VMOVDQU 224(DI), Y13
	VPSIGNB Y11, Y13, Y13
	VPMADDUBSW Y13, Y9, Y13
	VPMADDWD Y12, Y13, Y13
	VPADDD Y13, Y4, Y4
	VMOVDQU 224(DI)(R8*1), Y13
	VPSIGNB Y11, Y13, Y13
	VPMADDUBSW Y13, Y9, Y13
	VPMADDWD Y12, Y13, Y13
	VPADDD Y13, Y5, Y5
	VMOVDQU 224(DI)(R8*2), Y13
	VPSIGNB Y11, Y13, Y13
	VPMADDUBSW Y13, Y9, Y13
	VPMADDWD Y12, Y13, Y13
	VPADDD Y13, Y6, Y6
	VMOVDQU 224(DI)(R10*1), Y13
	VPSIGNB Y11, Y13, Y13
	VPMADDUBSW Y13, Y9, Y13
	VPMADDWD Y12, Y13, Y13
	VPADDD Y13, Y7, Y7
	MOVWLZX (SI), AX
	VMOVD AX, X8
	VCVTPH2PS X8, X8
	VMULSS (DX), X8, X9
	VBROADCASTSS X9, Y9
	VCVTDQ2PS Y4, Y4
	VFMADD231PS Y9, Y4, Y0
	VMULSS (DX)(R9*1), X8, X9
	VBROADCASTSS X9, Y9
	VCVTDQ2PS Y5, Y5
	VFMADD231PS Y9, Y5, Y1
	VMULSS (DX)(R9*2), X8, X9
	VBROADCASTSS X9, Y9
	VCVTDQ2PS Y6, Y6
	VFMADD231PS Y9, Y6, Y2
	VMULSS (DX)(R11*1), X8, X9
	VBROADCASTSS X9, Y9
	VCVTDQ2PS Y7, Y7
	VFMADD231PS Y9, Y7, Y3
	ADDQ $136, SI
	ADDQ $256, DI
	ADDQ $4, DX
	DECQ BX
	JNE iq4xs4_loop
iq4xs4_done:
	MOVQ out+48(FP), DI
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

// The IQ4 grid plus 128 (unsigned), for VPDPBUSD: (w+128)·a summed
// over a sub-block is w·a + 128·Σa, and the start value −128·Σa (from
// the activations' bsums) takes the bias back out exactly.
DATA ·iq4gridU<>+0(SB)/8, $0x766a5d4f3f2d1801
DATA ·iq4gridU<>+8(SB)/8, $0xf1d9c5b5a6998d81
GLOBL ·iq4gridU<>(SB), RODATA|NOPTR, $16

// Qword indices of the even (E) and odd (O) qwords of two zmm tables,
// and per dword lane p the shifts that bring sub-block p/2's scale bits
// down: 4·(p/2) in scales_l, 16+2·(p/2) in the dword d | scales_h<<16.
DATA ·iq4xsz<>+0(SB)/8, $0
DATA ·iq4xsz<>+8(SB)/8, $2
DATA ·iq4xsz<>+16(SB)/8, $4
DATA ·iq4xsz<>+24(SB)/8, $6
DATA ·iq4xsz<>+32(SB)/8, $8
DATA ·iq4xsz<>+40(SB)/8, $10
DATA ·iq4xsz<>+48(SB)/8, $12
DATA ·iq4xsz<>+56(SB)/8, $14
DATA ·iq4xsz<>+64(SB)/8, $1
DATA ·iq4xsz<>+72(SB)/8, $3
DATA ·iq4xsz<>+80(SB)/8, $5
DATA ·iq4xsz<>+88(SB)/8, $7
DATA ·iq4xsz<>+96(SB)/8, $9
DATA ·iq4xsz<>+104(SB)/8, $11
DATA ·iq4xsz<>+112(SB)/8, $13
DATA ·iq4xsz<>+120(SB)/8, $15
DATA ·iq4xsz<>+128(SB)/8, $0x0000000000000000
DATA ·iq4xsz<>+136(SB)/8, $0x0000000400000004
DATA ·iq4xsz<>+144(SB)/8, $0x0000000800000008
DATA ·iq4xsz<>+152(SB)/8, $0x0000000c0000000c
DATA ·iq4xsz<>+160(SB)/8, $0x0000001000000010
DATA ·iq4xsz<>+168(SB)/8, $0x0000001400000014
DATA ·iq4xsz<>+176(SB)/8, $0x0000001800000018
DATA ·iq4xsz<>+184(SB)/8, $0x0000001c0000001c
DATA ·iq4xsz<>+192(SB)/8, $0x0000001000000010
DATA ·iq4xsz<>+200(SB)/8, $0x0000001200000012
DATA ·iq4xsz<>+208(SB)/8, $0x0000001400000014
DATA ·iq4xsz<>+216(SB)/8, $0x0000001600000016
DATA ·iq4xsz<>+224(SB)/8, $0x0000001800000018
DATA ·iq4xsz<>+232(SB)/8, $0x0000001a0000001a
DATA ·iq4xsz<>+240(SB)/8, $0x0000001c0000001c
DATA ·iq4xsz<>+248(SB)/8, $0x0000001e0000001e
DATA ·iq4xsz<>+256(SB)/4, $15
DATA ·iq4xsz<>+260(SB)/4, $3
DATA ·iq4xsz<>+264(SB)/4, $32
GLOBL ·iq4xsz<>(SB), RODATA|NOPTR, $268

// IQ4XSROW adds one activation row's super-block to acc: start from
// −128·bsums (lane g: 16-element group g), four VPDPBUSD against the
// unsigned weights Z10..Z13, then per lane the sub-block scale times
// d_w (Z14) and the row's d_a (broadcast from doff).
#define IQ4XSROW(off, doff, t, acc) \
	VMOVDQU32 (off+256)(DI), t \
	VPDPBUSD (off)(DI), Z10, t \
	VPDPBUSD (off+64)(DI), Z11, t \
	VPDPBUSD (off+128)(DI), Z12, t \
	VPDPBUSD (off+192)(DI), Z13, t \
	VCVTDQ2PS t, t \
	VMULPS Z14, t, t \
	VFMADD231PS.BCST doff(DI), t, acc

// ZHSUM stores the sum of zmm acc's lanes at off(DI).
#define ZHSUM(z, y, x, off) \
	VEXTRACTF64X4 $1, z, Y9 \
	VADDPS Y9, y, y \
	HSUM(y, x, X8) \
	VMOVSS x, off(DI)

// func dotIQ4XSx8Z(w *byte, p *byte, nb int, out *float32)
// One IQ4_XS weight row against 8 activation rows in the x8 layout of
// packIQ4XS8 (per super-block 2592 bytes: for each row 256 quants, 64
// bytes of −128·bsums as int32, then the 8 rows' f32 scales). The
// quants of a row are permuted so that 64-byte chunk k holds, for each
// sub-block s, elements 32s+8k..32s+8k+7 in qword s: every dword lane
// of a VPDPBUSD then belongs to one sub-block (s = lane/2) in all four
// chunks, and the sub-block scales apply once per super-block, per lane.
// The weight side gets there with two qword permutes: chunk 0 is the
// low nibbles of the even qwords of the 128 nibble bytes, chunk 1 of
// the odd ones, chunks 2 and 3 their high nibbles.
TEXT ·dotIQ4XSx8Z(SB), NOSPLIT, $0-32
	MOVQ w+0(FP), SI
	MOVQ p+8(FP), DI
	MOVQ nb+16(FP), BX
	VBROADCASTI32X4 ·iq4gridU<>(SB), Z24
	VPBROADCASTQ ·mask0F(SB), Z25
	VMOVDQU64 ·iq4xsz<>+0(SB), Z26
	VMOVDQU64 ·iq4xsz<>+64(SB), Z27
	VMOVDQU64 ·iq4xsz<>+128(SB), Z28
	VMOVDQU64 ·iq4xsz<>+192(SB), Z29
	VPBROADCASTD ·iq4xsz<>+256(SB), Z30
	VPBROADCASTD ·iq4xsz<>+260(SB), Z31
	VPBROADCASTD ·iq4xsz<>+264(SB), Z15
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	TESTQ BX, BX
	JEQ iq4xsz_done
iq4xsz_loop:
	PREFETCHT0 1024(SI)
	PREFETCHT0 1088(SI)
	VMOVDQU64 8(SI), Z8
	VMOVDQU64 72(SI), Z9
	VMOVDQA64 Z26, Z10
	VPERMI2Q Z9, Z8, Z10
	VPERMT2Q Z9, Z27, Z8
	VPSRLW $4, Z10, Z12
	VPSRLW $4, Z8, Z13
	VPANDQ Z25, Z10, Z10
	VPANDQ Z25, Z8, Z11
	VPANDQ Z25, Z12, Z12
	VPANDQ Z25, Z13, Z13
	VPSHUFB Z10, Z24, Z10
	VPSHUFB Z11, Z24, Z11
	VPSHUFB Z12, Z24, Z12
	VPSHUFB Z13, Z24, Z13
	// per lane p: float(scale of sub-block p/2) · d_w
	VPBROADCASTD 4(SI), Z14
	VPSRLVD Z28, Z14, Z14
	VPANDD Z30, Z14, Z14
	VPBROADCASTD 0(SI), Z9
	VPSRLVD Z29, Z9, Z9
	VPANDD Z31, Z9, Z9
	VPSLLD $4, Z9, Z9
	VPORD Z9, Z14, Z14
	VPSUBD Z15, Z14, Z14
	VCVTDQ2PS Z14, Z14
	VPBROADCASTW 0(SI), Y9
	VCVTPH2PS Y9, Z9
	VMULPS Z9, Z14, Z14
	IQ4XSROW(0, 2560, Z16, Z0)
	IQ4XSROW(320, 2564, Z17, Z1)
	IQ4XSROW(640, 2568, Z18, Z2)
	IQ4XSROW(960, 2572, Z19, Z3)
	IQ4XSROW(1280, 2576, Z20, Z4)
	IQ4XSROW(1600, 2580, Z21, Z5)
	IQ4XSROW(1920, 2584, Z22, Z6)
	IQ4XSROW(2240, 2588, Z23, Z7)
	ADDQ $136, SI
	ADDQ $2592, DI
	DECQ BX
	JNE iq4xsz_loop
iq4xsz_done:
	MOVQ out+24(FP), DI
	ZHSUM(Z0, Y0, X0, 0)
	ZHSUM(Z1, Y1, X1, 4)
	ZHSUM(Z2, Y2, X2, 8)
	ZHSUM(Z3, Y3, X3, 12)
	ZHSUM(Z4, Y4, X4, 16)
	ZHSUM(Z5, Y5, X5, 20)
	ZHSUM(Z6, Y6, X6, 24)
	ZHSUM(Z7, Y7, X7, 28)
	VZEROUPPER
	RET

// Lane p ← lane p/2 (VPERMPS index): the 8 block scales of IQ4_NL over
// the 16 dword lanes of the x8 layout.
DATA ·iq4nlz<>+0(SB)/8, $0x0000000000000000
DATA ·iq4nlz<>+8(SB)/8, $0x0000000100000001
DATA ·iq4nlz<>+16(SB)/8, $0x0000000200000002
DATA ·iq4nlz<>+24(SB)/8, $0x0000000300000003
DATA ·iq4nlz<>+32(SB)/8, $0x0000000400000004
DATA ·iq4nlz<>+40(SB)/8, $0x0000000500000005
DATA ·iq4nlz<>+48(SB)/8, $0x0000000600000006
DATA ·iq4nlz<>+56(SB)/8, $0x0000000700000007
GLOBL ·iq4nlz<>(SB), RODATA|NOPTR, $64

// IQ4NLROW: IQ4XSROW for IQ4_NL, with per-lane activation scales at
// off+320 and the weight block scales in Z14.
#define IQ4NLROW(off, t, acc) \
	VMOVDQU32 (off+256)(DI), t \
	VPDPBUSD (off)(DI), Z10, t \
	VPDPBUSD (off+64)(DI), Z11, t \
	VPDPBUSD (off+128)(DI), Z12, t \
	VPDPBUSD (off+192)(DI), Z13, t \
	VCVTDQ2PS t, t \
	VMULPS (off+320)(DI), t, t \
	VFMADD231PS Z14, t, acc

// func dotIQ4NLx8Z(w *byte, p *byte, ng int, out *float32)
// One IQ4_NL weight row (ng groups of 8 blocks) against 8 activation
// rows in the x8 layout of packIQ4NL8 (per group 3072 bytes: for each
// row 256 permuted quants, 16 int32 of −128·Σa (block s in lane 2s),
// 16 f32 activation scales (block s in lanes 2s and 2s+1)). The 8
// blocks' nibbles are gathered into two zmm (16 bytes each, like an
// IQ4_XS super-block) and permuted as in dotIQ4XSx8Z.
TEXT ·dotIQ4NLx8Z(SB), NOSPLIT, $0-32
	MOVQ w+0(FP), SI
	MOVQ p+8(FP), DI
	MOVQ ng+16(FP), BX
	VBROADCASTI32X4 ·iq4gridU<>(SB), Z24
	VPBROADCASTQ ·mask0F(SB), Z25
	VMOVDQU64 ·iq4xsz<>+0(SB), Z26
	VMOVDQU64 ·iq4xsz<>+64(SB), Z27
	VMOVDQU64 ·iq4nlz<>+0(SB), Z28
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	TESTQ BX, BX
	JEQ iq4nlz_done
iq4nlz_loop:
	PREFETCHT0 1024(SI)
	PREFETCHT0 1088(SI)
	PREFETCHT0 1152(SI)
	VMOVDQU 2(SI), X8
	VINSERTI32X4 $1, 20(SI), Z8, Z8
	VINSERTI32X4 $2, 38(SI), Z8, Z8
	VINSERTI32X4 $3, 56(SI), Z8, Z8
	VMOVDQU 74(SI), X9
	VINSERTI32X4 $1, 92(SI), Z9, Z9
	VINSERTI32X4 $2, 110(SI), Z9, Z9
	VINSERTI32X4 $3, 128(SI), Z9, Z9
	VMOVDQA64 Z26, Z10
	VPERMI2Q Z9, Z8, Z10
	VPERMT2Q Z9, Z27, Z8
	VPSRLW $4, Z10, Z12
	VPSRLW $4, Z8, Z13
	VPANDQ Z25, Z10, Z10
	VPANDQ Z25, Z8, Z11
	VPANDQ Z25, Z12, Z12
	VPANDQ Z25, Z13, Z13
	VPSHUFB Z10, Z24, Z10
	VPSHUFB Z11, Z24, Z11
	VPSHUFB Z12, Z24, Z12
	VPSHUFB Z13, Z24, Z13
	// the 8 block scales, each in two lanes
	MOVWLZX 0(SI), AX
	VMOVD AX, X14
	VPINSRW $1, 18(SI), X14, X14
	VPINSRW $2, 36(SI), X14, X14
	VPINSRW $3, 54(SI), X14, X14
	VPINSRW $4, 72(SI), X14, X14
	VPINSRW $5, 90(SI), X14, X14
	VPINSRW $6, 108(SI), X14, X14
	VPINSRW $7, 126(SI), X14, X14
	VCVTPH2PS X14, Y14
	VPERMPS Z14, Z28, Z14
	IQ4NLROW(0, Z16, Z0)
	IQ4NLROW(384, Z17, Z1)
	IQ4NLROW(768, Z18, Z2)
	IQ4NLROW(1152, Z19, Z3)
	IQ4NLROW(1536, Z20, Z4)
	IQ4NLROW(1920, Z21, Z5)
	IQ4NLROW(2304, Z22, Z6)
	IQ4NLROW(2688, Z23, Z7)
	ADDQ $144, SI
	ADDQ $3072, DI
	DECQ BX
	JNE iq4nlz_loop
iq4nlz_done:
	MOVQ out+24(FP), DI
	ZHSUM(Z0, Y0, X0, 0)
	ZHSUM(Z1, Y1, X1, 4)
	ZHSUM(Z2, Y2, X2, 8)
	ZHSUM(Z3, Y3, X3, 12)
	ZHSUM(Z4, Y4, X4, 16)
	ZHSUM(Z5, Y5, X5, 20)
	ZHSUM(Z6, Y6, X6, 24)
	ZHSUM(Z7, Y7, X7, 28)
	VZEROUPPER
	RET

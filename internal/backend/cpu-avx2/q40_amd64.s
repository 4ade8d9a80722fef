//go:build amd64

#include "textflag.h"
#include "asm_amd64.h"


// Q4_0 and Q8_0 weights against Q8_0 activations.
//
// Weight block (Q4_0, 18 bytes): f16 d, 16 bytes of nibbles.
// Weight block (Q8_0, 34 bytes): f16 d, 32 signed bytes.
// Activations: int8 quants (32 per block, rows `astride` bytes apart),
// f32 block scales (rows `dstride` bytes apart).

// UNPACK4 loads the Q4_0 block at SI into Y5 as signed bytes (q−8).
// Needs Y15 = 0x0F bytes, Y14 = 0x08 bytes.
#define UNPACK4 \
	VMOVDQU 2(SI), X5 \
	VPSRLW $4, X5, X6 \
	VINSERTI128 $1, X6, Y5, Y5 \
	VPAND Y15, Y5, Y5 \
	VPSUBB Y14, Y5, Y5

// WSCALE broadcasts the f16 scale at SI as f32 into Y6.
#define WSCALE \
	VPBROADCASTW (SI), X6 \
	VCVTPH2PS X6, Y6

// PAIR_AVX2 accumulates (Y6·da)·Σ w·a for one activation block:
// Y4 = |w|, Y5 = w (signed), amem = activation quants, dmem = its scale.
#define PAIR_AVX2(amem, dmem, t1, t2, acc) \
	VMOVDQU amem, t1 \
	VPSIGNB Y5, t1, t1 \
	VPMADDUBSW t1, Y4, t1 \
	VPMADDWD Y13, t1, t1 \
	VCVTDQ2PS t1, t1 \
	VBROADCASTSS dmem, t2 \
	VMULPS Y6, t2, t2 \
	VFMADD231PS t2, t1, acc

// PAIR_VNNI is PAIR_AVX2 with VPDPBUSD in place of VPMADDUBSW+VPMADDWD.
#define PAIR_VNNI(amem, dmem, t1, t2, acc) \
	VMOVDQU amem, t1 \
	VPSIGNB Y5, t1, t1 \
	VPXOR t2, t2, t2 \
	VPDPBUSD t1, Y4, t2 \
	VCVTDQ2PS t2, t1 \
	VBROADCASTSS dmem, t2 \
	VMULPS Y6, t2, t2 \
	VFMADD231PS t2, t1, acc

#define LOADCONSTS \
	VMOVDQU ·mask0F(SB), Y15 \
	VMOVDQU ·bytes08(SB), Y14 \
	VMOVDQU ·ones16(SB), Y13

// ONEROW(unpack, bytes, pair) is the body of a one-activation-row dot.
// Args: w+0 a+8 ad+16 nb+24, ret+32.
#define ONEROW(unpack, bytes, pair) \
	MOVQ w+0(FP), SI \
	MOVQ a+8(FP), DI \
	MOVQ ad+16(FP), DX \
	MOVQ nb+24(FP), CX \
	LOADCONSTS \
	VXORPS Y0, Y0, Y0 \
	VXORPS Y1, Y1, Y1 \
	TESTQ CX, CX \
	JEQ one_done \
one_loop: \
	PREFETCHT0 2048(SI) \
	unpack \
	VPABSB Y5, Y4 \
	WSCALE \
	pair((DI), (DX), Y7, Y8, Y0) \
	ADDQ $bytes, SI \
	ADDQ $32, DI \
	ADDQ $4, DX \
	DECQ CX \
	JEQ one_done \
	unpack \
	VPABSB Y5, Y4 \
	WSCALE \
	pair((DI), (DX), Y9, Y10, Y1) \
	ADDQ $bytes, SI \
	ADDQ $32, DI \
	ADDQ $4, DX \
	DECQ CX \
	JNE one_loop \
one_done: \
	VADDPS Y1, Y0, Y0 \
	HSUM(Y0, X0, X1) \
	VZEROUPPER \
	MOVSS X0, ret+32(FP) \
	RET

// FOURROWS(unpack, bytes, pair) is the body of a 1 weight row × 4
// activation rows tile. Args: w+0 a+8 astride+16 ad+24 dstride+32 nb+40
// out+48 (4 floats).
#define FOURROWS(unpack, bytes, pair) \
	MOVQ w+0(FP), SI \
	MOVQ a+8(FP), DI \
	MOVQ astride+16(FP), R8 \
	MOVQ ad+24(FP), DX \
	MOVQ dstride+32(FP), R9 \
	MOVQ nb+40(FP), CX \
	LEAQ (R8)(R8*2), R10 \
	LEAQ (R9)(R9*2), R11 \
	LOADCONSTS \
	VXORPS Y0, Y0, Y0 \
	VXORPS Y1, Y1, Y1 \
	VXORPS Y2, Y2, Y2 \
	VXORPS Y3, Y3, Y3 \
	TESTQ CX, CX \
	JEQ four_done \
four_loop: \
	PREFETCHT0 2048(SI) \
	unpack \
	VPABSB Y5, Y4 \
	WSCALE \
	pair((DI), (DX), Y7, Y8, Y0) \
	pair((DI)(R8*1), (DX)(R9*1), Y9, Y10, Y1) \
	pair((DI)(R8*2), (DX)(R9*2), Y11, Y12, Y2) \
	pair((DI)(R10*1), (DX)(R11*1), Y7, Y8, Y3) \
	ADDQ $bytes, SI \
	ADDQ $32, DI \
	ADDQ $4, DX \
	DECQ CX \
	JNE four_loop \
four_done: \
	MOVQ out+48(FP), DI \
	HSUM(Y0, X0, X8) \
	HSUM(Y1, X1, X8) \
	HSUM(Y2, X2, X8) \
	HSUM(Y3, X3, X8) \
	VMOVSS X0, (DI) \
	VMOVSS X1, 4(DI) \
	VMOVSS X2, 8(DI) \
	VMOVSS X3, 12(DI) \
	VZEROUPPER \
	RET

// UNPACK8 loads the Q8_0 block at SI into Y5.
#define UNPACK8 VMOVDQU 2(SI), Y5

// func dotQ4_0(w *byte, a *int8, ad *float32, nb int) float32
TEXT ·dotQ4_0(SB), NOSPLIT, $0-36
	ONEROW(UNPACK4, 18, PAIR_AVX2)

// func dotQ8_0(w *byte, a *int8, ad *float32, nb int) float32
TEXT ·dotQ8_0(SB), NOSPLIT, $0-36
	ONEROW(UNPACK8, 34, PAIR_AVX2)

// func dotQ8_0VNNI(w *byte, a *int8, ad *float32, nb int) float32
TEXT ·dotQ8_0VNNI(SB), NOSPLIT, $0-36
	ONEROW(UNPACK8, 34, PAIR_VNNI)

// func dotQ4_0x4(w *byte, a *int8, astride int, ad *float32, dstride int, nb int, out *float32)
TEXT ·dotQ4_0x4(SB), NOSPLIT, $0-56
	FOURROWS(UNPACK4, 18, PAIR_AVX2)

// func dotQ8_0x4(w *byte, a *int8, astride int, ad *float32, dstride int, nb int, out *float32)
TEXT ·dotQ8_0x4(SB), NOSPLIT, $0-56
	FOURROWS(UNPACK8, 34, PAIR_AVX2)

// func dotQ8_0x4VNNI(w *byte, a *int8, astride int, ad *float32, dstride int, nb int, out *float32)
TEXT ·dotQ8_0x4VNNI(SB), NOSPLIT, $0-56
	FOURROWS(UNPACK8, 34, PAIR_VNNI)

// Q4_0 with VNNI, unsigned form: VPDPBUSD multiplies the raw nibbles
// (0..15, unsigned) by the signed activation quants, starting from an
// accumulator holding −8·Σa (precomputed per activation block) in lane
// 0, so the lanes sum to Σ (q−8)·a without the sign/abs steps.

// UNPACK4U loads the Q4_0 nibbles at SI into Y4 as bytes 0..15.
#define UNPACK4U \
	VMOVDQU 2(SI), X4 \
	VPSRLW $4, X4, X5 \
	VINSERTI128 $1, X5, Y4, Y4 \
	VPAND Y15, Y4, Y4

#define PAIR_VNNIU(amem, cmem, dmem, t1, x1, t2, acc) \
	VMOVD cmem, x1 \
	VPDPBUSD amem, Y4, t1 \
	VCVTDQ2PS t1, t1 \
	VBROADCASTSS dmem, t2 \
	VMULPS Y6, t2, t2 \
	VFMADD231PS t2, t1, acc

// func dotQ4_0VNNIU(w *byte, a *int8, ad *float32, ac *int32, nb int) float32
TEXT ·dotQ4_0VNNIU(SB), NOSPLIT, $0-44
	MOVQ w+0(FP), SI
	MOVQ a+8(FP), DI
	MOVQ ad+16(FP), DX
	MOVQ ac+24(FP), BX
	MOVQ nb+32(FP), CX
	VMOVDQU ·mask0F(SB), Y15
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	TESTQ CX, CX
	JEQ u1_done
u1_loop:
	PREFETCHT0 2048(SI)
	UNPACK4U
	WSCALE
	PAIR_VNNIU((DI), (BX), (DX), Y7, X7, Y8, Y0)
	ADDQ $18, SI
	ADDQ $32, DI
	ADDQ $4, DX
	ADDQ $4, BX
	DECQ CX
	JEQ u1_done
	UNPACK4U
	WSCALE
	PAIR_VNNIU((DI), (BX), (DX), Y9, X9, Y10, Y1)
	ADDQ $18, SI
	ADDQ $32, DI
	ADDQ $4, DX
	ADDQ $4, BX
	DECQ CX
	JNE u1_loop
u1_done:
	VADDPS Y1, Y0, Y0
	HSUM(Y0, X0, X1)
	VZEROUPPER
	MOVSS X0, ret+40(FP)
	RET

// func dotQ4_0x4VNNIU(w *byte, a *int8, astride int, ad *float32, ac *int32, dstride int, nb int, out *float32)
TEXT ·dotQ4_0x4VNNIU(SB), NOSPLIT, $0-64
	MOVQ w+0(FP), SI
	MOVQ a+8(FP), DI
	MOVQ astride+16(FP), R8
	MOVQ ad+24(FP), DX
	MOVQ ac+32(FP), BX
	MOVQ dstride+40(FP), R9
	MOVQ nb+48(FP), CX
	LEAQ (R8)(R8*2), R10
	LEAQ (R9)(R9*2), R11
	VMOVDQU ·mask0F(SB), Y15
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	TESTQ CX, CX
	JEQ u4_done
u4_loop:
	PREFETCHT0 2048(SI)
	UNPACK4U
	WSCALE
	PAIR_VNNIU((DI), (BX), (DX), Y7, X7, Y8, Y0)
	PAIR_VNNIU((DI)(R8*1), (BX)(R9*1), (DX)(R9*1), Y9, X9, Y10, Y1)
	PAIR_VNNIU((DI)(R8*2), (BX)(R9*2), (DX)(R9*2), Y11, X11, Y12, Y2)
	PAIR_VNNIU((DI)(R10*1), (BX)(R11*1), (DX)(R11*1), Y13, X13, Y14, Y3)
	ADDQ $18, SI
	ADDQ $32, DI
	ADDQ $4, DX
	ADDQ $4, BX
	DECQ CX
	JNE u4_loop
u4_done:
	MOVQ out+56(FP), DI
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

// 512-bit Q4_0 × Q8_0 tile (AVX512F/BW/VL + VNNI): two blocks per
// instruction for 4 activation rows. The activation side comes in three
// arrays with the same row stride (cols bytes): the quants, cvec (per
// block 8 int32: −8·Σq then zeros) and dvec (per block its scale 8
// times), so that a pair of blocks is one 64-byte load in each.

#define PAIRZ(off, t, acc) \
	VMOVDQU32 off(BX), t \
	VPDPBUSD off(DI), Z4, t \
	VCVTDQ2PS t, t \
	VMULPS off(DX), Z6, Z5 \
	VFMADD231PS Z5, t, acc

#define PAIRZS(off, t, acc) \
	VMOVDQU32 off(BX)(R8*1), t \
	VPDPBUSD off(DI)(R8*1), Z4, t \
	VCVTDQ2PS t, t \
	VMULPS off(DX)(R8*1), Z6, Z5 \
	VFMADD231PS Z5, t, acc

#define PAIRZS2(off, t, acc) \
	VMOVDQU32 off(BX)(R8*2), t \
	VPDPBUSD off(DI)(R8*2), Z4, t \
	VCVTDQ2PS t, t \
	VMULPS off(DX)(R8*2), Z6, Z5 \
	VFMADD231PS Z5, t, acc

#define PAIRZS3(off, t, acc) \
	VMOVDQU32 off(BX)(R10*1), t \
	VPDPBUSD off(DI)(R10*1), Z4, t \
	VCVTDQ2PS t, t \
	VMULPS off(DX)(R10*1), Z6, Z5 \
	VFMADD231PS Z5, t, acc

// HSUMZ reduces Z register z (16 floats) into the low float of xr.
#define HSUMZ(z, y, xr, yt, xt) \
	VEXTRACTF64X4 $1, z, yt \
	VADDPS yt, y, y \
	HSUM(y, xr, xt)

// func dotQ4_0x4Z(w *byte, a *int8, cvec *int32, dvec *float32, stride int, npairs int, out *float32)
TEXT ·dotQ4_0x4Z(SB), NOSPLIT, $0-56
	MOVQ w+0(FP), SI
	MOVQ a+8(FP), DI
	MOVQ cvec+16(FP), BX
	MOVQ dvec+24(FP), DX
	MOVQ stride+32(FP), R8
	MOVQ npairs+40(FP), CX
	LEAQ (R8)(R8*2), R10
	VPBROADCASTQ ·mask0F(SB), Z15
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	TESTQ CX, CX
	JEQ z4_done
z4_loop:
	PREFETCHT0 2048(SI)
	// weights: [lo_i, hi_i, lo_i+1, hi_i+1]
	VMOVDQU 2(SI), X4
	VINSERTI128 $1, 20(SI), Y4, Y4
	VPSRLW $4, Y4, Y5
	VINSERTI64X4 $1, Y5, Z4, Z4
	VSHUFI64X2 $0xd8, Z4, Z4, Z4
	VPANDD Z15, Z4, Z4
	// weight scales: [d_i ×8, d_i+1 ×8]
	VPBROADCASTW (SI), X6
	VPBROADCASTW 18(SI), X7
	VINSERTI128 $1, X7, Y6, Y6
	VCVTPH2PS Y6, Z6
	PAIRZ(0, Z7, Z0)
	PAIRZS(0, Z8, Z1)
	PAIRZS2(0, Z9, Z2)
	PAIRZS3(0, Z10, Z3)
	ADDQ $36, SI
	ADDQ $64, DI
	ADDQ $64, BX
	ADDQ $64, DX
	DECQ CX
	JNE z4_loop
z4_done:
	MOVQ out+48(FP), DI
	HSUMZ(Z0, Y0, X0, Y8, X8)
	HSUMZ(Z1, Y1, X1, Y8, X8)
	HSUMZ(Z2, Y2, X2, Y8, X8)
	HSUMZ(Z3, Y3, X3, Y8, X8)
	VMOVSS X0, (DI)
	VMOVSS X1, 4(DI)
	VMOVSS X2, 8(DI)
	VMOVSS X3, 12(DI)
	VZEROUPPER
	RET

#define PAIRZB(qb, cb, db, t, acc) \
	VMOVDQU32 cb, t \
	VPDPBUSD qb, Z4, t \
	VCVTDQ2PS t, t \
	VMULPS db, Z6, Z5 \
	VFMADD231PS Z5, t, acc

// func dotQ4_0x8Z(w *byte, a *int8, cvec *int32, dvec *float32, stride int, npairs int, out *float32)
// is dotQ4_0x4Z for 8 activation rows.
TEXT ·dotQ4_0x8Z(SB), NOSPLIT, $0-56
	MOVQ w+0(FP), SI
	MOVQ a+8(FP), DI
	MOVQ cvec+16(FP), BX
	MOVQ dvec+24(FP), DX
	MOVQ stride+32(FP), R8
	MOVQ npairs+40(FP), CX
	LEAQ (R8)(R8*2), R10
	LEAQ (DI)(R8*4), R11
	LEAQ (BX)(R8*4), R12
	LEAQ (DX)(R8*4), R13
	VPBROADCASTQ ·mask0F(SB), Z15
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z16, Z16, Z16
	VPXORD Z17, Z17, Z17
	VPXORD Z18, Z18, Z18
	VPXORD Z19, Z19, Z19
	TESTQ CX, CX
	JEQ z8_done
z8_loop:
	PREFETCHT0 2048(SI)
	VMOVDQU 2(SI), X4
	VINSERTI128 $1, 20(SI), Y4, Y4
	VPSRLW $4, Y4, Y5
	VINSERTI64X4 $1, Y5, Z4, Z4
	VSHUFI64X2 $0xd8, Z4, Z4, Z4
	VPANDD Z15, Z4, Z4
	VPBROADCASTW (SI), X6
	VPBROADCASTW 18(SI), X7
	VINSERTI128 $1, X7, Y6, Y6
	VCVTPH2PS Y6, Z6
	PAIRZB((DI), (BX), (DX), Z7, Z0)
	PAIRZB((DI)(R8*1), (BX)(R8*1), (DX)(R8*1), Z8, Z1)
	PAIRZB((DI)(R8*2), (BX)(R8*2), (DX)(R8*2), Z9, Z2)
	PAIRZB((DI)(R10*1), (BX)(R10*1), (DX)(R10*1), Z10, Z3)
	PAIRZB((R11), (R12), (R13), Z11, Z16)
	PAIRZB((R11)(R8*1), (R12)(R8*1), (R13)(R8*1), Z12, Z17)
	PAIRZB((R11)(R8*2), (R12)(R8*2), (R13)(R8*2), Z13, Z18)
	PAIRZB((R11)(R10*1), (R12)(R10*1), (R13)(R10*1), Z14, Z19)
	ADDQ $36, SI
	ADDQ $64, DI
	ADDQ $64, BX
	ADDQ $64, DX
	ADDQ $64, R11
	ADDQ $64, R12
	ADDQ $64, R13
	DECQ CX
	JNE z8_loop
z8_done:
	MOVQ out+48(FP), DI
	HSUMZ(Z0, Y0, X0, Y8, X8)
	HSUMZ(Z1, Y1, X1, Y8, X8)
	HSUMZ(Z2, Y2, X2, Y8, X8)
	HSUMZ(Z3, Y3, X3, Y8, X8)
	VMOVSS X0, (DI)
	VMOVSS X1, 4(DI)
	VMOVSS X2, 8(DI)
	VMOVSS X3, 12(DI)
	VEXTRACTF64X4 $1, Z16, Y8
	VADDPS Y8, Y16, Y0
	HSUM(Y0, X0, X8)
	VEXTRACTF64X4 $1, Z17, Y8
	VADDPS Y8, Y17, Y1
	HSUM(Y1, X1, X8)
	VEXTRACTF64X4 $1, Z18, Y8
	VADDPS Y8, Y18, Y2
	HSUM(Y2, X2, X8)
	VEXTRACTF64X4 $1, Z19, Y8
	VADDPS Y8, Y19, Y3
	HSUM(Y3, X3, X8)
	VMOVSS X0, 16(DI)
	VMOVSS X1, 20(DI)
	VMOVSS X2, 24(DI)
	VMOVSS X3, 28(DI)
	VZEROUPPER
	RET

// 512-bit Q8_0 × Q8_0 tile for 8 activation rows (AVX512 + VNNI). The
// activation quants come biased to unsigned (q+128, array au); the
// weight quants stay signed, and −128·Σw (per lane, from one VPDPBUSD
// against 0x80 bytes) starts each accumulator.

DATA ·z80<>+0(SB)/8, $0x8080808080808080
GLOBL ·z80<>(SB), RODATA|NOPTR, $8

#define PAIRQ8(qb, db, ta, t, acc) \
	VMOVDQU64 qb, ta \
	VMOVDQA64 Z20, t \
	VPDPBUSD Z4, ta, t \
	VCVTDQ2PS t, t \
	VMULPS db, Z6, Z5 \
	VFMADD231PS Z5, t, acc

// func dotQ8_0x8Z(w *byte, au *uint8, dvec *float32, stride int, npairs int, out *float32)
TEXT ·dotQ8_0x8Z(SB), NOSPLIT, $0-48
	MOVQ w+0(FP), SI
	MOVQ au+8(FP), DI
	MOVQ dvec+16(FP), DX
	MOVQ stride+24(FP), R8
	MOVQ npairs+32(FP), CX
	LEAQ (R8)(R8*2), R10
	LEAQ (DI)(R8*4), R11
	LEAQ (DX)(R8*4), R13
	VPBROADCASTQ ·z80<>(SB), Z21
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z16, Z16, Z16
	VPXORD Z17, Z17, Z17
	VPXORD Z18, Z18, Z18
	VPXORD Z19, Z19, Z19
	TESTQ CX, CX
	JEQ q8z_done
q8z_loop:
	PREFETCHT0 2048(SI)
	PREFETCHT0 2112(SI)
	VMOVDQU 2(SI), Y4
	VINSERTI64X4 $1, 36(SI), Z4, Z4
	VPXORD Z22, Z22, Z22
	VPDPBUSD Z4, Z21, Z22
	VPXORD Z20, Z20, Z20
	VPSUBD Z22, Z20, Z20
	VPBROADCASTW (SI), X6
	VPBROADCASTW 34(SI), X7
	VINSERTI128 $1, X7, Y6, Y6
	VCVTPH2PS Y6, Z6
	PAIRQ8((DI), (DX), Z22, Z7, Z0)
	PAIRQ8((DI)(R8*1), (DX)(R8*1), Z23, Z8, Z1)
	PAIRQ8((DI)(R8*2), (DX)(R8*2), Z24, Z9, Z2)
	PAIRQ8((DI)(R10*1), (DX)(R10*1), Z25, Z10, Z3)
	PAIRQ8((R11), (R13), Z26, Z11, Z16)
	PAIRQ8((R11)(R8*1), (R13)(R8*1), Z27, Z12, Z17)
	PAIRQ8((R11)(R8*2), (R13)(R8*2), Z28, Z13, Z18)
	PAIRQ8((R11)(R10*1), (R13)(R10*1), Z29, Z14, Z19)
	ADDQ $68, SI
	ADDQ $64, DI
	ADDQ $64, DX
	ADDQ $64, R11
	ADDQ $64, R13
	DECQ CX
	JNE q8z_loop
q8z_done:
	MOVQ out+40(FP), DI
	HSUMZ(Z0, Y0, X0, Y8, X8)
	HSUMZ(Z1, Y1, X1, Y8, X8)
	HSUMZ(Z2, Y2, X2, Y8, X8)
	HSUMZ(Z3, Y3, X3, Y8, X8)
	VMOVSS X0, (DI)
	VMOVSS X1, 4(DI)
	VMOVSS X2, 8(DI)
	VMOVSS X3, 12(DI)
	VEXTRACTF64X4 $1, Z16, Y8
	VADDPS Y8, Y16, Y0
	HSUM(Y0, X0, X8)
	VEXTRACTF64X4 $1, Z17, Y8
	VADDPS Y8, Y17, Y1
	HSUM(Y1, X1, X8)
	VEXTRACTF64X4 $1, Z18, Y8
	VADDPS Y8, Y18, Y2
	HSUM(Y2, X2, X8)
	VEXTRACTF64X4 $1, Z19, Y8
	VADDPS Y8, Y19, Y3
	HSUM(Y3, X3, X8)
	VMOVSS X0, 16(DI)
	VMOVSS X1, 20(DI)
	VMOVSS X2, 24(DI)
	VMOVSS X3, 28(DI)
	VZEROUPPER
	RET

// func dotQ4_0Z1(w *byte, a *int8, cvec *int32, dvec *float32, npairs int) float32
// is the 512-bit Q4_0 dot for one activation row (two blocks per step).
TEXT ·dotQ4_0Z1(SB), NOSPLIT, $0-44
	MOVQ w+0(FP), SI
	MOVQ a+8(FP), DI
	MOVQ cvec+16(FP), BX
	MOVQ dvec+24(FP), DX
	MOVQ npairs+32(FP), CX
	VPBROADCASTQ ·mask0F(SB), Z15
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	TESTQ CX, CX
	JEQ z1_done
z1_loop:
	PREFETCHT0 2048(SI)
	VMOVDQU 2(SI), X4
	VINSERTI128 $1, 20(SI), Y4, Y4
	VPSRLW $4, Y4, Y5
	VINSERTI64X4 $1, Y5, Z4, Z4
	VSHUFI64X2 $0xd8, Z4, Z4, Z4
	VPANDD Z15, Z4, Z4
	VPBROADCASTW (SI), X6
	VPBROADCASTW 18(SI), X7
	VINSERTI128 $1, X7, Y6, Y6
	VCVTPH2PS Y6, Z6
	PAIRZ(0, Z7, Z0)
	ADDQ $36, SI
	ADDQ $64, DI
	ADDQ $64, BX
	ADDQ $64, DX
	DECQ CX
	JEQ z1_done
	VMOVDQU 2(SI), X4
	VINSERTI128 $1, 20(SI), Y4, Y4
	VPSRLW $4, Y4, Y5
	VINSERTI64X4 $1, Y5, Z4, Z4
	VSHUFI64X2 $0xd8, Z4, Z4, Z4
	VPANDD Z15, Z4, Z4
	VPBROADCASTW (SI), X6
	VPBROADCASTW 18(SI), X7
	VINSERTI128 $1, X7, Y6, Y6
	VCVTPH2PS Y6, Z6
	PAIRZ(0, Z8, Z1)
	ADDQ $36, SI
	ADDQ $64, DI
	ADDQ $64, BX
	ADDQ $64, DX
	DECQ CX
	JNE z1_loop
z1_done:
	VADDPS Z1, Z0, Z0
	HSUMZ(Z0, Y0, X0, Y8, X8)
	VZEROUPPER
	MOVSS X0, ret+40(FP)
	RET

// func dotQ8_0Z1(w *byte, au *uint8, dvec *float32, npairs int) float32
// is the 512-bit Q8_0 dot for one activation row (see dotQ8_0x8Z).
TEXT ·dotQ8_0Z1(SB), NOSPLIT, $0-36
	MOVQ w+0(FP), SI
	MOVQ au+8(FP), DI
	MOVQ dvec+16(FP), DX
	MOVQ npairs+24(FP), CX
	VPBROADCASTQ ·z80<>(SB), Z21
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	TESTQ CX, CX
	JEQ q8z1_done
q8z1_loop:
	PREFETCHT0 2048(SI)
	PREFETCHT0 2112(SI)
	VMOVDQU 2(SI), Y4
	VINSERTI64X4 $1, 36(SI), Z4, Z4
	VPXORD Z22, Z22, Z22
	VPDPBUSD Z4, Z21, Z22
	VPXORD Z20, Z20, Z20
	VPSUBD Z22, Z20, Z20
	VPBROADCASTW (SI), X6
	VPBROADCASTW 34(SI), X7
	VINSERTI128 $1, X7, Y6, Y6
	VCVTPH2PS Y6, Z6
	VMOVDQU64 (DI), Z22
	VPDPBUSD Z4, Z22, Z20
	VCVTDQ2PS Z20, Z20
	VMULPS (DX), Z6, Z5
	VFMADD231PS Z5, Z20, Z0
	ADDQ $68, SI
	ADDQ $64, DI
	ADDQ $64, DX
	DECQ CX
	JNE q8z1_loop
q8z1_done:
	VADDPS Z1, Z0, Z0
	HSUMZ(Z0, Y0, X0, Y8, X8)
	VZEROUPPER
	MOVSS X0, ret+32(FP)
	RET

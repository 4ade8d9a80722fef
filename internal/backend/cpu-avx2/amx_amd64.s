//go:build amd64

#include "textflag.h"

// AMX (AMX-TILE + AMX-INT8) tile kernel. Go's assembler has no AMX
// mnemonics, so the instructions are emitted as BYTE sequences with the
// mnemonic in a comment; the registers they use are fixed:
//   AX  tile configuration (LDTILECFG)
//   SI  A: weight quants of block b, row 0; R8 = row stride (bytes)
//   DI  B: packed activations of block b (8 rows of 64 bytes); R9 = 64
//   R10 C scratch (16 rows of 64 bytes)
// Tiles: tmm0 = C (16×16 int32), tmm1 = A (16 rows × 32 int8),
// tmm2 = B (8 rows × 64 int8, VNNI layout: B[k/4][4n+k%4]).

// LDTILECFG (AX)
#define LDTILECFG_AX BYTE $0xC4; BYTE $0xE2; BYTE $0x78; BYTE $0x49; BYTE $0x00
// TILERELEASE
#define TILERELEASE BYTE $0xC4; BYTE $0xE2; BYTE $0x78; BYTE $0x49; BYTE $0xC0
// TILEZERO tmm0
#define TILEZERO_T0 BYTE $0xC4; BYTE $0xE2; BYTE $0x7B; BYTE $0x49; BYTE $0xC0
// TILELOADD tmm1, (SI)(R8*1)
#define TILELOADD_T1_SI_R8 BYTE $0xC4; BYTE $0xA2; BYTE $0x7B; BYTE $0x4B; BYTE $0x0C; BYTE $0x06
// TILELOADD tmm2, (DI)(R9*1)
#define TILELOADD_T2_DI_R9 BYTE $0xC4; BYTE $0xA2; BYTE $0x7B; BYTE $0x4B; BYTE $0x14; BYTE $0x0F
// TDPBSSD tmm0, tmm1, tmm2 (tmm0 += signed A × signed B)
#define TDPBSSD_T0_T1_T2 BYTE $0xC4; BYTE $0xE2; BYTE $0x6B; BYTE $0x5E; BYTE $0xC1
// TILESTORED (R10)(R9*1), tmm0
#define TILESTORED_R10_R9_T0 BYTE $0xC4; BYTE $0x82; BYTE $0x7A; BYTE $0x4B; BYTE $0x04; BYTE $0x0A

// SCALEROW adds row m of the int32 C scratch (at off(R10)), converted,
// times the activation scales (Z16) and the broadcast weight scale at
// woff(BX), to accumulator acc.
#define SCALEROW(off, woff, t, acc) \
	VCVTDQ2PS off(R10), t \
	VMULPS Z16, t, t \
	VFMADD231PS.BCST woff(BX), t, acc

// TILE_SCALED multiplies the A tile at SI (row stride R8) by the B tile
// at DI into C, stores C to R10 and adds every row of it, scaled by the
// activation scales at DX and row m's weight scale at 4m(BX), to Z0..Z15.
#define TILE_SCALED \
	TILEZERO_T0 \
	TILELOADD_T1_SI_R8 \
	TILELOADD_T2_DI_R9 \
	TDPBSSD_T0_T1_T2 \
	TILESTORED_R10_R9_T0 \
	VMOVUPS (DX), Z16 \
	SCALEROW(0, 0, Z17, Z0) \
	SCALEROW(64, 4, Z18, Z1) \
	SCALEROW(128, 8, Z19, Z2) \
	SCALEROW(192, 12, Z20, Z3) \
	SCALEROW(256, 16, Z17, Z4) \
	SCALEROW(320, 20, Z18, Z5) \
	SCALEROW(384, 24, Z19, Z6) \
	SCALEROW(448, 28, Z20, Z7) \
	SCALEROW(512, 32, Z17, Z8) \
	SCALEROW(576, 36, Z18, Z9) \
	SCALEROW(640, 40, Z19, Z10) \
	SCALEROW(704, 44, Z20, Z11) \
	SCALEROW(768, 48, Z17, Z12) \
	SCALEROW(832, 52, Z18, Z13) \
	SCALEROW(896, 56, Z19, Z14) \
	SCALEROW(960, 60, Z20, Z15)

// ZERO16 clears the 16 accumulators Z0..Z15 (one per row of C).
#define ZERO16 \
	VPXORD Z0, Z0, Z0 \
	VPXORD Z1, Z1, Z1 \
	VPXORD Z2, Z2, Z2 \
	VPXORD Z3, Z3, Z3 \
	VPXORD Z4, Z4, Z4 \
	VPXORD Z5, Z5, Z5 \
	VPXORD Z6, Z6, Z6 \
	VPXORD Z7, Z7, Z7 \
	VPXORD Z8, Z8, Z8 \
	VPXORD Z9, Z9, Z9 \
	VPXORD Z10, Z10, Z10 \
	VPXORD Z11, Z11, Z11 \
	VPXORD Z12, Z12, Z12 \
	VPXORD Z13, Z13, Z13 \
	VPXORD Z14, Z14, Z14 \
	VPXORD Z15, Z15, Z15

// STORE16 writes the accumulators Z0..Z15 as 16 rows of 16 floats at AX.
#define STORE16 \
	VMOVUPS Z0, 0(AX) \
	VMOVUPS Z1, 64(AX) \
	VMOVUPS Z2, 128(AX) \
	VMOVUPS Z3, 192(AX) \
	VMOVUPS Z4, 256(AX) \
	VMOVUPS Z5, 320(AX) \
	VMOVUPS Z6, 384(AX) \
	VMOVUPS Z7, 448(AX) \
	VMOVUPS Z8, 512(AX) \
	VMOVUPS Z9, 576(AX) \
	VMOVUPS Z10, 640(AX) \
	VMOVUPS Z11, 704(AX) \
	VMOVUPS Z12, 768(AX) \
	VMOVUPS Z13, 832(AX) \
	VMOVUPS Z14, 896(AX) \
	VMOVUPS Z15, 960(AX)

// func amxQ8Tile(cfg *byte, w *byte, rb int, wstep int, b *int8, ad *float32, wd *float32, nb int, cbuf *int32, out *float32)
// multiplies 16 weight rows (int8 blocks of 32 at w + i*wstep, rows rb
// bytes apart, scales wd[i*16+m]) by 16 activation rows (packed blocks
// of 512 bytes at b, scales ad[i*16+n]) over nb blocks and stores
// out[m*16+n] = Σ_i wd·ad·Σ_k w·a.
TEXT ·amxQ8Tile(SB), NOSPLIT, $0-80
	MOVQ cfg+0(FP), AX
	MOVQ w+8(FP), SI
	MOVQ rb+16(FP), R8
	MOVQ wstep+24(FP), R11
	MOVQ b+32(FP), DI
	MOVQ ad+40(FP), DX
	MOVQ wd+48(FP), BX
	MOVQ nb+56(FP), CX
	MOVQ cbuf+64(FP), R10
	MOVQ $64, R9
	LDTILECFG_AX

	ZERO16
	TESTQ CX, CX
	JEQ amx_done
amx_loop:
	TILE_SCALED
	ADDQ R11, SI
	ADDQ $512, DI
	ADDQ $64, DX
	ADDQ $64, BX
	DECQ CX
	JNE amx_loop
amx_done:
	TILERELEASE
	MOVQ out+72(FP), AX
	STORE16
	VZEROUPPER
	RET

// func unpackQ4_0(dst *byte, src *byte, nb int)
// writes the 32 quants (q − 8, int8) of each of nb Q4_0 blocks at src
// (18 bytes apart) to dst + i·512 (the AMX A-tile buffer layout: block
// i of 16 rows, 32 bytes a row).
TEXT ·unpackQ4_0(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ nb+16(FP), CX
	MOVL $0x0f0f0f0f, AX
	VMOVD AX, X15
	VPBROADCASTD X15, X15
	MOVL $0x08080808, AX
	VMOVD AX, X14
	VPBROADCASTD X14, X14
	TESTQ CX, CX
	JEQ uq4_done
uq4_loop:
	VMOVDQU 2(SI), X0
	VPSRLW $4, X0, X1
	VPAND X15, X0, X0
	VPAND X15, X1, X1
	VPSUBB X14, X0, X0
	VPSUBB X14, X1, X1
	VMOVDQU X0, (DI)
	VMOVDQU X1, 16(DI)
	ADDQ $18, SI
	ADDQ $512, DI
	DECQ CX
	JNE uq4_loop
uq4_done:
	RET

// func cvtF16Strided(dst *float32, dstride int, src *byte, sstride int, n int)
// converts n f16 values at src (sstride bytes apart) to f32 at dst
// (dstride bytes apart).
TEXT ·cvtF16Strided(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ dstride+8(FP), R8
	MOVQ src+16(FP), SI
	MOVQ sstride+24(FP), R9
	MOVQ n+32(FP), CX
	TESTQ CX, CX
	JEQ cvh_done
cvh_loop:
	MOVWLZX (SI), AX
	VMOVD AX, X0
	VCVTPH2PS X0, X0
	VMOVSS X0, (DI)
	ADDQ R9, SI
	ADDQ R8, DI
	DECQ CX
	JNE cvh_loop
cvh_done:
	RET

// func amxQ4KTile(cfg *byte, w *byte, rb int, wstep int, b *int8, ad *float32, wd *float32, nb int, cbuf *int32, out *float32, wm *float32, at *float32)
// is amxQ8Tile with a min term per block: out[m*16+n] also gets
// −Σ_i wm[i*16+m]·at[i*16+n] (Q4_K: wm = dmin·m of the sub-block, at =
// the activation scale times the sub-block's quant sum).
TEXT ·amxQ4KTile(SB), NOSPLIT, $0-96
	MOVQ cfg+0(FP), AX
	MOVQ w+8(FP), SI
	MOVQ rb+16(FP), R8
	MOVQ wstep+24(FP), R11
	MOVQ b+32(FP), DI
	MOVQ ad+40(FP), DX
	MOVQ wd+48(FP), BX
	MOVQ nb+56(FP), CX
	MOVQ cbuf+64(FP), R10
	MOVQ wm+80(FP), R12
	MOVQ at+88(FP), R13
	MOVQ $64, R9
	LDTILECFG_AX
	ZERO16
	TESTQ CX, CX
	JEQ amxk_done
amxk_loop:
	TILEZERO_T0
	TILELOADD_T1_SI_R8
	TILELOADD_T2_DI_R9
	TDPBSSD_T0_T1_T2
	VMOVUPS (R13), Z21
	VFNMADD231PS.BCST 0(R12), Z21, Z0
	VFNMADD231PS.BCST 4(R12), Z21, Z1
	VFNMADD231PS.BCST 8(R12), Z21, Z2
	VFNMADD231PS.BCST 12(R12), Z21, Z3
	VFNMADD231PS.BCST 16(R12), Z21, Z4
	VFNMADD231PS.BCST 20(R12), Z21, Z5
	VFNMADD231PS.BCST 24(R12), Z21, Z6
	VFNMADD231PS.BCST 28(R12), Z21, Z7
	VFNMADD231PS.BCST 32(R12), Z21, Z8
	VFNMADD231PS.BCST 36(R12), Z21, Z9
	VFNMADD231PS.BCST 40(R12), Z21, Z10
	VFNMADD231PS.BCST 44(R12), Z21, Z11
	VFNMADD231PS.BCST 48(R12), Z21, Z12
	VFNMADD231PS.BCST 52(R12), Z21, Z13
	VFNMADD231PS.BCST 56(R12), Z21, Z14
	VFNMADD231PS.BCST 60(R12), Z21, Z15
	TILESTORED_R10_R9_T0
	VMOVUPS (DX), Z16
	VCVTDQ2PS 0(R10), Z17
	VMULPS Z16, Z17, Z17
	VFMADD231PS.BCST 0(BX), Z17, Z0
	VCVTDQ2PS 64(R10), Z18
	VMULPS Z16, Z18, Z18
	VFMADD231PS.BCST 4(BX), Z18, Z1
	VCVTDQ2PS 128(R10), Z19
	VMULPS Z16, Z19, Z19
	VFMADD231PS.BCST 8(BX), Z19, Z2
	VCVTDQ2PS 192(R10), Z20
	VMULPS Z16, Z20, Z20
	VFMADD231PS.BCST 12(BX), Z20, Z3
	VCVTDQ2PS 256(R10), Z17
	VMULPS Z16, Z17, Z17
	VFMADD231PS.BCST 16(BX), Z17, Z4
	VCVTDQ2PS 320(R10), Z18
	VMULPS Z16, Z18, Z18
	VFMADD231PS.BCST 20(BX), Z18, Z5
	VCVTDQ2PS 384(R10), Z19
	VMULPS Z16, Z19, Z19
	VFMADD231PS.BCST 24(BX), Z19, Z6
	VCVTDQ2PS 448(R10), Z20
	VMULPS Z16, Z20, Z20
	VFMADD231PS.BCST 28(BX), Z20, Z7
	VCVTDQ2PS 512(R10), Z17
	VMULPS Z16, Z17, Z17
	VFMADD231PS.BCST 32(BX), Z17, Z8
	VCVTDQ2PS 576(R10), Z18
	VMULPS Z16, Z18, Z18
	VFMADD231PS.BCST 36(BX), Z18, Z9
	VCVTDQ2PS 640(R10), Z19
	VMULPS Z16, Z19, Z19
	VFMADD231PS.BCST 40(BX), Z19, Z10
	VCVTDQ2PS 704(R10), Z20
	VMULPS Z16, Z20, Z20
	VFMADD231PS.BCST 44(BX), Z20, Z11
	VCVTDQ2PS 768(R10), Z17
	VMULPS Z16, Z17, Z17
	VFMADD231PS.BCST 48(BX), Z17, Z12
	VCVTDQ2PS 832(R10), Z18
	VMULPS Z16, Z18, Z18
	VFMADD231PS.BCST 52(BX), Z18, Z13
	VCVTDQ2PS 896(R10), Z19
	VMULPS Z16, Z19, Z19
	VFMADD231PS.BCST 56(BX), Z19, Z14
	VCVTDQ2PS 960(R10), Z20
	VMULPS Z16, Z20, Z20
	VFMADD231PS.BCST 60(BX), Z20, Z15
	ADDQ R11, SI
	ADDQ $512, DI
	ADDQ $64, DX
	ADDQ $64, BX
	ADDQ $64, R12
	ADDQ $64, R13
	DECQ CX
	JNE amxk_loop
amxk_done:
	TILERELEASE
	MOVQ out+72(FP), AX
	STORE16
	VZEROUPPER
	RET

// func unpackQ4K(dst *byte, src *byte, nsb int)
// writes the quants (0..15) of nsb Q4_K super-blocks at src (144 bytes
// apart) as 8 sub-blocks of 32 bytes each, sub-block s of super-block i
// at dst + (8i+s)·512 (the AMX A-tile buffer layout).
TEXT ·unpackQ4K(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ nsb+16(FP), CX
	MOVL $0x0f0f0f0f, AX
	VMOVD AX, X15
	VPBROADCASTD X15, Y15
	TESTQ CX, CX
	JEQ uqk_done
uqk_loop:
	VMOVDQU 16(SI), Y0
	VPSRLW $4, Y0, Y1
	VPAND Y15, Y0, Y0
	VPAND Y15, Y1, Y1
	VMOVDQU Y0, 0(DI)
	VMOVDQU Y1, 512(DI)
	VMOVDQU 48(SI), Y0
	VPSRLW $4, Y0, Y1
	VPAND Y15, Y0, Y0
	VPAND Y15, Y1, Y1
	VMOVDQU Y0, 1024(DI)
	VMOVDQU Y1, 1536(DI)
	VMOVDQU 80(SI), Y0
	VPSRLW $4, Y0, Y1
	VPAND Y15, Y0, Y0
	VPAND Y15, Y1, Y1
	VMOVDQU Y0, 2048(DI)
	VMOVDQU Y1, 2560(DI)
	VMOVDQU 112(SI), Y0
	VPSRLW $4, Y0, Y1
	VPAND Y15, Y0, Y0
	VPAND Y15, Y1, Y1
	VMOVDQU Y0, 3072(DI)
	VMOVDQU Y1, 3584(DI)
	ADDQ $144, SI
	ADDQ $4096, DI
	DECQ CX
	JNE uqk_loop
uqk_done:
	VZEROUPPER
	RET

// func amxK16Tile(cfg *byte, w *byte, b *int8, ad *float32, wd *float32, nb int, cbuf *int32, out *float32)
// is amxQ8Tile for blocks of 16 (Q6_K's scale granularity), with the
// tile shapes of cfg (A 16 rows × 16 bytes, B 4 rows × 64): w holds
// unpacked weight blocks of 256 bytes (16 rows × 16), b packed
// activation blocks of 256 bytes.
TEXT ·amxK16Tile(SB), NOSPLIT, $0-64
	MOVQ cfg+0(FP), AX
	MOVQ w+8(FP), SI
	MOVQ b+16(FP), DI
	MOVQ ad+24(FP), DX
	MOVQ wd+32(FP), BX
	MOVQ nb+40(FP), CX
	MOVQ cbuf+48(FP), R10
	MOVQ $16, R8
	MOVQ $64, R9
	LDTILECFG_AX
	ZERO16
	TESTQ CX, CX
	JEQ amx16_done
amx16_loop:
	TILE_SCALED
	ADDQ $256, SI
	ADDQ $256, DI
	ADDQ $64, DX
	ADDQ $64, BX
	DECQ CX
	JNE amx16_loop
amx16_done:
	TILERELEASE
	MOVQ out+56(FP), AX
	STORE16
	VZEROUPPER
	RET

// func unpackQ6K(dst *byte, src *byte, nsb int)
// writes the quants (q − 32, int8) of nsb Q6_K super-blocks at src (210
// bytes apart) as 16 sub-blocks of 16 bytes, sub-block s of super-block
// i at dst + (16i+s)·256 (the AMX A-tile layout for blocks of 16).
TEXT ·unpackQ6K(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ nsb+16(FP), CX
	MOVL $0x0f0f0f0f, AX
	VMOVD AX, X15
	VPBROADCASTD X15, Y15
	MOVL $0x30303030, AX
	VMOVD AX, X14
	VPBROADCASTD X14, Y14
	MOVL $0x20202020, AX
	VMOVD AX, X13
	VPBROADCASTD X13, Y13
	TESTQ CX, CX
	JEQ uq6_done
uq6_loop:
	VMOVDQU 0(SI), Y0
	VMOVDQU 32(SI), Y1
	VMOVDQU 128(SI), Y2
	// q1: ql[l] low | (qh[l] & 3) << 4
	VPAND Y15, Y0, Y3
	VPSLLW $4, Y2, Y4
	VPAND Y14, Y4, Y4
	VPOR Y4, Y3, Y3
	VPSUBB Y13, Y3, Y3
	VMOVDQU X3, 0(DI)
	VEXTRACTI128 $1, Y3, X12
	VMOVDQU X12, 256(DI)
	// q2: ql[l+32] low | ((qh[l] >> 2) & 3) << 4
	VPAND Y15, Y1, Y3
	VPSLLW $2, Y2, Y4
	VPAND Y14, Y4, Y4
	VPOR Y4, Y3, Y3
	VPSUBB Y13, Y3, Y3
	VMOVDQU X3, 512(DI)
	VEXTRACTI128 $1, Y3, X12
	VMOVDQU X12, 768(DI)
	// q3: ql[l] high | ((qh[l] >> 4) & 3) << 4
	VPSRLW $4, Y0, Y3
	VPAND Y15, Y3, Y3
	VPAND Y14, Y2, Y4
	VPOR Y4, Y3, Y3
	VPSUBB Y13, Y3, Y3
	VMOVDQU X3, 1024(DI)
	VEXTRACTI128 $1, Y3, X12
	VMOVDQU X12, 1280(DI)
	// q4: ql[l+32] high | ((qh[l] >> 6) & 3) << 4
	VPSRLW $4, Y1, Y3
	VPAND Y15, Y3, Y3
	VPSRLW $2, Y2, Y4
	VPAND Y14, Y4, Y4
	VPOR Y4, Y3, Y3
	VPSUBB Y13, Y3, Y3
	VMOVDQU X3, 1536(DI)
	VEXTRACTI128 $1, Y3, X12
	VMOVDQU X12, 1792(DI)
	VMOVDQU 64(SI), Y0
	VMOVDQU 96(SI), Y1
	VMOVDQU 160(SI), Y2
	// q1: ql[l] low | (qh[l] & 3) << 4
	VPAND Y15, Y0, Y3
	VPSLLW $4, Y2, Y4
	VPAND Y14, Y4, Y4
	VPOR Y4, Y3, Y3
	VPSUBB Y13, Y3, Y3
	VMOVDQU X3, 2048(DI)
	VEXTRACTI128 $1, Y3, X12
	VMOVDQU X12, 2304(DI)
	// q2: ql[l+32] low | ((qh[l] >> 2) & 3) << 4
	VPAND Y15, Y1, Y3
	VPSLLW $2, Y2, Y4
	VPAND Y14, Y4, Y4
	VPOR Y4, Y3, Y3
	VPSUBB Y13, Y3, Y3
	VMOVDQU X3, 2560(DI)
	VEXTRACTI128 $1, Y3, X12
	VMOVDQU X12, 2816(DI)
	// q3: ql[l] high | ((qh[l] >> 4) & 3) << 4
	VPSRLW $4, Y0, Y3
	VPAND Y15, Y3, Y3
	VPAND Y14, Y2, Y4
	VPOR Y4, Y3, Y3
	VPSUBB Y13, Y3, Y3
	VMOVDQU X3, 3072(DI)
	VEXTRACTI128 $1, Y3, X12
	VMOVDQU X12, 3328(DI)
	// q4: ql[l+32] high | ((qh[l] >> 6) & 3) << 4
	VPSRLW $4, Y1, Y3
	VPAND Y15, Y3, Y3
	VPSRLW $2, Y2, Y4
	VPAND Y14, Y4, Y4
	VPOR Y4, Y3, Y3
	VPSUBB Y13, Y3, Y3
	VMOVDQU X3, 3584(DI)
	VEXTRACTI128 $1, Y3, X12
	VMOVDQU X12, 3840(DI)
	ADDQ $210, SI
	ADDQ $4096, DI
	DECQ CX
	JNE uq6_loop
uq6_done:
	VZEROUPPER
	RET

// TDPBSUD tmm0, tmm1, tmm2 (tmm0 += signed A × unsigned B)
#define TDPBSUD_T0_T1_T2 BYTE $0xC4; BYTE $0xE2; BYTE $0x6A; BYTE $0x5E; BYTE $0xC1

// func amxP16Tile(cfg *byte, wq *byte, a *int8, astride int, wsc *byte, ad *float32, ac *int32, nb int, cbuf *int32, out *float32)
// multiplies 16 activation rows (int8 blocks of 32 at a + 32i, rows
// astride bytes apart) by one group of 16 packed weight rows: B tiles of
// 512 bytes at wq + 512i (8 rows of 64 bytes: B[k/4][4n+k%4] = unsigned
// quant k of weight row n), f16 scales at wsc + 32i. With the
// activations' scales ad[16i+m] and corrections ac[16i+m] (the unsigned
// offset times the block's quant sum, negated) it stores
// out[m*16+n] = Σ_i ad·wd·(Σ_k a·w + ac). Registers: SI = A, R8 =
// astride, DI = B, R9 = 64, R10 = C scratch (see above).
TEXT ·amxP16Tile(SB), NOSPLIT, $0-80
	MOVQ cfg+0(FP), AX
	MOVQ wq+8(FP), DI
	MOVQ a+16(FP), SI
	MOVQ astride+24(FP), R8
	MOVQ wsc+32(FP), BX
	MOVQ ad+40(FP), DX
	MOVQ ac+48(FP), R12
	MOVQ nb+56(FP), CX
	MOVQ cbuf+64(FP), R10
	MOVQ $64, R9
	LDTILECFG_AX

	ZERO16
	TESTQ CX, CX
	JEQ p16_done
p16_loop:
	TILEZERO_T0
	TILELOADD_T1_SI_R8
	TILELOADD_T2_DI_R9
	TDPBSUD_T0_T1_T2
	TILESTORED_R10_R9_T0
	VCVTPH2PS (BX), Z16
	VMOVDQU32 0(R10), Z17
	VPADDD.BCST 0(R12), Z17, Z17
	VCVTDQ2PS Z17, Z17
	VMULPS Z16, Z17, Z17
	VFMADD231PS.BCST 0(DX), Z17, Z0
	VMOVDQU32 64(R10), Z18
	VPADDD.BCST 4(R12), Z18, Z18
	VCVTDQ2PS Z18, Z18
	VMULPS Z16, Z18, Z18
	VFMADD231PS.BCST 4(DX), Z18, Z1
	VMOVDQU32 128(R10), Z19
	VPADDD.BCST 8(R12), Z19, Z19
	VCVTDQ2PS Z19, Z19
	VMULPS Z16, Z19, Z19
	VFMADD231PS.BCST 8(DX), Z19, Z2
	VMOVDQU32 192(R10), Z20
	VPADDD.BCST 12(R12), Z20, Z20
	VCVTDQ2PS Z20, Z20
	VMULPS Z16, Z20, Z20
	VFMADD231PS.BCST 12(DX), Z20, Z3
	VMOVDQU32 256(R10), Z17
	VPADDD.BCST 16(R12), Z17, Z17
	VCVTDQ2PS Z17, Z17
	VMULPS Z16, Z17, Z17
	VFMADD231PS.BCST 16(DX), Z17, Z4
	VMOVDQU32 320(R10), Z18
	VPADDD.BCST 20(R12), Z18, Z18
	VCVTDQ2PS Z18, Z18
	VMULPS Z16, Z18, Z18
	VFMADD231PS.BCST 20(DX), Z18, Z5
	VMOVDQU32 384(R10), Z19
	VPADDD.BCST 24(R12), Z19, Z19
	VCVTDQ2PS Z19, Z19
	VMULPS Z16, Z19, Z19
	VFMADD231PS.BCST 24(DX), Z19, Z6
	VMOVDQU32 448(R10), Z20
	VPADDD.BCST 28(R12), Z20, Z20
	VCVTDQ2PS Z20, Z20
	VMULPS Z16, Z20, Z20
	VFMADD231PS.BCST 28(DX), Z20, Z7
	VMOVDQU32 512(R10), Z17
	VPADDD.BCST 32(R12), Z17, Z17
	VCVTDQ2PS Z17, Z17
	VMULPS Z16, Z17, Z17
	VFMADD231PS.BCST 32(DX), Z17, Z8
	VMOVDQU32 576(R10), Z18
	VPADDD.BCST 36(R12), Z18, Z18
	VCVTDQ2PS Z18, Z18
	VMULPS Z16, Z18, Z18
	VFMADD231PS.BCST 36(DX), Z18, Z9
	VMOVDQU32 640(R10), Z19
	VPADDD.BCST 40(R12), Z19, Z19
	VCVTDQ2PS Z19, Z19
	VMULPS Z16, Z19, Z19
	VFMADD231PS.BCST 40(DX), Z19, Z10
	VMOVDQU32 704(R10), Z20
	VPADDD.BCST 44(R12), Z20, Z20
	VCVTDQ2PS Z20, Z20
	VMULPS Z16, Z20, Z20
	VFMADD231PS.BCST 44(DX), Z20, Z11
	VMOVDQU32 768(R10), Z17
	VPADDD.BCST 48(R12), Z17, Z17
	VCVTDQ2PS Z17, Z17
	VMULPS Z16, Z17, Z17
	VFMADD231PS.BCST 48(DX), Z17, Z12
	VMOVDQU32 832(R10), Z18
	VPADDD.BCST 52(R12), Z18, Z18
	VCVTDQ2PS Z18, Z18
	VMULPS Z16, Z18, Z18
	VFMADD231PS.BCST 52(DX), Z18, Z13
	VMOVDQU32 896(R10), Z19
	VPADDD.BCST 56(R12), Z19, Z19
	VCVTDQ2PS Z19, Z19
	VMULPS Z16, Z19, Z19
	VFMADD231PS.BCST 56(DX), Z19, Z14
	VMOVDQU32 960(R10), Z20
	VPADDD.BCST 60(R12), Z20, Z20
	VCVTDQ2PS Z20, Z20
	VMULPS Z16, Z20, Z20
	VFMADD231PS.BCST 60(DX), Z20, Z15
	ADDQ $32, SI
	ADDQ $512, DI
	ADDQ $32, BX
	ADDQ $64, DX
	ADDQ $64, R12
	DECQ CX
	JNE p16_loop
p16_done:
	TILERELEASE
	MOVQ out+72(FP), AX
	STORE16
	VZEROUPPER
	RET

// func unpackP16Q4(dst *byte, src *byte, nb int)
// writes the B tiles of nb blocks of a packed Q4_0 group (quants at src,
// 256 bytes per block) to dst, 512 bytes per block: rows 0..3 the low
// nibbles of chunks 0..3 (weights 4c..4c+3), rows 4..7 the high nibbles
// (weights 16+4c..), as unsigned bytes 0..15.
TEXT ·unpackP16Q4(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ nb+16(FP), CX
	VPBROADCASTQ ·mask0F(SB), Z15
	TESTQ CX, CX
	JEQ up_done
up_loop:
	VMOVDQU64 0(SI), Z0
	VMOVDQU64 64(SI), Z1
	VMOVDQU64 128(SI), Z2
	VMOVDQU64 192(SI), Z3
	VPSRLD $4, Z0, Z4
	VPSRLD $4, Z1, Z5
	VPSRLD $4, Z2, Z6
	VPSRLD $4, Z3, Z7
	VPANDD Z15, Z0, Z0
	VPANDD Z15, Z1, Z1
	VPANDD Z15, Z2, Z2
	VPANDD Z15, Z3, Z3
	VPANDD Z15, Z4, Z4
	VPANDD Z15, Z5, Z5
	VPANDD Z15, Z6, Z6
	VPANDD Z15, Z7, Z7
	VMOVDQU64 Z0, 0(DI)
	VMOVDQU64 Z1, 64(DI)
	VMOVDQU64 Z2, 128(DI)
	VMOVDQU64 Z3, 192(DI)
	VMOVDQU64 Z4, 256(DI)
	VMOVDQU64 Z5, 320(DI)
	VMOVDQU64 Z6, 384(DI)
	VMOVDQU64 Z7, 448(DI)
	ADDQ $256, SI
	ADDQ $512, DI
	DECQ CX
	JNE up_loop
up_done:
	VZEROUPPER
	RET

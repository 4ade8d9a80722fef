//go:build amd64

#include "textflag.h"

// Kernels of the tiled prefill attention (attn_tiled_amd64.go): a KV
// block's keys and values are converted to f32 once per tile of query
// vectors, the keys transposed so that a query's 32 scores come out of
// vertical FMAs.

// func cvtKT8(kt *float32, k *uint16, kstride int, d int, ng int)
// converts ng groups of 8 keys (k[j·kstride+i], j < 8·ng, i < d, d a
// multiple of 8) to f32 transposed: kt[i·32+j] (8×8 register transposes).
TEXT ·cvtKT8(SB), NOSPLIT, $0-40
	MOVQ kt+0(FP), DI
	MOVQ k+8(FP), SI
	MOVQ kstride+16(FP), R8
	SHLQ $1, R8
	MOVQ d+24(FP), R9
	MOVQ ng+32(FP), CX
	TESTQ CX, CX
	JEQ  kt_done
	TESTQ R9, R9
	JEQ  kt_done
	LEAQ (R8)(R8*2), AX
kt_group:
	MOVQ SI, R10
	MOVQ DI, R12
	MOVQ R9, R13
kt_chunk:
	LEAQ (R10)(R8*4), R11
	VCVTPH2PS (R10), Y0
	VCVTPH2PS (R10)(R8*1), Y1
	VCVTPH2PS (R10)(R8*2), Y2
	VCVTPH2PS (R10)(AX*1), Y3
	VCVTPH2PS (R11), Y4
	VCVTPH2PS (R11)(R8*1), Y5
	VCVTPH2PS (R11)(R8*2), Y6
	VCVTPH2PS (R11)(AX*1), Y7
	VUNPCKLPS Y1, Y0, Y8
	VUNPCKHPS Y1, Y0, Y9
	VUNPCKLPS Y3, Y2, Y10
	VUNPCKHPS Y3, Y2, Y11
	VUNPCKLPS Y5, Y4, Y12
	VUNPCKHPS Y5, Y4, Y13
	VUNPCKLPS Y7, Y6, Y14
	VUNPCKHPS Y7, Y6, Y15
	VSHUFPS $0x44, Y10, Y8, Y0
	VSHUFPS $0xEE, Y10, Y8, Y1
	VSHUFPS $0x44, Y11, Y9, Y2
	VSHUFPS $0xEE, Y11, Y9, Y3
	VSHUFPS $0x44, Y14, Y12, Y4
	VSHUFPS $0xEE, Y14, Y12, Y5
	VSHUFPS $0x44, Y15, Y13, Y6
	VSHUFPS $0xEE, Y15, Y13, Y7
	VPERM2F128 $0x20, Y4, Y0, Y8
	VPERM2F128 $0x20, Y5, Y1, Y9
	VPERM2F128 $0x20, Y6, Y2, Y10
	VPERM2F128 $0x20, Y7, Y3, Y11
	VPERM2F128 $0x31, Y4, Y0, Y12
	VPERM2F128 $0x31, Y5, Y1, Y13
	VPERM2F128 $0x31, Y6, Y2, Y14
	VPERM2F128 $0x31, Y7, Y3, Y15
	VMOVUPS Y8, (R12)
	VMOVUPS Y9, 128(R12)
	VMOVUPS Y10, 256(R12)
	VMOVUPS Y11, 384(R12)
	VMOVUPS Y12, 512(R12)
	VMOVUPS Y13, 640(R12)
	VMOVUPS Y14, 768(R12)
	VMOVUPS Y15, 896(R12)
	ADDQ $16, R10
	ADDQ $1024, R12
	SUBQ $8, R13
	JNZ  kt_chunk
	LEAQ (SI)(R8*8), SI
	ADDQ $32, DI
	DECQ CX
	JNZ  kt_group
kt_done:
	VZEROUPPER
	RET

// func cvtVRows(v *float32, vstride int, src *uint16, sstride int, d int, n int)
// converts n rows of d f16 values (d a multiple of 8), sstride
// elements apart, to f32 rows vstride elements apart.
TEXT ·cvtVRows(SB), NOSPLIT, $0-48
	MOVQ v+0(FP), DI
	MOVQ vstride+8(FP), R8
	SHLQ $2, R8
	MOVQ src+16(FP), SI
	MOVQ sstride+24(FP), R9
	SHLQ $1, R9
	MOVQ d+32(FP), BX
	MOVQ n+40(FP), CX
	TESTQ CX, CX
	JEQ  cv_done
	TESTQ BX, BX
	JEQ  cv_done
cv_row:
	MOVQ SI, R10
	MOVQ DI, R11
	MOVQ BX, R12
cv_8:
	VCVTPH2PS (R10), Y0
	VMOVUPS Y0, (R11)
	ADDQ $16, R10
	ADDQ $32, R11
	SUBQ $8, R12
	JNZ  cv_8
	ADDQ R9, SI
	ADDQ R8, DI
	DECQ CX
	JNZ  cv_row
cv_done:
	VZEROUPPER
	RET

// func scoreKT(s *float32, kt *float32, q *float32, d int, nq int, scale float32)
// s[g·32+j] = scale·Σ_i q[g·d+i]·kt[i·32+j] for g < nq, j < 32: two query
// vectors at a time (8 accumulators), q[i] broadcast, no horizontal sums.
TEXT ·scoreKT(SB), NOSPLIT, $0-44
	MOVQ s+0(FP), DI
	MOVQ kt+8(FP), SI
	MOVQ q+16(FP), DX
	MOVQ d+24(FP), R9
	MOVQ nq+32(FP), CX
	VBROADCASTSS scale+40(FP), Y15
	TESTQ R9, R9
	JEQ  skt_done
	MOVQ R9, BX
	SHLQ $2, BX
skt_pair:
	CMPQ CX, $2
	JLT  skt_one
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	MOVQ SI, R10
	MOVQ DX, R11
	MOVQ R9, R12
skt_pl:
	VBROADCASTSS (R11), Y8
	VBROADCASTSS (R11)(BX*1), Y9
	VMOVUPS (R10), Y10
	VMOVUPS 32(R10), Y11
	VMOVUPS 64(R10), Y12
	VMOVUPS 96(R10), Y13
	VFMADD231PS Y10, Y8, Y0
	VFMADD231PS Y11, Y8, Y1
	VFMADD231PS Y12, Y8, Y2
	VFMADD231PS Y13, Y8, Y3
	VFMADD231PS Y10, Y9, Y4
	VFMADD231PS Y11, Y9, Y5
	VFMADD231PS Y12, Y9, Y6
	VFMADD231PS Y13, Y9, Y7
	ADDQ $128, R10
	ADDQ $4, R11
	DECQ R12
	JNZ  skt_pl
	VMULPS Y15, Y0, Y0
	VMULPS Y15, Y1, Y1
	VMULPS Y15, Y2, Y2
	VMULPS Y15, Y3, Y3
	VMULPS Y15, Y4, Y4
	VMULPS Y15, Y5, Y5
	VMULPS Y15, Y6, Y6
	VMULPS Y15, Y7, Y7
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	VMOVUPS Y4, 128(DI)
	VMOVUPS Y5, 160(DI)
	VMOVUPS Y6, 192(DI)
	VMOVUPS Y7, 224(DI)
	ADDQ $256, DI
	LEAQ (DX)(BX*2), DX
	SUBQ $2, CX
	JMP  skt_pair
skt_one:
	TESTQ CX, CX
	JEQ  skt_done
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	MOVQ SI, R10
	MOVQ DX, R11
	MOVQ R9, R12
skt_ol:
	VBROADCASTSS (R11), Y8
	VFMADD231PS (R10), Y8, Y0
	VFMADD231PS 32(R10), Y8, Y1
	VFMADD231PS 64(R10), Y8, Y2
	VFMADD231PS 96(R10), Y8, Y3
	ADDQ $128, R10
	ADDQ $4, R11
	DECQ R12
	JNZ  skt_ol
	VMULPS Y15, Y0, Y0
	VMULPS Y15, Y1, Y1
	VMULPS Y15, Y2, Y2
	VMULPS Y15, Y3, Y3
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
skt_done:
	VZEROUPPER
	RET

// func accumVT(o *float32, v *float32, p *float32, dp int, n int, nq int)
// o[g·dp+i] += Σ_j p[g·32+j]·v[j·dp+i] for g < nq, i < dp (a multiple
// of 16), j < n: four query vectors at a time, 16 outputs each in
// registers, each value chunk loaded once for the four.
TEXT ·accumVT(SB), NOSPLIT, $0-48
	MOVQ o+0(FP), DI
	MOVQ v+8(FP), SI
	MOVQ p+16(FP), DX
	MOVQ dp+24(FP), R8
	SHLQ $2, R8
	MOVQ n+32(FP), CX
	MOVQ nq+40(FP), R13
	TESTQ CX, CX
	JEQ  avt_done
	TESTQ R8, R8
	JEQ  avt_done
	LEAQ (R8)(R8*2), AX
avt_quad:
	CMPQ R13, $4
	JLT  avt_one
	MOVQ DI, R14
	MOVQ SI, BX
avt_qchunk:
	VMOVUPS (R14), Y0
	VMOVUPS 32(R14), Y1
	VMOVUPS (R14)(R8*1), Y2
	VMOVUPS 32(R14)(R8*1), Y3
	VMOVUPS (R14)(R8*2), Y4
	VMOVUPS 32(R14)(R8*2), Y5
	VMOVUPS (R14)(AX*1), Y6
	VMOVUPS 32(R14)(AX*1), Y7
	MOVQ BX, R10
	MOVQ DX, R11
	MOVQ CX, R12
avt_qrow:
	VMOVUPS (R10), Y8
	VMOVUPS 32(R10), Y9
	VBROADCASTSS (R11), Y10
	VFMADD231PS Y8, Y10, Y0
	VFMADD231PS Y9, Y10, Y1
	VBROADCASTSS 128(R11), Y11
	VFMADD231PS Y8, Y11, Y2
	VFMADD231PS Y9, Y11, Y3
	VBROADCASTSS 256(R11), Y12
	VFMADD231PS Y8, Y12, Y4
	VFMADD231PS Y9, Y12, Y5
	VBROADCASTSS 384(R11), Y13
	VFMADD231PS Y8, Y13, Y6
	VFMADD231PS Y9, Y13, Y7
	ADDQ R8, R10
	ADDQ $4, R11
	DECQ R12
	JNZ  avt_qrow
	VMOVUPS Y0, (R14)
	VMOVUPS Y1, 32(R14)
	VMOVUPS Y2, (R14)(R8*1)
	VMOVUPS Y3, 32(R14)(R8*1)
	VMOVUPS Y4, (R14)(R8*2)
	VMOVUPS Y5, 32(R14)(R8*2)
	VMOVUPS Y6, (R14)(AX*1)
	VMOVUPS Y7, 32(R14)(AX*1)
	ADDQ $64, R14
	ADDQ $64, BX
	MOVQ BX, R12
	SUBQ SI, R12
	CMPQ R12, R8
	JLT  avt_qchunk
	LEAQ (DI)(R8*4), DI
	ADDQ $512, DX
	SUBQ $4, R13
	JMP  avt_quad
avt_one:
	TESTQ R13, R13
	JEQ  avt_done
	MOVQ DI, R14
	MOVQ SI, BX
avt_ochunk:
	VMOVUPS (R14), Y0
	VMOVUPS 32(R14), Y1
	MOVQ BX, R10
	MOVQ DX, R11
	MOVQ CX, R12
avt_orow:
	VBROADCASTSS (R11), Y10
	VFMADD231PS (R10), Y10, Y0
	VFMADD231PS 32(R10), Y10, Y1
	ADDQ R8, R10
	ADDQ $4, R11
	DECQ R12
	JNZ  avt_orow
	VMOVUPS Y0, (R14)
	VMOVUPS Y1, 32(R14)
	ADDQ $64, R14
	ADDQ $64, BX
	MOVQ BX, R12
	SUBQ SI, R12
	CMPQ R12, R8
	JLT  avt_ochunk
	ADDQ R8, DI
	ADDQ $128, DX
	DECQ R13
	JMP  avt_one
avt_done:
	VZEROUPPER
	RET

// exp constants for softmaxTile (float32 bit patterns; the same
// polynomial as expShift's in vec_amd64.s, whose table is file-local).
DATA ·attnexp<>+0(SB)/4, $0x3fb8aa3b  // log2(e)
DATA ·attnexp<>+4(SB)/4, $0x3f318000  // ln2 hi = 0.693359375
DATA ·attnexp<>+8(SB)/4, $0xb95e8083  // ln2 lo = -2.12194440e-4
DATA ·attnexp<>+12(SB)/4, $0x3ab60b61 // 1/720
DATA ·attnexp<>+16(SB)/4, $0x3c088889 // 1/120
DATA ·attnexp<>+20(SB)/4, $0x3d2aaaab // 1/24
DATA ·attnexp<>+24(SB)/4, $0x3e2aaaab // 1/6
DATA ·attnexp<>+28(SB)/4, $0x3f000000 // 1/2
DATA ·attnexp<>+32(SB)/4, $0x3f800000 // 1
DATA ·attnexp<>+36(SB)/4, $0x42b00000 // 88.0 (upper clamp)
DATA ·attnexp<>+40(SB)/4, $0xc2ae0000 // -87.0 (lower clamp)
DATA ·attnexp<>+44(SB)/4, $0x0000007f // 127
GLOBL ·attnexp<>(SB), RODATA|NOPTR, $48

// AEXP8 computes Y1 = exp(Y0) (8 floats). Clobbers Y2-Y5; needs
// AEXPCONSTS loaded (Y8-Y14).
#define AEXP8 \
	VMINPS Y12, Y0, Y0 \
	VMAXPS Y13, Y0, Y0 \
	VMULPS Y8, Y0, Y2 \
	VROUNDPS $0, Y2, Y2 \
	VFNMADD231PS Y9, Y2, Y0 \
	VFNMADD231PS Y10, Y2, Y0 \
	VBROADCASTSS ·attnexp<>+12(SB), Y1 \
	VBROADCASTSS ·attnexp<>+16(SB), Y3 \
	VFMADD213PS Y3, Y0, Y1 \
	VBROADCASTSS ·attnexp<>+20(SB), Y3 \
	VFMADD213PS Y3, Y0, Y1 \
	VBROADCASTSS ·attnexp<>+24(SB), Y3 \
	VFMADD213PS Y3, Y0, Y1 \
	VBROADCASTSS ·attnexp<>+28(SB), Y3 \
	VFMADD213PS Y3, Y0, Y1 \
	VFMADD213PS Y11, Y0, Y1 \
	VFMADD213PS Y11, Y0, Y1 \
	VCVTPS2DQ Y2, Y2 \
	VPADDD Y14, Y2, Y2 \
	VPSLLD $23, Y2, Y2 \
	VMULPS Y2, Y1, Y1

#define AEXPCONSTS \
	VBROADCASTSS ·attnexp<>+0(SB), Y8 \
	VBROADCASTSS ·attnexp<>+4(SB), Y9 \
	VBROADCASTSS ·attnexp<>+8(SB), Y10 \
	VBROADCASTSS ·attnexp<>+32(SB), Y11 \
	VBROADCASTSS ·attnexp<>+36(SB), Y12 \
	VBROADCASTSS ·attnexp<>+40(SB), Y13 \
	VPBROADCASTD ·attnexp<>+44(SB), Y14

// AEXPACC: Y1 = exp(off(SI) − Y7), stored back; Y6 += Y1.
#define AEXPACC(off) \
	VMOVUPS off(SI), Y0 \
	VSUBPS Y7, Y0, Y0 \
	AEXP8 \
	VMOVUPS Y1, off(SI) \
	VADDPS Y1, Y6, Y6

// func softmaxTile(ps *float32, nq int, m *float32, l *float32, o *float32, dp int)
// folds a block of 32 valid scores per query vector (ps[g·32:], g < nq)
// into the online softmax: when the block's maximum exceeds m[g], l[g]
// and the output row o[g·dp:] (dp a multiple of 16) are scaled by
// exp(m[g]−max) and m[g] = max; then ps = exp(ps−m[g]), l[g] += Σ ps.
TEXT ·softmaxTile(SB), NOSPLIT, $0-48
	MOVQ ps+0(FP), SI
	MOVQ nq+8(FP), CX
	MOVQ m+16(FP), DX
	MOVQ l+24(FP), BX
	MOVQ o+32(FP), DI
	MOVQ dp+40(FP), R8
	SHLQ $2, R8
	TESTQ CX, CX
	JEQ  smt_done
	AEXPCONSTS
smt_q:
	VMOVUPS (SI), Y6
	VMAXPS 32(SI), Y6, Y6
	VMAXPS 64(SI), Y6, Y6
	VMAXPS 96(SI), Y6, Y6
	VPERM2F128 $0x01, Y6, Y6, Y7
	VMAXPS Y7, Y6, Y6
	VPERMILPS $0x4E, Y6, Y7
	VMAXPS Y7, Y6, Y6
	VPERMILPS $0xB1, Y6, Y7
	VMAXPS Y7, Y6, Y6
	VBROADCASTSS (DX), Y7
	VCMPPS $0x1E, Y7, Y6, Y5
	VMOVMSKPS Y5, AX
	TESTL AX, AX
	JEQ  smt_exp
	VSUBPS Y6, Y7, Y0
	AEXP8
	VMOVSS X6, (DX)
	VMULSS (BX), X1, X2
	VMOVSS X2, (BX)
	MOVQ DI, R10
	MOVQ R8, R11
	TESTQ R11, R11
	JEQ  smt_scaled
smt_scale:
	VMULPS (R10), Y1, Y2
	VMULPS 32(R10), Y1, Y3
	VMOVUPS Y2, (R10)
	VMOVUPS Y3, 32(R10)
	ADDQ $64, R10
	SUBQ $64, R11
	JNZ  smt_scale
smt_scaled:
	VMOVAPS Y6, Y7
smt_exp:
	VMOVUPS (SI), Y0
	VSUBPS Y7, Y0, Y0
	AEXP8
	VMOVUPS Y1, (SI)
	VMOVAPS Y1, Y6
	AEXPACC(32)
	AEXPACC(64)
	AEXPACC(96)
	VEXTRACTF128 $1, Y6, X7
	VADDPS X7, X6, X6
	VHADDPS X6, X6, X6
	VHADDPS X6, X6, X6
	VADDSS (BX), X6, X6
	VMOVSS X6, (BX)
	ADDQ $128, SI
	ADDQ $4, DX
	ADDQ $4, BX
	ADDQ R8, DI
	DECQ CX
	JNZ  smt_q
smt_done:
	VZEROUPPER
	RET

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

//go:build amd64

#include "textflag.h"

// func cvtF32F16(dst *uint16, src *float32, n int): dst = f16(src),
// rounded to nearest even (F16C).
TEXT ·cvtF32F16(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
c16_8:
	CMPQ CX, $8
	JLT  c16_1
	VMOVUPS (SI), Y0
	VCVTPS2PH $0, Y0, X1
	VMOVDQU X1, (DI)
	ADDQ $32, SI
	ADDQ $16, DI
	SUBQ $8, CX
	JMP  c16_8
c16_1:
	TESTQ CX, CX
	JEQ   c16_done
	VMOVSS (SI), X0
	VCVTPS2PH $0, X0, X1
	VMOVD X1, AX
	MOVW AX, (DI)
	ADDQ $4, SI
	ADDQ $2, DI
	DECQ CX
	JMP  c16_1
c16_done:
	VZEROUPPER
	RET

// func axpyF16(y *float32, x *uint16, alpha float32, n int): y += alpha·f32(x)
TEXT ·axpyF16(SB), NOSPLIT, $0-32
	MOVQ y+0(FP), DI
	MOVQ x+8(FP), SI
	VBROADCASTSS alpha+16(FP), Y15
	MOVQ n+24(FP), CX
a16_16:
	CMPQ CX, $16
	JLT  a16_8
	VCVTPH2PS (SI), Y1
	VCVTPH2PS 16(SI), Y2
	VMOVUPS (DI), Y3
	VMOVUPS 32(DI), Y4
	VFMADD231PS Y1, Y15, Y3
	VFMADD231PS Y2, Y15, Y4
	VMOVUPS Y3, (DI)
	VMOVUPS Y4, 32(DI)
	ADDQ $32, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JMP  a16_16
a16_8:
	CMPQ CX, $8
	JLT  a16_1
	VCVTPH2PS (SI), Y1
	VMOVUPS (DI), Y3
	VFMADD231PS Y1, Y15, Y3
	VMOVUPS Y3, (DI)
	ADDQ $16, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP  a16_8
a16_1:
	TESTQ CX, CX
	JEQ   a16_done
	MOVWLZX (SI), AX
	VMOVD AX, X1
	VCVTPH2PS X1, X1
	VMOVSS (DI), X3
	VFMADD231SS X1, X15, X3
	VMOVSS X3, (DI)
	ADDQ $2, SI
	ADDQ $4, DI
	DECQ CX
	JMP  a16_1
a16_done:
	VZEROUPPER
	RET

// func scoreF16(out *float32, k *uint16, kstride int, q *float32, d int, n int)
// out[j] = Σ_i f32(k[j·kstride+i])·q[i] for j < n, i < d (d a multiple of 8).
TEXT ·scoreF16(SB), NOSPLIT, $0-48
	MOVQ out+0(FP), DI
	MOVQ k+8(FP), SI
	MOVQ kstride+16(FP), R8
	SHLQ $1, R8
	MOVQ q+24(FP), DX
	MOVQ d+32(FP), R9
	MOVQ n+40(FP), CX
	TESTQ CX, CX
	JEQ  sc_done
sc_row:
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	MOVQ SI, R10
	MOVQ DX, R11
	MOVQ R9, R12
sc_16:
	CMPQ R12, $16
	JLT  sc_8
	VCVTPH2PS (R10), Y2
	VCVTPH2PS 16(R10), Y3
	VFMADD231PS (R11), Y2, Y0
	VFMADD231PS 32(R11), Y3, Y1
	ADDQ $32, R10
	ADDQ $64, R11
	SUBQ $16, R12
	JMP  sc_16
sc_8:
	CMPQ R12, $8
	JLT  sc_sum
	VCVTPH2PS (R10), Y2
	VFMADD231PS (R11), Y2, Y0
sc_sum:
	VADDPS Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VHADDPS X0, X0, X0
	VHADDPS X0, X0, X0
	VMOVSS X0, (DI)
	ADDQ $4, DI
	ADDQ R8, SI
	DECQ CX
	JNZ  sc_row
sc_done:
	VZEROUPPER
	RET

// func accumF16(o *float32, v *uint16, vstride int, w *float32, d int, n int)
// o[i] += Σ_j w[j]·f32(v[j·vstride+i]) for i < d (a multiple of 8), j < n;
// 32 outputs at a time stay in registers across the n rows.
TEXT ·accumF16(SB), NOSPLIT, $0-48
	MOVQ o+0(FP), DI
	MOVQ v+8(FP), SI
	MOVQ vstride+16(FP), R8
	SHLQ $1, R8
	MOVQ w+24(FP), DX
	MOVQ d+32(FP), R9
	MOVQ n+40(FP), CX
	TESTQ CX, CX
	JEQ  ac_done
ac_chunk32:
	CMPQ R9, $32
	JLT  ac_chunk8
	VMOVUPS (DI), Y0
	VMOVUPS 32(DI), Y1
	VMOVUPS 64(DI), Y2
	VMOVUPS 96(DI), Y3
	MOVQ SI, R10
	MOVQ DX, R11
	MOVQ CX, R12
ac_row32:
	VBROADCASTSS (R11), Y15
	VCVTPH2PS (R10), Y4
	VCVTPH2PS 16(R10), Y5
	VCVTPH2PS 32(R10), Y6
	VCVTPH2PS 48(R10), Y7
	VFMADD231PS Y4, Y15, Y0
	VFMADD231PS Y5, Y15, Y1
	VFMADD231PS Y6, Y15, Y2
	VFMADD231PS Y7, Y15, Y3
	ADDQ R8, R10
	ADDQ $4, R11
	DECQ R12
	JNZ  ac_row32
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	ADDQ $128, DI
	ADDQ $64, SI
	SUBQ $32, R9
	JMP  ac_chunk32
ac_chunk8:
	CMPQ R9, $8
	JLT  ac_done
	VMOVUPS (DI), Y0
	MOVQ SI, R10
	MOVQ DX, R11
	MOVQ CX, R12
ac_row8:
	VBROADCASTSS (R11), Y15
	VCVTPH2PS (R10), Y4
	VFMADD231PS Y4, Y15, Y0
	ADDQ R8, R10
	ADDQ $4, R11
	DECQ R12
	JNZ  ac_row8
	VMOVUPS Y0, (DI)
	ADDQ $32, DI
	ADDQ $16, SI
	SUBQ $8, R9
	JMP  ac_chunk8
ac_done:
	VZEROUPPER
	RET

#define HSUM4(Y, X, T) \
	VEXTRACTF128 $1, Y, T \
	VADDPS T, X, X \
	VHADDPS X, X, X \
	VHADDPS X, X, X

// func scoreF16x4(out *float32, ostride int, k *uint16, kstride int, q *float32, qstride int, d int, n int)
// scoreF16 for 4 query vectors sharing the keys (grouped-query heads):
// out[g·ostride+j] = Σ_i f32(k[j·kstride+i])·q[g·qstride+i], g < 4; each
// key chunk is converted once for the 4 heads. d is a multiple of 8.
TEXT ·scoreF16x4(SB), NOSPLIT, $0-64
	MOVQ out+0(FP), DI
	MOVQ ostride+8(FP), R13
	SHLQ $2, R13
	MOVQ k+16(FP), SI
	MOVQ kstride+24(FP), R8
	SHLQ $1, R8
	MOVQ q+32(FP), DX
	MOVQ qstride+40(FP), BX
	SHLQ $2, BX
	MOVQ d+48(FP), R9
	MOVQ n+56(FP), CX
	TESTQ CX, CX
	JEQ  s4_done
	LEAQ (BX)(BX*2), R14
	LEAQ (R13)(R13*2), AX
s4_row:
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	MOVQ SI, R10
	MOVQ DX, R11
	MOVQ R9, R12
s4_8:
	VCVTPH2PS (R10), Y4
	VFMADD231PS (R11), Y4, Y0
	VFMADD231PS (R11)(BX*1), Y4, Y1
	VFMADD231PS (R11)(BX*2), Y4, Y2
	VFMADD231PS (R11)(R14*1), Y4, Y3
	ADDQ $16, R10
	ADDQ $32, R11
	SUBQ $8, R12
	JNZ  s4_8
	HSUM4(Y0, X0, X5)
	HSUM4(Y1, X1, X5)
	HSUM4(Y2, X2, X5)
	HSUM4(Y3, X3, X5)
	VMOVSS X0, (DI)
	VMOVSS X1, (DI)(R13*1)
	VMOVSS X2, (DI)(R13*2)
	VMOVSS X3, (DI)(AX*1)
	ADDQ $4, DI
	ADDQ R8, SI
	DECQ CX
	JNZ  s4_row
s4_done:
	VZEROUPPER
	RET

// func accumF16x4(o *float32, ostride int, v *uint16, vstride int, w *float32, wstride int, d int, n int)
// accumF16 for 4 heads sharing the values: o[g·ostride+i] += Σ_j
// w[g·wstride+j]·f32(v[j·vstride+i]), g < 4; each value chunk is
// converted once for the 4 heads, 16 outputs per head in registers.
// d is a multiple of 16.
TEXT ·accumF16x4(SB), NOSPLIT, $0-64
	MOVQ o+0(FP), DI
	MOVQ ostride+8(FP), R13
	SHLQ $2, R13
	MOVQ v+16(FP), SI
	MOVQ vstride+24(FP), R8
	SHLQ $1, R8
	MOVQ w+32(FP), DX
	MOVQ wstride+40(FP), BX
	SHLQ $2, BX
	MOVQ d+48(FP), R9
	MOVQ n+56(FP), CX
	TESTQ CX, CX
	JEQ  a4_done
	TESTQ R9, R9
	JEQ  a4_done
	LEAQ (R13)(R13*2), AX
	LEAQ (BX)(BX*2), R14
a4_chunk:
	VMOVUPS (DI), Y0
	VMOVUPS 32(DI), Y1
	VMOVUPS (DI)(R13*1), Y2
	VMOVUPS 32(DI)(R13*1), Y3
	VMOVUPS (DI)(R13*2), Y4
	VMOVUPS 32(DI)(R13*2), Y5
	VMOVUPS (DI)(AX*1), Y6
	VMOVUPS 32(DI)(AX*1), Y7
	MOVQ SI, R10
	MOVQ DX, R11
	MOVQ CX, R12
a4_row:
	VCVTPH2PS (R10), Y8
	VCVTPH2PS 16(R10), Y9
	VBROADCASTSS (R11), Y10
	VFMADD231PS Y8, Y10, Y0
	VFMADD231PS Y9, Y10, Y1
	VBROADCASTSS (R11)(BX*1), Y11
	VFMADD231PS Y8, Y11, Y2
	VFMADD231PS Y9, Y11, Y3
	VBROADCASTSS (R11)(BX*2), Y12
	VFMADD231PS Y8, Y12, Y4
	VFMADD231PS Y9, Y12, Y5
	VBROADCASTSS (R11)(R14*1), Y13
	VFMADD231PS Y8, Y13, Y6
	VFMADD231PS Y9, Y13, Y7
	ADDQ R8, R10
	ADDQ $4, R11
	DECQ R12
	JNZ  a4_row
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, (DI)(R13*1)
	VMOVUPS Y3, 32(DI)(R13*1)
	VMOVUPS Y4, (DI)(R13*2)
	VMOVUPS Y5, 32(DI)(R13*2)
	VMOVUPS Y6, (DI)(AX*1)
	VMOVUPS Y7, 32(DI)(AX*1)
	ADDQ $64, DI
	ADDQ $32, SI
	SUBQ $16, R9
	JNZ  a4_chunk
a4_done:
	VZEROUPPER
	RET

// func prefetchRows(p *uint16, stride int, rows int, bytes int)
TEXT ·prefetchRows(SB), NOSPLIT, $0-32
	MOVQ p+0(FP), SI
	MOVQ stride+8(FP), R8
	SHLQ $1, R8
	MOVQ rows+16(FP), CX
	MOVQ bytes+24(FP), DX
	TESTQ CX, CX
	JLE  pf_done
	TESTQ DX, DX
	JLE  pf_done
pf_row:
	MOVQ SI, R10
	MOVQ DX, R11
pf_line:
	PREFETCHT0 (R10)
	ADDQ $64, R10
	SUBQ $64, R11
	JG   pf_line
	ADDQ R8, SI
	DECQ CX
	JNZ  pf_row
pf_done:
	RET

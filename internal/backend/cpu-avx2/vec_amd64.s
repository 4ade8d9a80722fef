//go:build amd64

#include "textflag.h"
#include "asm_amd64.h"

// (The shared byte constants are in consts_amd64.s.)

// exp constants (float32 bit patterns)
DATA ·expc<>+0(SB)/4, $0x3fb8aa3b  // log2(e)
DATA ·expc<>+4(SB)/4, $0x3f318000  // ln2 hi = 0.693359375
DATA ·expc<>+8(SB)/4, $0xb95e8083  // ln2 lo = -2.12194440e-4
DATA ·expc<>+12(SB)/4, $0x3ab60b61 // 1/720
DATA ·expc<>+16(SB)/4, $0x3c088889 // 1/120
DATA ·expc<>+20(SB)/4, $0x3d2aaaab // 1/24
DATA ·expc<>+24(SB)/4, $0x3e2aaaab // 1/6
DATA ·expc<>+28(SB)/4, $0x3f000000 // 1/2
DATA ·expc<>+32(SB)/4, $0x3f800000 // 1
DATA ·expc<>+36(SB)/4, $0x42b00000 // 88.0 (upper clamp)
DATA ·expc<>+40(SB)/4, $0xc2ae0000 // -87.0 (lower clamp)
DATA ·expc<>+44(SB)/4, $0x0000007f // 127
GLOBL ·expc<>(SB), RODATA|NOPTR, $48

// func dotF32(a, b *float32, n int) float32
TEXT ·dotF32(SB), NOSPLIT, $0-28
	MOVQ a+0(FP), SI
	MOVQ b+8(FP), DI
	MOVQ n+16(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
dotf32_32:
	CMPQ CX, $32
	JLT  dotf32_8
	PREFETCHT0 2048(SI)
	PREFETCHT0 2112(SI)
	VMOVUPS (SI), Y4
	VMOVUPS 32(SI), Y5
	VMOVUPS 64(SI), Y6
	VMOVUPS 96(SI), Y7
	VFMADD231PS (DI), Y4, Y0
	VFMADD231PS 32(DI), Y5, Y1
	VFMADD231PS 64(DI), Y6, Y2
	VFMADD231PS 96(DI), Y7, Y3
	ADDQ $128, SI
	ADDQ $128, DI
	SUBQ $32, CX
	JMP  dotf32_32
dotf32_8:
	CMPQ CX, $8
	JLT  dotf32_1
	VMOVUPS (SI), Y4
	VFMADD231PS (DI), Y4, Y0
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP  dotf32_8
dotf32_1:
	VADDPS Y1, Y0, Y0
	VADDPS Y3, Y2, Y2
	VADDPS Y2, Y0, Y0
	HSUM(Y0, X0, X1)
dotf32_tail:
	TESTQ CX, CX
	JEQ   dotf32_done
	VMOVSS (SI), X4
	VFMADD231SS (DI), X4, X0
	ADDQ $4, SI
	ADDQ $4, DI
	DECQ CX
	JMP  dotf32_tail
dotf32_done:
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET

// func dotF16(w *uint16, x *float32, n int) float32
TEXT ·dotF16(SB), NOSPLIT, $0-28
	MOVQ w+0(FP), SI
	MOVQ x+8(FP), DI
	MOVQ n+16(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
dotf16_32:
	CMPQ CX, $32
	JLT  dotf16_8
	PREFETCHT0 2048(SI)
	VCVTPH2PS (SI), Y4
	VCVTPH2PS 16(SI), Y5
	VCVTPH2PS 32(SI), Y6
	VCVTPH2PS 48(SI), Y7
	VFMADD231PS (DI), Y4, Y0
	VFMADD231PS 32(DI), Y5, Y1
	VFMADD231PS 64(DI), Y6, Y2
	VFMADD231PS 96(DI), Y7, Y3
	ADDQ $64, SI
	ADDQ $128, DI
	SUBQ $32, CX
	JMP  dotf16_32
dotf16_8:
	CMPQ CX, $8
	JLT  dotf16_1
	VCVTPH2PS (SI), Y4
	VFMADD231PS (DI), Y4, Y0
	ADDQ $16, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP  dotf16_8
dotf16_1:
	VADDPS Y1, Y0, Y0
	VADDPS Y3, Y2, Y2
	VADDPS Y2, Y0, Y0
	HSUM(Y0, X0, X1)
dotf16_tail:
	TESTQ CX, CX
	JEQ   dotf16_done
	MOVWLZX (SI), AX
	VMOVD AX, X4
	VCVTPH2PS X4, X4
	VFMADD231SS (DI), X4, X0
	ADDQ $2, SI
	ADDQ $4, DI
	DECQ CX
	JMP  dotf16_tail
dotf16_done:
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET

// func roundF16(dst, src *float32, n int): dst = float32(float16(src)), n%8 == 0
TEXT ·roundF16(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $3, CX
	JEQ  rf16_done
rf16_loop:
	VMOVUPS (SI), Y0
	VCVTPS2PH $0, Y0, X1
	VCVTPH2PS X1, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNZ  rf16_loop
rf16_done:
	VZEROUPPER
	RET

// BINOP defines func name(out, a, b *float32, n int) applying op.
#define BINOP(name, op, sop) \
TEXT name(SB), NOSPLIT, $0-32 \
	MOVQ out+0(FP), DI \
	MOVQ a+8(FP), SI \
	MOVQ b+16(FP), DX \
	MOVQ n+24(FP), CX \
binop_8: \
	CMPQ CX, $8 \
	JLT binop_1 \
	VMOVUPS (SI), Y0 \
	op (DX), Y0, Y0 \
	VMOVUPS Y0, (DI) \
	ADDQ $32, SI \
	ADDQ $32, DX \
	ADDQ $32, DI \
	SUBQ $8, CX \
	JMP binop_8 \
binop_1: \
	TESTQ CX, CX \
	JEQ binop_done \
	VMOVSS (SI), X0 \
	sop (DX), X0, X0 \
	VMOVSS X0, (DI) \
	ADDQ $4, SI \
	ADDQ $4, DX \
	ADDQ $4, DI \
	DECQ CX \
	JMP binop_1 \
binop_done: \
	VZEROUPPER \
	RET

BINOP(·addF32, VADDPS, VADDSS)
BINOP(·mulF32, VMULPS, VMULSS)

// func axpyF32(y, x *float32, alpha float32, n int): y += alpha·x
TEXT ·axpyF32(SB), NOSPLIT, $0-32
	MOVQ y+0(FP), DI
	MOVQ x+8(FP), SI
	VBROADCASTSS alpha+16(FP), Y15
	MOVQ n+24(FP), CX
axpy_8:
	CMPQ CX, $8
	JLT  axpy_1
	VMOVUPS (DI), Y0
	VFMADD231PS (SI), Y15, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP  axpy_8
axpy_1:
	TESTQ CX, CX
	JEQ   axpy_done
	VMOVSS (DI), X0
	VFMADD231SS (SI), X15, X0
	VMOVSS X0, (DI)
	ADDQ $4, SI
	ADDQ $4, DI
	DECQ CX
	JMP  axpy_1
axpy_done:
	VZEROUPPER
	RET

// func scaleF32(out, x *float32, s float32, n int): out = x·s
TEXT ·scaleF32(SB), NOSPLIT, $0-32
	MOVQ out+0(FP), DI
	MOVQ x+8(FP), SI
	VBROADCASTSS s+16(FP), Y15
	MOVQ n+24(FP), CX
scale_8:
	CMPQ CX, $8
	JLT  scale_1
	VMULPS (SI), Y15, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP  scale_8
scale_1:
	TESTQ CX, CX
	JEQ   scale_done
	VMULSS (SI), X15, X0
	VMOVSS X0, (DI)
	ADDQ $4, SI
	ADDQ $4, DI
	DECQ CX
	JMP  scale_1
scale_done:
	VZEROUPPER
	RET

// func rmsScale(out, x, w *float32, s float32, n int): out = (x·s)·w
TEXT ·rmsScale(SB), NOSPLIT, $0-40
	MOVQ out+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ w+16(FP), DX
	VBROADCASTSS s+24(FP), Y15
	MOVQ n+32(FP), CX
rms_8:
	CMPQ CX, $8
	JLT  rms_1
	VMULPS (SI), Y15, Y0
	VMULPS (DX), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DX
	ADDQ $32, DI
	SUBQ $8, CX
	JMP  rms_8
rms_1:
	TESTQ CX, CX
	JEQ   rms_done
	VMULSS (SI), X15, X0
	VMULSS (DX), X0, X0
	VMOVSS X0, (DI)
	ADDQ $4, SI
	ADDQ $4, DX
	ADDQ $4, DI
	DECQ CX
	JMP  rms_1
rms_done:
	VZEROUPPER
	RET

// func sumSq(x *float32, n int) float64: Σ x², accumulated in float64
TEXT ·sumSq(SB), NOSPLIT, $0-24
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VXORPD Y0, Y0, Y0
	VXORPD Y1, Y1, Y1
sumsq_8:
	CMPQ CX, $8
	JLT  sumsq_1
	VCVTPS2PD (SI), Y2
	VCVTPS2PD 16(SI), Y3
	VFMADD231PD Y2, Y2, Y0
	VFMADD231PD Y3, Y3, Y1
	ADDQ $32, SI
	SUBQ $8, CX
	JMP  sumsq_8
sumsq_1:
	VADDPD Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPD X1, X0, X0
	VUNPCKHPD X0, X0, X1
	VADDSD X1, X0, X0
sumsq_t:
	TESTQ CX, CX
	JEQ   sumsq_done
	VCVTSS2SD (SI), X2, X2
	VFMADD231SD X2, X2, X0
	ADDQ $4, SI
	DECQ CX
	JMP  sumsq_t
sumsq_done:
	VZEROUPPER
	MOVSD X0, ret+16(FP)
	RET

// func maxF32(x *float32, n int) float32 (n ≥ 1)
TEXT ·maxF32(SB), NOSPLIT, $0-20
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VBROADCASTSS (SI), Y0
max_8:
	CMPQ CX, $8
	JLT  max_r
	VMAXPS (SI), Y0, Y0
	ADDQ $32, SI
	SUBQ $8, CX
	JMP  max_8
max_r:
	VEXTRACTF128 $1, Y0, X1
	VMAXPS X1, X0, X0
	VMOVHLPS X0, X1, X1
	VMAXPS X1, X0, X0
	VMOVSHDUP X0, X1
	VMAXSS X1, X0, X0
max_t:
	TESTQ CX, CX
	JEQ   max_done
	VMAXSS (SI), X0, X0
	ADDQ $4, SI
	DECQ CX
	JMP  max_t
max_done:
	VZEROUPPER
	MOVSS X0, ret+16(FP)
	RET

// EXP8 computes Y1 = exp(Y0) (8 floats). Clobbers Y2-Y5; needs the
// constants loaded: Y8=log2e Y9=ln2hi Y10=ln2lo Y11=1 Y12=hi clamp
// Y13=lo clamp Y14=127 (int).
#define EXP8 \
	VMINPS Y12, Y0, Y0 \
	VMAXPS Y13, Y0, Y0 \
	VMULPS Y8, Y0, Y2 \
	VROUNDPS $0, Y2, Y2 \
	VFNMADD231PS Y9, Y2, Y0 \
	VFNMADD231PS Y10, Y2, Y0 \
	VBROADCASTSS ·expc<>+12(SB), Y1 \
	VBROADCASTSS ·expc<>+16(SB), Y3 \
	VFMADD213PS Y3, Y0, Y1 \
	VBROADCASTSS ·expc<>+20(SB), Y3 \
	VFMADD213PS Y3, Y0, Y1 \
	VBROADCASTSS ·expc<>+24(SB), Y3 \
	VFMADD213PS Y3, Y0, Y1 \
	VBROADCASTSS ·expc<>+28(SB), Y3 \
	VFMADD213PS Y3, Y0, Y1 \
	VFMADD213PS Y11, Y0, Y1 \
	VFMADD213PS Y11, Y0, Y1 \
	VCVTPS2DQ Y2, Y2 \
	VPADDD Y14, Y2, Y2 \
	VPSLLD $23, Y2, Y2 \
	VMULPS Y2, Y1, Y1

#define EXPCONSTS \
	VBROADCASTSS ·expc<>+0(SB), Y8 \
	VBROADCASTSS ·expc<>+4(SB), Y9 \
	VBROADCASTSS ·expc<>+8(SB), Y10 \
	VBROADCASTSS ·expc<>+32(SB), Y11 \
	VBROADCASTSS ·expc<>+36(SB), Y12 \
	VBROADCASTSS ·expc<>+40(SB), Y13 \
	VPBROADCASTD ·expc<>+44(SB), Y14

// func expShift(x *float32, n int, m float32) float32:
// x[i] = exp(x[i]−m) for i < n−n%8, returns their sum
TEXT ·expShift(SB), NOSPLIT, $0-28
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VBROADCASTSS m+16(FP), Y15
	EXPCONSTS
	VXORPS Y6, Y6, Y6
	SHRQ $3, CX
	JEQ  exps_done
exps_loop:
	VMOVUPS (SI), Y0
	VSUBPS Y15, Y0, Y0
	EXP8
	VMOVUPS Y1, (SI)
	VADDPS Y1, Y6, Y6
	ADDQ $32, SI
	DECQ CX
	JNZ  exps_loop
exps_done:
	HSUM(Y6, X6, X7)
	VZEROUPPER
	MOVSS X6, ret+24(FP)
	RET

// func siluMul(out, gate, up *float32, n int): out = g/(1+exp(−g))·u for
// i < n−n%8
TEXT ·siluMul(SB), NOSPLIT, $0-32
	MOVQ out+0(FP), DI
	MOVQ gate+8(FP), SI
	MOVQ up+16(FP), DX
	MOVQ n+24(FP), CX
	EXPCONSTS
	VXORPS Y15, Y15, Y15
	SHRQ $3, CX
	JEQ  silu_done
silu_loop:
	VMOVUPS (SI), Y6
	VSUBPS Y6, Y15, Y0
	EXP8
	VADDPS Y11, Y1, Y1
	VDIVPS Y1, Y6, Y6
	VMULPS (DX), Y6, Y6
	VMOVUPS Y6, (DI)
	ADDQ $32, SI
	ADDQ $32, DX
	ADDQ $32, DI
	DECQ CX
	JNZ  silu_loop
silu_done:
	VZEROUPPER
	RET

// func ropeRot(x, c, s *float32, n int): for i < n (n%8 == 0):
// x'[i] = x[i]·c[i] + x[i^1]·s[i]
TEXT ·ropeRot(SB), NOSPLIT, $0-32
	MOVQ x+0(FP), DI
	MOVQ c+8(FP), SI
	MOVQ s+16(FP), DX
	MOVQ n+24(FP), CX
	SHRQ $3, CX
	JEQ  rope_done
rope_loop:
	VMOVUPS (DI), Y0
	VPERMILPS $0xb1, Y0, Y1
	VMULPS (DX), Y1, Y1
	VFMADD231PS (SI), Y0, Y1
	VMOVUPS Y1, (DI)
	ADDQ $32, DI
	ADDQ $32, SI
	ADDQ $32, DX
	DECQ CX
	JNZ  rope_loop
rope_done:
	VZEROUPPER
	RET

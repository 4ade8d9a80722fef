//go:build amd64

#include "textflag.h"

DATA ·qabs<>+0(SB)/4, $0x7fffffff
DATA ·qabs<>+4(SB)/4, $0x42fe0000 // 127.0
GLOBL ·qabs<>(SB), RODATA|NOPTR, $8

DATA ·qperm<>+0(SB)/4, $0
DATA ·qperm<>+4(SB)/4, $4
DATA ·qperm<>+8(SB)/4, $1
DATA ·qperm<>+12(SB)/4, $5
DATA ·qperm<>+16(SB)/4, $2
DATA ·qperm<>+20(SB)/4, $6
DATA ·qperm<>+24(SB)/4, $3
DATA ·qperm<>+28(SB)/4, $7
GLOBL ·qperm<>(SB), RODATA|NOPTR, $32

// func quantQ8_0(x *float32, qs *int8, d *float32, s *int32, nb int)
// Quantizes nb blocks of 32 floats like llama.cpp on x86: amax = max|x|,
// d = f16(amax/127) (stored widened to f32), id = 127/amax (0 when amax
// is 0), q = round-half-even(x·id), s = −8·Σq.
TEXT ·quantQ8_0(SB), NOSPLIT, $0-40
	MOVQ x+0(FP), SI
	MOVQ qs+8(FP), DI
	MOVQ d+16(FP), DX
	MOVQ s+24(FP), BX
	MOVQ nb+32(FP), CX
	VBROADCASTSS ·qabs<>+0(SB), Y15
	VBROADCASTSS ·qabs<>+4(SB), X14
	VMOVDQU ·qperm<>(SB), Y13
	VXORPS X12, X12, X12
	TESTQ CX, CX
	JEQ qq_done
qq_loop:
	VMOVUPS (SI), Y0
	VMOVUPS 32(SI), Y1
	VMOVUPS 64(SI), Y2
	VMOVUPS 96(SI), Y3
	VANDPS Y15, Y0, Y4
	VANDPS Y15, Y1, Y5
	VANDPS Y15, Y2, Y6
	VANDPS Y15, Y3, Y7
	VMAXPS Y5, Y4, Y4
	VMAXPS Y7, Y6, Y6
	VMAXPS Y6, Y4, Y4
	VEXTRACTF128 $1, Y4, X5
	VMAXPS X5, X4, X4
	VMOVHLPS X4, X5, X5
	VMAXPS X5, X4, X4
	VMOVSHDUP X4, X5
	VMAXSS X5, X4, X4 // amax
	VDIVSS X14, X4, X5 // d = amax/127
	VCVTPS2PH $0, X5, X5
	VCVTPH2PS X5, X5
	VMOVSS X5, (DX)
	VDIVSS X4, X14, X6 // id = 127/amax
	VCMPSS $4, X12, X4, X7 // amax != 0
	VANDPS X7, X6, X6
	VBROADCASTSS X6, Y6
	VMULPS Y6, Y0, Y0
	VMULPS Y6, Y1, Y1
	VMULPS Y6, Y2, Y2
	VMULPS Y6, Y3, Y3
	VCVTPS2DQ Y0, Y0
	VCVTPS2DQ Y1, Y1
	VCVTPS2DQ Y2, Y2
	VCVTPS2DQ Y3, Y3
	// sum of quants
	VPADDD Y1, Y0, Y8
	VPADDD Y3, Y2, Y9
	VPADDD Y9, Y8, Y8
	VEXTRACTI128 $1, Y8, X9
	VPADDD X9, X8, X8
	VPSHUFD $0x4e, X8, X9
	VPADDD X9, X8, X8
	VPSHUFD $0xb1, X8, X9
	VPADDD X9, X8, X8
	VMOVD X8, AX
	SHLL $3, AX
	NEGL AX
	MOVL AX, (BX)
	// pack to int8 in element order
	VPACKSSDW Y1, Y0, Y0
	VPACKSSDW Y3, Y2, Y2
	VPACKSSWB Y2, Y0, Y0
	VPERMD Y0, Y13, Y0
	VMOVDQU Y0, (DI)
	ADDQ $128, SI
	ADDQ $32, DI
	ADDQ $4, DX
	ADDQ $4, BX
	DECQ CX
	JNE qq_loop
qq_done:
	VZEROUPPER
	RET

DATA ·qk<>+0(SB)/4, $0xc2fe0000 // -127.0
DATA ·qk<>+4(SB)/4, $0x3f800000 // 1.0
DATA ·qk<>+8(SB)/4, $127
DATA ·qk<>+12(SB)/4, $0x01010101
DATA ·qk<>+16(SB)/4, $0x00010001
GLOBL ·qk<>(SB), RODATA|NOPTR, $20

// func quantQ8K(x *float32, qs *int8, d *float32, bsums *int16, nb int)
// Quantizes nb super-blocks of 256 floats to Q8_K: the element of
// largest magnitude (the first one on ties) gives iscale = −127/x,
// q = min(127, round-half-even(iscale·x)), d = 1/iscale, and bsums holds
// the sum of each 16 quants.
TEXT ·quantQ8K(SB), NOSPLIT, $0-40
	MOVQ x+0(FP), SI
	MOVQ qs+8(FP), DI
	MOVQ d+16(FP), DX
	MOVQ bsums+24(FP), BX
	MOVQ nb+32(FP), R8
	VBROADCASTSS ·qabs<>+0(SB), Y15
	VMOVDQU ·qperm<>(SB), Y13
	VPBROADCASTD ·qk<>+8(SB), Y12
	VPBROADCASTD ·qk<>+12(SB), Y11
	VPBROADCASTD ·qk<>+16(SB), Y10
	TESTQ R8, R8
	JEQ qk_done
qk_block:
	// amax
	VXORPS Y0, Y0, Y0
	MOVQ $0, CX
qk_max:
	VANDPS (SI)(CX*4), Y15, Y1
	VMAXPS Y1, Y0, Y0
	ADDQ $8, CX
	CMPQ CX, $256
	JLT qk_max
	VEXTRACTF128 $1, Y0, X1
	VMAXPS X1, X0, X0
	VMOVHLPS X0, X1, X1
	VMAXPS X1, X0, X0
	VMOVSHDUP X0, X1
	VMAXSS X1, X0, X0
	VXORPS X1, X1, X1
	VUCOMISS X1, X0
	JNE qk_nonzero
	// all zero
	MOVL $0, (DX)
	VPXOR Y1, Y1, Y1
	MOVQ $0, CX
qk_zero:
	VMOVDQU Y1, (DI)(CX*1)
	ADDQ $32, CX
	CMPQ CX, $256
	JLT qk_zero
	VMOVDQU Y1, (BX)
	JMP qk_next
qk_nonzero:
	// find the first element with |x| == amax
	VBROADCASTSS X0, Y0
	MOVQ $0, CX
qk_find:
	VANDPS (SI)(CX*4), Y15, Y1
	VCMPPS $0, Y0, Y1, Y1
	VMOVMSKPS Y1, AX
	TESTL AX, AX
	JNE qk_found
	ADDQ $8, CX
	JMP qk_find
qk_found:
	BSFL AX, AX
	ADDQ AX, CX
	VMOVSS (SI)(CX*4), X1          // max (signed)
	VMOVSS ·qk<>+0(SB), X2
	VDIVSS X1, X2, X2               // iscale = -127/max
	VMOVSS ·qk<>+4(SB), X3
	VDIVSS X2, X3, X3               // d = 1/iscale
	VMOVSS X3, (DX)
	VBROADCASTSS X2, Y2
	MOVQ $0, CX
	MOVQ $0, R9
qk_q:
	VMULPS (SI)(CX*4), Y2, Y4
	VMULPS 32(SI)(CX*4), Y2, Y5
	VMULPS 64(SI)(CX*4), Y2, Y6
	VMULPS 96(SI)(CX*4), Y2, Y7
	VCVTPS2DQ Y4, Y4
	VCVTPS2DQ Y5, Y5
	VCVTPS2DQ Y6, Y6
	VCVTPS2DQ Y7, Y7
	VPMINSD Y12, Y4, Y4
	VPMINSD Y12, Y5, Y5
	VPMINSD Y12, Y6, Y6
	VPMINSD Y12, Y7, Y7
	VPACKSSDW Y5, Y4, Y4
	VPACKSSDW Y7, Y6, Y6
	VPACKSSWB Y6, Y4, Y4
	VPERMD Y4, Y13, Y4
	VMOVDQU Y4, (DI)(CX*1)
	// bsums of the two 16-element halves
	VPMADDUBSW Y4, Y11, Y5
	VPMADDWD Y10, Y5, Y5
	VPHADDD Y5, Y5, Y5
	VPHADDD Y5, Y5, Y5
	VMOVD X5, AX
	MOVW AX, (BX)(R9*1)
	VEXTRACTI128 $1, Y5, X5
	VMOVD X5, AX
	MOVW AX, 2(BX)(R9*1)
	ADDQ $4, R9
	ADDQ $32, CX
	CMPQ CX, $256
	JLT qk_q
qk_next:
	ADDQ $1024, SI
	ADDQ $256, DI
	ADDQ $4, DX
	ADDQ $32, BX
	DECQ R8
	JNE qk_block
qk_done:
	VZEROUPPER
	RET

#!/bin/sh
# Compiles the GLSL compute shaders in shaders/ to SPIR-V (run by
# `go generate`, needs glslc). The .spv files are committed so that
# building the plugin does not need glslc.
set -eu
cd "$(dirname "$0")/shaders"
GLSLC=${GLSLC:-glslc}
OUT=${OUT:-../spv}
mkdir -p "$OUT"
c() { # c OUTPUT SOURCE [DEFINES...]
	o=$1; s=$2; shift 2
	"$GLSLC" --target-env=vulkan1.1 -O "$@" -o "$OUT/$o.spv" "$s"
}
for t in f32 f16 bf16 q4_0 q4_1 q5_0 q5_1 q8_0 q2_k q3_k q4_k q5_k q6_k iq4_nl iq4_xs; do
	T=$(echo "$t" | tr a-z A-Z)
	c "matmul_$t" matmul.comp "-DTYPE_$T"
	c "matmul32_$t" matmul.comp "-DTYPE_$T" -DBLOCKS
	c "matmult_$t" matmul_tiled.comp "-DTYPE_$T"
	c "matvec_$t" matvec.comp "-DTYPE_$T"
	c "matmulid_$t" matmul.comp "-DTYPE_$T" -DMOE_ID
	c "matmulid32_$t" matmul.comp "-DTYPE_$T" -DBLOCKS -DMOE_ID
	c "getrows_$t" getrows.comp "-DTYPE_$T"
done
c rmsnorm rmsnorm.comp
c softmax softmax.comp
c rope rope.comp
c binary binary.comp
c kvstore kvstore.comp
c attention_f16 attention.comp -DKV_F16
c attention_f32 attention.comp
c moe moe.comp
c moesum moesum.comp
c columns columns.comp

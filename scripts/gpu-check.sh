#!/usr/bin/env bash
# gpu-check.sh: one command to check the Vulkan backend on a machine with
# a GPU (written for NVIDIA; works on any Vulkan device). No network.
# Under 5 minutes. Prints everything; exits non-zero if a step failed.
#
#   scripts/gpu-check.sh                  # build (needs go, gcc, Vulkan headers) or use bin/
#   REALM_PREBUILT=1 scripts/gpu-check.sh # use bin/realm and bin/realm-backend-vulkan as they are
#   REALM_DONOR=/path/vocab.gguf          # tokenizer donor for the synthetic TinyLlama
#   REALM_PRESET=tiny                     # a small synthetic model instead (dry runs on lavapipe)
#   REALM_VULKAN_LIB_DIR=dir              # a directory holding libvulkan.so.1 when the
#                                         # machine has the driver but no Vulkan loader
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=${TMPDIR:-/tmp}/realm-gpu-check
mkdir -p "$WORK"
fail=0
step() { printf '\n=== %s\n' "$*"; }
run() { # run SECONDS CMD...: runs with a time limit, records failure
	local t=$1; shift
	echo "+ $*"
	timeout --kill-after=10 "$t" "$@"
	local rc=$?
	[ $rc -eq 0 ] || { echo "!! exit status $rc: $*"; fail=1; }
	return $rc
}

if [ -n "${REALM_VULKAN_LIB_DIR:-}" ]; then
	export LD_LIBRARY_PATH="$REALM_VULKAN_LIB_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi

step "machine"
date -u
uname -a
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
ls /usr/share/vulkan/icd.d /etc/vulkan/icd.d 2>/dev/null
if ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1' || [ -n "${REALM_VULKAN_LIB_DIR:-}" ]; then
	echo "Vulkan loader: found"
else
	echo "Vulkan loader: libvulkan.so.1 NOT found (install libvulkan1, or set REALM_VULKAN_LIB_DIR); the vulkan backend will veto itself"
fi
command -v vulkaninfo >/dev/null && timeout 30 vulkaninfo --summary 2>/dev/null | sed -n '/Devices:/,$p'

step "build"
if [ -z "${REALM_PREBUILT:-}" ] && command -v go >/dev/null; then
	go version
	# vulkan_headers: the real Vulkan plugin (without it, a stub).
	run 240 go build -o bin/realm ./cmd/realm
	run 240 go build -tags vulkan_headers -o bin/realm-backend-vulkan ./cmd/realm-backend-vulkan
	run 120 go build -o bin/realm-backend-reference ./cmd/realm-backend-reference
	if [ "$(go env GOARCH)" = amd64 ]; then run 120 go build -o bin/realm-backend-cpu-avx2 ./cmd/realm-backend-cpu-avx2; fi
else
	echo "using prebuilt binaries in bin/"
fi
for b in bin/realm bin/realm-backend-vulkan; do
	[ -x "$b" ] || { echo "!! $b missing: build it (make build; the Vulkan headers, libvulkan-dev, must be installed) or run without REALM_PREBUILT"; exit 2; }
done

step "realm backends"
run 60 bin/realm backends
bin/realm backends --json 2>/dev/null | grep -A8 '"devices"' || true

# The llama.cpp reference data: embedded in bin/realm (models, outputs);
# the vocab files are in testdata/reference.
REF=$ROOT/testdata/reference
step "realm conformance --backend vulkan (reference data: embedded in bin/realm)"
run 150 bin/realm conformance --backend vulkan --json "$WORK/conformance-vulkan.json"

PRESET=${REALM_PRESET:-tinyllama-1.1b}
SYNTH_FLAGS=()
[ "$PRESET" = tiny ] && SYNTH_FLAGS=(--vocab 32000)
step "synthetic $PRESET Q4_0"
DONOR=${REALM_DONOR:-}
if [ -z "$DONOR" ] && [ -n "$REF" ]; then DONOR=$REF/vocab/ggml-vocab-llama-spm.gguf; fi
MODEL=$WORK/$PRESET-q4_0.gguf
if [ -z "$DONOR" ] || [ ! -f "$DONOR" ]; then
	echo "!! no tokenizer donor (set REALM_DONOR to a llama GGUF with a 32000-token vocabulary)"
	fail=1
else
	[ -f "$MODEL" ] || run 120 bin/realm gguf synth --preset "$PRESET" "${SYNTH_FLAGS[@]}" --type q4_0 --tokenizer-from "$DONOR" -o "$MODEL"
	if [ -f "$MODEL" ]; then
		step "realm bench (vulkan)"
		run 120 bin/realm bench -m "$MODEL" --backend vulkan -p 128 -n 32 -r 2
		if [ -x bin/realm-backend-cpu-avx2 ]; then
			step "realm bench (cpu-avx2, for comparison)"
			run 90 bin/realm bench -m "$MODEL" --backend cpu-avx2 -p 32 -n 16 -r 1
		fi
	fi
fi

step "result"
if [ $fail -eq 0 ]; then echo "gpu-check: all steps passed"; else echo "gpu-check: some steps FAILED (see !! lines above)"; fi
exit $fail

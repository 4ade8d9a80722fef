#!/usr/bin/env bash
# gpu-bundle.sh DEST: packs what scripts/gpu-check.sh needs on a GPU
# machine that has no Go toolchain, no network and no Vulkan headers
# into DEST/gpu-check.tar.xz (x86-64 only):
#   realm/bin/...                 realm and the vulkan plugin (stripped; with
#                                 WITH_CPU=1 also the reference and cpu-avx2
#                                 plugins, ~8 MB more), the conformance ABI guest
#   realm/plugins.hcl, realm/scripts/gpu-check.sh
#   realm/testdata/reference/vocab/ggml-vocab-llama-spm.gguf
#                                 the tokenizer donor of the synthetic models
#                                 (the conformance data is embedded in bin/realm)
#   llama-vk/bench + lib*.so      (~7 MB packed) scripts/llamacpp/bench.c built against the
#                                 prebuilt libllama + ggml Vulkan backend of
#                                 the npm package @node-llama-cpp/linux-x64-vulkan
#                                 (the same release as scripts/llamacpp pins)
# On the GPU machine: tar -C /tmp/g -xJf gpu-check.tar.xz, then
#   REALM_PREBUILT=1 LLAMA_VK_DIR=/tmp/g/llama-vk /tmp/g/realm/scripts/gpu-check.sh
# Needs go, cc, the Vulkan headers (scripts/deps.sh), npm and xz. The
# default bundle packs to ~14 MB: the device tool carries the checkout
# (~48 MB) and the bundle together within 64 MiB.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 DEST" >&2; exit 2; }
DEST=$(mkdir -p "$1" && cd "$1" && pwd)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VOCAB=$ROOT/testdata/reference/vocab/ggml-vocab-llama-spm.gguf
[ -f "$VOCAB" ] || { echo "$0: no $VOCAB" >&2; exit 1; }
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
R=$STAGE/realm
mkdir -p "$R/bin/conformance" "$R/scripts" "$R/testdata/reference/vocab"

cd "$ROOT"
progs="realm:./cmd/realm realm-backend-vulkan:./cmd/realm-backend-vulkan"
if [ -n "${WITH_CPU:-}" ]; then
	progs="$progs realm-backend-reference:./cmd/realm-backend-reference realm-backend-cpu-avx2:./cmd/realm-backend-cpu-avx2"
fi
for p in $progs; do
	# vulkan_headers: the real Vulkan plugin (without the tag, a stub).
	CGO_ENABLED=1 GOOS=linux GOARCH=amd64 go build -tags vulkan_headers -trimpath -ldflags='-s -w' -o "$R/bin/${p%%:*}" "${p#*:}"
done
GOOS=wasip1 GOARCH=wasm go build -trimpath -o "$R/bin/conformance/abiguest.wasm" ./internal/conformance/abiguest
# The vulkan plugin must have been built with the Vulkan headers.
if ! strings "$R/bin/realm-backend-vulkan" | grep -c vkEnumeratePhysicalDevices >/dev/null; then
	echo "$0: the vulkan plugin was built without the Vulkan headers (install libvulkan-dev)" >&2
	exit 1
fi
cp plugins.hcl "$R/"
cp scripts/gpu-check.sh "$R/scripts/"
cp "$VOCAB" "$R/testdata/reference/vocab/"

# llama.cpp's Vulkan build: the prebuilt of the npm package, version
# pinned by scripts/llamacpp/package.json.
ver=$(sed -n 's/.*"node-llama-cpp": *"\([^"]*\)".*/\1/p' scripts/llamacpp/package.json)
NPM=$STAGE/npm
mkdir -p "$NPM"
(cd "$NPM" && echo '{"name":"x","version":"0.0.0","private":true}' >package.json &&
	npm install --ignore-scripts --no-audit --no-fund --silent "@node-llama-cpp/linux-x64-vulkan@$ver" >&2)
BINS=$NPM/node_modules/@node-llama-cpp/linux-x64-vulkan/bins/linux-x64-vulkan
L=$STAGE/llama-vk
mkdir -p "$L"
# The harness needs libllama, ggml, ggml-base, the Vulkan backend and one
# CPU backend for what is not offloaded (x64 baseline, or the two that
# recent Xeons pick).
for f in libllama.vulkan.v0.5.0.so libggml.vulkan.v0.5.0.so libggml-base.so libggml-vulkan.so \
	libggml-cpu-x64.so libggml-cpu-sapphirerapids.so libggml-cpu-icelake.so; do
	cp "$BINS/$f" "$L/"
done
cc -O2 -o "$L/bench" scripts/llamacpp/bench.c -L"$L" -l:libllama.vulkan.v0.5.0.so \
	-l:libggml.vulkan.v0.5.0.so -l:libggml-base.so -lm -Wl,-rpath,'$ORIGIN'

tar -C "$STAGE" -cf - realm llama-vk | xz -T0 -9 >"$DEST/gpu-check.tar.xz"
ls -l "$DEST/gpu-check.tar.xz"

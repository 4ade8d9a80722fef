#!/usr/bin/env bash
# Installs the Debian packages the tests need, only when missing.
# CI runs as root on Debian; elsewhere this prints what to install.
set -euo pipefail
want=(
  clang lld wasi-libc libclang-rt-14-dev-wasm32   # the C guest example (wasm32-wasi)
  qemu-user-static gcc-aarch64-linux-gnu    # cpu-neon tests under emulation
  libvulkan1 libvulkan-dev mesa-vulkan-drivers glslc pkg-config  # vulkan backend on lavapipe
)
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "deps: missing Debian packages: ${missing[*]} (install them as root)" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

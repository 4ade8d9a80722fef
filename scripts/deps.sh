#!/usr/bin/env bash
# deps.sh: the Debian packages the tests need, in three groups; the tests
# of a group whose packages are missing are skipped, not failed.
#
#   scripts/deps.sh          root on Debian (CI): installs what is missing.
#                            Anyone else: prints the apt-get command that
#                            installs it and which tests make test skips
#                            until then; exits 0 so make test goes on.
#   scripts/deps.sh --skips  prints the groups whose packages are missing
#                            (cguest neon vulkan), for the Makefile.
#
# REALM_DEPS_MISSING="pkg ..." treats those packages as missing (to try
# this script on a machine that has them); REALM_DEPS_INSTALL=0 never
# installs, even as root.
set -euo pipefail

groups=(cguest neon vulkan)
declare -A pkgs=(
	[cguest]="clang lld wasi-libc libclang-rt-14-dev-wasm32"
	[neon]="qemu-user-static gcc-aarch64-linux-gnu"
	[vulkan]="libvulkan1 libvulkan-dev mesa-vulkan-drivers glslc pkg-config"
)
declare -A skips=(
	[cguest]="the C guest example (core: TestCGuest, clang for wasm32-wasi)"
	[neon]="the cpu-neon (arm64) tests under qemu (make test-neon)"
	[vulkan]="the vulkan backend on lavapipe (its device tests and its conformance run; the plugin builds as a stub)"
)

forced=" ${REALM_DEPS_MISSING:-} "

# installed PKG: whether PKG is installed (dpkg), or, without dpkg, whether
# what the group needs answers (a command or a header).
installed() {
	local p=$1
	[[ $forced == *" $p "* ]] && return 1
	if command -v dpkg-query >/dev/null; then
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"
		return
	fi
	case $p in
	clang | lld | gcc-aarch64-linux-gnu | qemu-user-static | glslc | pkg-config)
		local c=$p
		case $p in
		lld) c=wasm-ld ;;
		gcc-aarch64-linux-gnu) c=aarch64-linux-gnu-gcc ;;
		qemu-user-static) c=qemu-aarch64-static ;;
		esac
		command -v "$c" >/dev/null
		;;
	libvulkan-dev) printf '#include <vulkan/vulkan.h>\n' | cc -E -x c - >/dev/null 2>&1 ;;
	*) return 0 ;; # no way to tell without dpkg: assume present
	esac
}

missing=()
declare -A gmissing=()
for g in "${groups[@]}"; do
	for p in ${pkgs[$g]}; do
		if ! installed "$p"; then
			missing+=("$p")
			gmissing[$g]+=" $p"
		fi
	done
done

if [ "${1:-}" = --skips ]; then
	out=()
	for g in "${groups[@]}"; do
		[ -n "${gmissing[$g]:-}" ] && out+=("$g")
	done
	echo "${out[*]}"
	exit 0
fi

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && [ "${REALM_DEPS_INSTALL:-1}" != 0 ]; then
	echo "deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	exit 0
fi

{
	echo "deps: missing Debian packages: ${missing[*]}"
	echo "deps: install them with:"
	echo "    sudo apt-get install -y --no-install-recommends ${missing[*]}"
	echo "deps: until then make test skips:"
	for g in "${groups[@]}"; do
		[ -n "${gmissing[$g]:-}" ] && echo "    - ${skips[$g]} (missing:${gmissing[$g]})"
	done
} >&2
exit 0

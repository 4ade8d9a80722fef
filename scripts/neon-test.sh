#!/usr/bin/env bash
# neon-test.sh builds the cpu-neon (arm64) tests and binaries on any host
# and runs them under QEMU user-mode emulation:
#   0. GOARCH=arm64 go vet of the package (asmdecl checks the assembly);
#   1. the cpuneon test binary (kernel tests, greedy generation, and the
#      shared conformance suite in-process) with QEMU's default CPU (has
#      the dot-product extension: the SDOT path must run) and with
#      -cpu cortex-a72 (no dot-product: the plain SMULL path must run),
#      with summary and conformance lines for each;
#   2. a probe that executes SDOT on cortex-a72 and must die with SIGILL,
#      showing the emulator really withholds the instruction;
#   3. GOARCH=arm64 builds of the realm CLI and the cpu-neon plugin, and
#      `realm backends` under QEMU on both CPUs, which must choose cpu-neon;
#   4. (unless REALM_NEON_E2E=0) `realm run` of the generate example under
#      QEMU: the arm64 host starts the arm64 cpu-neon plugin (through a
#      wrapper that runs it under QEMU too, as no binfmt handler is assumed)
#      and the greedy story must match llama.cpp's reference text.
# Installs qemu-user-static and the aarch64 cross toolchain when missing
# (as root on Debian, which is how CI runs). Exits non-zero on any failure.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
GO=${GO:-go}

need=()
command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static)
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
		echo "neon-test: missing ${need[*]}: install them (Debian: apt-get install -y ${need[*]})" >&2
		exit 1
	fi
	echo "neon-test: installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null ||
		{ apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; }
fi
QEMU=${QEMU:-qemu-aarch64-static}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

echo "neon-test: go vet (arm64: checks the assembly's frames and argument offsets)"
GOARCH=arm64 "$GO" vet ./internal/backend/cpu-neon/...
echo "neon-test: building arm64 test binary"
GOARCH=arm64 "$GO" test -c -o "$tmp/cpu-neon.test" ./internal/backend/cpu-neon

# run_tests CPU EXPECT_DOTPROD: runs the test binary from the package
# directory (refdata finds the reference data from there) and prints one
# summary line with the pass/fail counts, wall time and path counters.
run_tests() {
	local cpu=$1 expect=$2 args=() log="$tmp/test-$1.log" rc=0
	[ "$cpu" != max ] && args=(-cpu "$cpu")
	local t0=$(date +%s.%N)
	(cd internal/backend/cpu-neon && REALM_NEON_EXPECT_DOTPROD=$expect \
		"$QEMU" "${args[@]}" "$tmp/cpu-neon.test" -test.v -test.count=1 -test.timeout=5m) >"$log" 2>&1 || rc=$?
	local t1=$(date +%s.%N)
	local pass=$(grep -c -- '^--- PASS' "$log" || true)
	local failn=$(grep -c -- '^--- FAIL' "$log" || true)
	local skip=$(grep -c -- '^--- SKIP' "$log" || true)
	local paths=$(grep -m1 -o 'ASIMDDP=.*path counters: .*' "$log" || echo "path counters: missing")
	local status=PASS
	if [ $rc -ne 0 ] || [ "$failn" -ne 0 ]; then
		status=FAIL
		fail=1
		grep -E -- '^(--- FAIL|\s+\S+_test\.go:[0-9]+:|panic|FAIL)' "$log" | head -40 || true
	fi
	printf 'neon-test: qemu -cpu %-10s %s: %d passed, %d failed, %d skipped in %.1fs; %s\n' \
		"$cpu" "$status" "$pass" "$failn" "$skip" "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')" "$paths"
	local conf=$(grep -m1 -o 'conformance cpu-neon: .*' "$log" || echo "conformance: no summary line")
	printf 'neon-test: qemu -cpu %-10s %s\n' "$cpu" "$conf"
}
run_tests max 1
run_tests cortex-a72 0

# The SDOT probe must be killed by SIGILL on a CPU without dot-product.
rc=0
(cd internal/backend/cpu-neon && REALM_NEON_FORCE_SDOT=1 "$QEMU" -cpu cortex-a72 "$tmp/cpu-neon.test" \
	-test.run '^TestSDOTProbe$' -test.v) >"$tmp/probe.log" 2>&1 || rc=$?
if [ $rc -ne 0 ] && grep -q 'SIGILL' "$tmp/probe.log"; then
	echo "neon-test: qemu -cpu cortex-a72 SDOT probe: SIGILL as expected ($(grep -m1 -o 'instruction bytes: .*' "$tmp/probe.log"))"
else
	echo "neon-test: qemu -cpu cortex-a72 SDOT probe: FAIL (expected SIGILL, rc=$rc)"
	tail -5 "$tmp/probe.log"
	fail=1
fi

echo "neon-test: building arm64 realm CLI and plugins"
mkdir -p "$tmp/rt/bin"
GOARCH=arm64 "$GO" build -o "$tmp/realm-arm64" ./cmd/realm
GOARCH=arm64 "$GO" build -o "$tmp/rt/bin/realm-backend-cpu-neon" ./cmd/realm-backend-cpu-neon
GOARCH=arm64 "$GO" build -o "$tmp/rt/bin/realm-backend-reference" ./cmd/realm-backend-reference
echo "neon-test: arm64 builds OK: realm $(stat -c %s "$tmp/realm-arm64") bytes, realm-backend-cpu-neon $(stat -c %s "$tmp/rt/bin/realm-backend-cpu-neon") bytes"

# `realm backends` reads plugins.hcl; binaries resolve against its
# directory, so use a copy beside the arm64 plugin binaries.
cp plugins.hcl "$tmp/rt/plugins.hcl"
for cpu in max cortex-a72; do
	args=()
	[ "$cpu" != max ] && args=(-cpu "$cpu")
	rc=0
	(cd "$tmp/rt" && "$QEMU" "${args[@]}" "$tmp/realm-arm64" backends --no-probe --config "$tmp/rt/plugins.hcl") \
		>"$tmp/backends.log" 2>&1 || rc=$?
	chosen=$(grep -m1 '^chosen:' "$tmp/backends.log" || true)
	row=$(grep -m1 'cpu-neon' "$tmp/backends.log" | tr -s ' ' || true)
	if [ $rc -eq 0 ] && [[ "$chosen" == *"cpu-neon"* ]]; then
		echo "neon-test: qemu -cpu $cpu realm backends: ${chosen}; row:${row}"
	else
		echo "neon-test: qemu -cpu $cpu realm backends: FAIL (rc=$rc)"
		cat "$tmp/backends.log"
		fail=1
	fi
done

if [ "${REALM_NEON_E2E:-1}" != 0 ]; then
	mkdir -p "$tmp/rt/models" "$tmp/rt/bin/examples"
	cp models/stories260K.gguf "$tmp/rt/models/"
	GOOS=wasip1 GOARCH=wasm "$GO" build -o "$tmp/rt/bin/examples/generate.wasm" ./examples/generate
	mv "$tmp/rt/bin/realm-backend-cpu-neon" "$tmp/rt/bin/cpu-neon.arm64"
	printf '#!/bin/sh\nexec %s %s "$@"\n' "$(command -v "$QEMU")" "$tmp/rt/bin/cpu-neon.arm64" >"$tmp/rt/bin/realm-backend-cpu-neon"
	chmod +x "$tmp/rt/bin/realm-backend-cpu-neon"
	refdir=${REALM_REFERENCE_DIR:-$root/testdata/reference}
	want=$(sed -n 's/^gen_text: //p' "$refdir/outputs/stories260K.once-upon.txt" | head -1)
	rc=0
	t0=$(date +%s.%N)
	(cd "$tmp/rt" && "$QEMU" "$tmp/realm-arm64" run --config "$tmp/rt/plugins.hcl" --json \
		bin/examples/generate.wasm -- stories260k "Once upon a time" 40) >"$tmp/run.out" 2>"$tmp/run.err" || rc=$?
	t1=$(date +%s.%N)
	got=$(head -1 "$tmp/run.out")
	if [ $rc -eq 0 ] && [ -n "$got" ] && [ -n "$want" ] && [[ "$want" == "$got"* ]] && grep -q '"backend":"cpu-neon"' "$tmp/run.err"; then
		printf 'neon-test: qemu realm run (arm64 host + cpu-neon plugin) PASS in %ss: %s\n' \
			"$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')" "$got"
	else
		echo "neon-test: qemu realm run: FAIL (rc=$rc)"
		echo "got:  $got"
		echo "want: $want"
		tail -5 "$tmp/run.err"
		fail=1
	fi
fi

# 5. The conformance suite for cpu-neon through the real plugin boundary:
# the native host (bin/realm, compares against the native reference)
# starts the arm64 plugin under QEMU, once per emulated CPU.
if [ -x bin/realm ] && [ -f bin/conformance/abiguest.wasm ]; then
	GOARCH=arm64 "$GO" build -o "$tmp/neon-plugin.arm64" ./cmd/realm-backend-cpu-neon
	for cpu in max cortex-a72; do
		cpuargs=""
		[ "$cpu" != max ] && cpuargs="-cpu $cpu"
		printf '#!/bin/sh\nexec %s %s %s "$@"\n' "$(command -v "$QEMU")" "$cpuargs" "$tmp/neon-plugin.arm64" >"$tmp/neon-plugin-$cpu"
		chmod +x "$tmp/neon-plugin-$cpu"
		printf 'backend "cpu-neon" {\n  binary = "%s"\n  arch = "any"\n  priority = 50\n}\n' "$tmp/neon-plugin-$cpu" >"$tmp/neon-$cpu.hcl"
		rc=0
		bin/realm conformance --backend cpu-neon --config "$tmp/neon-$cpu.hcl" --ops '^(matmul|get_rows|rmsnorm|softmax|rope|attention|silu|add|mul|model|abi|fault/kill)' \
			--json "$tmp/neon-$cpu.json" >"$tmp/conf-$cpu.log" 2>&1 || rc=$?
		line=$(grep -m1 -E '^cpu-neon: [0-9]+ passed' "$tmp/conf-$cpu.log" || echo "cpu-neon: no summary line")
		if [ $rc -eq 0 ]; then
			echo "neon-test: qemu -cpu $cpu plugin conformance: $line"
		else
			echo "neon-test: qemu -cpu $cpu plugin conformance: FAIL: $line"
			grep -E 'FAIL' "$tmp/conf-$cpu.log" | head -20
			fail=1
		fi
	done
else
	echo "neon-test: plugin conformance: FAIL: bin/realm or bin/conformance/abiguest.wasm not built (run make build first)"
	fail=1
fi

if [ $fail -ne 0 ]; then
	echo "neon-test: FAIL"
	exit 1
fi
echo "neon-test: PASS"

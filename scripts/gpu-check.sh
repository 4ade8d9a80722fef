#!/usr/bin/env bash
# gpu-check.sh: one command to check the Vulkan backend on a machine with
# a GPU (written for NVIDIA; works on any Vulkan device) and to time it
# beside llama.cpp's Vulkan build. No network. Every step has a time
# limit and prints what it did; the script exits non-zero if a step
# failed. Steps:
#   1. machine facts (nvidia-smi, Vulkan ICD files, loader, vulkaninfo)
#   2. `realm backends`: must list the GPU and choose vulkan by rank
#   3. `realm conformance --backend vulkan` with the llama.cpp reference
#      data (its model cases check greedy ids against llama.cpp's); the
#      arch/ cases need go.mod and testdata/arch in the directory above
#      scripts/ (a checkout has them; copy them beside a bundle)
#   4. synthetic models (realm gguf synth, made here, in parallel with 3)
#      timed with `realm bench --backend vulkan` alternated with
#      llama.cpp's Vulkan build (LLAMA_VK_DIR), ppPP and tgTG per type
#
#   scripts/gpu-check.sh                  # build (needs go, gcc, Vulkan headers) or use bin/
#   REALM_PREBUILT=1 scripts/gpu-check.sh # use the binaries in bin/ as they are
#   REALM_REFERENCE=DIR                   # llama.cpp reference data (models/, outputs/, vocab/;
#                                         # default: embedded in bin/realm, vocab/ from testdata/reference)
#   REALM_DONOR=/path/vocab.gguf          # tokenizer donor for the synthetic models (32000 tokens)
#   REALM_PRESET=tiny                     # a small synthetic model instead (dry runs on lavapipe)
#   REALM_TYPES="q4_0 q8_0 f16 q4_k_m"    # weight types to time, in this order
#   REALM_BIG="q4_0"                      # also time a Llama-2-7B-shaped model of these types
#   PP=512 TG=128 REPS=3 ROUNDS=2         # bench sizes, repetitions, realm/llama.cpp alternations
#   REALM_BENCH_UNTIL=330                 # start no bench after this many seconds of the script
#                                         # (a second round only in the first half of that)
#   LLAMA_VK_DIR=DIR                      # llama.cpp Vulkan harness: DIR/bench (scripts/llamacpp/
#                                         # bench.c built against the libllama/libggml-vulkan of
#                                         # @node-llama-cpp/linux-x64-vulkan) beside its libraries
#   REALM_OUT=DIR                         # where the JSON results go (default: the work dir)
#   REALM_VULKAN_LIB_DIR=dir              # a directory holding libvulkan.so.1 when the
#                                         # machine has the driver but no Vulkan loader
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=${TMPDIR:-/tmp}/realm-gpu-check
RES=${REALM_OUT:-$WORK}
mkdir -p "$WORK" "$RES"
PP=${PP:-512}
TG=${TG:-128}
REPS=${REPS:-3}
ROUNDS=${ROUNDS:-2}
UNTIL=${REALM_BENCH_UNTIL:-330}
fail=0
T0=$(date +%s)
step() { printf '\n=== [%ss] %s\n' "$(($(date +%s) - T0))" "$*"; }
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
grep -m1 'model name' /proc/cpuinfo
nproc
free -g | head -2
if command -v nvidia-smi >/dev/null; then
	nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,power.limit --format=csv
	nvidia-smi | head -12
fi
echo "ICD files:"
ls -l /usr/share/vulkan/icd.d /etc/vulkan/icd.d /usr/local/share/vulkan/icd.d /usr/local/nvidia/share/vulkan/icd.d 2>/dev/null
# A driver that ships its ICD file outside the loader's search path
# (the NVIDIA container layout: /usr/local/nvidia) is named explicitly.
if [ -z "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ] &&
	! ls /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json /usr/local/share/vulkan/icd.d/*.json >/dev/null 2>&1; then
	for f in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/local/nvidia/icd.d/nvidia_icd.json; do
		[ -f "$f" ] && { export VK_DRIVER_FILES=$f VK_ICD_FILENAMES=$f; echo "using ICD $f"; break; }
	done
fi
echo "ldconfig (vulkan, cuda, nvidia):"
ldconfig -p 2>/dev/null | grep -i -e vulkan -e libcuda -e nvidia | head -20
if ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1' || [ -n "${REALM_VULKAN_LIB_DIR:-}" ]; then
	echo "Vulkan loader: found"
else
	echo "Vulkan loader: libvulkan.so.1 NOT found (install libvulkan1, or set REALM_VULKAN_LIB_DIR); the vulkan backend will veto itself"
fi
command -v vulkaninfo >/dev/null && timeout 30 vulkaninfo --summary 2>&1 | sed -n '/Devices:/,$p'

step "build"
if [ -z "${REALM_PREBUILT:-}" ] && command -v go >/dev/null; then
	go version
	# vulkan_headers: the real Vulkan plugin (without it, a stub).
	run 240 go build -o bin/realm ./cmd/realm
	run 240 go build -tags vulkan_headers -o bin/realm-backend-vulkan ./cmd/realm-backend-vulkan
	run 120 go build -o bin/realm-backend-reference ./cmd/realm-backend-reference
	if [ "$(go env GOARCH)" = amd64 ]; then run 120 go build -o bin/realm-backend-cpu-avx2 ./cmd/realm-backend-cpu-avx2; fi
	[ -f bin/conformance/abiguest.wasm ] || GOOS=wasip1 GOARCH=wasm run 240 go build -o bin/conformance/abiguest.wasm ./internal/conformance/abiguest
else
	echo "using prebuilt binaries in bin/"
fi
for b in bin/realm bin/realm-backend-vulkan; do
	[ -x "$b" ] || { echo "!! $b missing: build it (make build; the Vulkan headers, libvulkan-dev, must be installed) or run without REALM_PREBUILT"; exit 2; }
done

# The llama.cpp reference data: embedded in bin/realm (models, outputs)
# unless REALM_REFERENCE names a directory; the tokenizer donor comes
# from its vocab/ (testdata/reference in the repository).
REF=${REALM_REFERENCE:-}
VOCAB=$REF
if [ -z "$VOCAB" ]; then
	for d in "$ROOT/testdata/reference" "$ROOT/../shared/design/reference"; do
		[ -d "$d/vocab" ] && { VOCAB=$d; break; }
	done
fi

# The synthetic models are written in the background while the
# conformance suite runs (one process per type; synth is one thread).
PRESET=${REALM_PRESET:-tinyllama-1.1b}
TYPES=${REALM_TYPES:-q4_0 q8_0 f16 q4_k_m}
BIG=${REALM_BIG:-}
SYNTH_FLAGS=()
[ "$PRESET" = tiny ] && SYNTH_FLAGS=(--vocab 32000)
BIG_FLAGS=(--n-embd 4096 --n-ff 11008 --n-layer 32 --n-head 32 --n-head-kv 32 --context 4096)
[ "$PRESET" = tiny ] && BIG_FLAGS=(--vocab 32000 --n-embd 512 --n-ff 1536 --n-layer 4 --n-head 8 --n-head-kv 8)
DONOR=${REALM_DONOR:-}
if [ -z "$DONOR" ] && [ -n "$VOCAB" ]; then DONOR=$VOCAB/vocab/ggml-vocab-llama-spm.gguf; fi
declare -A SYNTH_PID
synth() { # synth NAME TYPE FLAGS...: writes $WORK/NAME-TYPE.gguf in the background
	local name=$1 typ=$2; shift 2
	local f=$WORK/$name-$typ.gguf
	[ -f "$f" ] && return 0
	timeout 300 bin/realm gguf synth "$@" --type "$typ" --tokenizer-from "$DONOR" -o "$f.part" >"$WORK/synth-$name-$typ.log" 2>&1 &&
		mv "$f.part" "$f" &
	SYNTH_PID[$name-$typ]=$!
}
if [ -z "$DONOR" ] || [ ! -f "$DONOR" ]; then
	echo "!! no tokenizer donor (set REALM_DONOR to a llama GGUF with a 32000-token vocabulary)"
	fail=1
	TYPES= BIG=
else
	for t in $TYPES; do synth "$PRESET" "$t" --preset "$PRESET" "${SYNTH_FLAGS[@]}"; done
	for t in $BIG; do synth "big" "$t" --preset "$PRESET" "${BIG_FLAGS[@]}"; done
fi

step "realm backends"
run 60 bin/realm backends
bin/realm backends --json >"$RES/backends.json" 2>/dev/null
grep -A12 '"devices"' "$RES/backends.json" || true
chosen=$(bin/realm backends 2>/dev/null | sed -n 's/^chosen: *\([^ ]*\).*/\1/p')
if [ "$chosen" = vulkan ]; then echo "vulkan chosen by rank: yes"; else echo "!! vulkan chosen by rank: no (chosen: ${chosen:-none})"; [ "$PRESET" = tiny ] || fail=1; fi

step "realm conformance --backend vulkan (reference data: ${REF:-embedded in bin/realm})"
run 240 bin/realm conformance --backend vulkan ${REF:+--reference "$REF"} --json "$RES/conformance-vulkan.json"

# bench_one LABEL FILE: realm (vulkan) then llama.cpp (Vulkan), twice
# each, alternated; every run's JSON is kept as $WORK/bench-*.json.
bench_one() {
	local label=$1 f=$2 reps=$3
	for round in $(seq 1 "$ROUNDS"); do
		local el=$(($(date +%s) - T0))
		if [ "$el" -gt "$UNTIL" ] || { [ "$round" -gt 1 ] && [ "$el" -gt $((UNTIL / 2)) ]; }; then
			echo "-- $label round $round: skipped (${el}s elapsed, REALM_BENCH_UNTIL=$UNTIL)"
			[ "$round" -gt 1 ] || skipped="$skipped $label"
			continue
		fi
		echo "-- $label round $round: realm vulkan"
		timeout --kill-after=5 "${BENCH_TIMEOUT:-120}" bin/realm bench -m "$f" --backend vulkan -p "$PP" -n "$TG" -r "$reps" --json \
			>"$WORK/bench-realm-$label-$round.json" 2>"$WORK/bench-realm-$label-$round.err"
		local rc=$?
		[ $rc -eq 0 ] || { echo "!! realm bench $label: exit status $rc"; tail -5 "$WORK/bench-realm-$label-$round.err"; fail=1; }
		if [ -n "${LLAMA_VK_DIR:-}" ]; then
			echo "-- $label round $round: llama.cpp vulkan"
			(cd "$LLAMA_VK_DIR" && timeout --kill-after=5 "${BENCH_TIMEOUT:-120}" ./bench "$f" "$PP" "$TG" 1 "$reps") \
				>"$WORK/bench-llama-$label-$round.json" 2>"$WORK/bench-llama-$label-$round.err"
			rc=$?
			grep -m3 -e '^ggml_vulkan: [0-9]' -e 'offloaded' "$WORK/bench-llama-$label-$round.err" | sed 's/^/   /'
			[ $rc -eq 0 ] || { echo "!! llama.cpp bench $label: exit status $rc"; tail -5 "$WORK/bench-llama-$label-$round.err"; fail=1; }
		fi
	done
}

wait_synth() { # wait_synth NAME-TYPE: waits for its synth, reports failure
	local k=$1 pid=${SYNTH_PID[$1]:-}
	[ -n "$pid" ] && { wait "$pid" || true; }
	cat "$WORK/synth-$k.log" 2>/dev/null
	[ -f "$WORK/$k.gguf" ] || { echo "!! synth $k failed"; fail=1; return 1; }
}

skipped=
for t in $TYPES; do
	step "bench $PRESET $t (pp$PP, tg$TG, $REPS reps after a warm-up)"
	wait_synth "$PRESET-$t" && bench_one "$PRESET-$t" "$WORK/$PRESET-$t.gguf" "$REPS"
done
for t in $BIG; do
	step "bench 7B-shape $t (pp$PP, tg$TG, 2 reps after a warm-up)"
	wait_synth "big-$t" && bench_one "big-$t" "$WORK/big-$t.gguf" 2
done

step "table (tokens/s, best round; llama.cpp = ggml Vulkan via node-llama-cpp 3.22.1's prebuilt)"
if command -v python3 >/dev/null; then
	python3 - "$WORK" "$RES/bench.json" <<'EOF'
import glob, json, os, re, sys
work, out = sys.argv[1], sys.argv[2]
rows, allruns = {}, []
for f in sorted(glob.glob(os.path.join(work, "bench-*-*.json"))):
    m = re.match(r"bench-(realm|llama)-(.+)-(\d)\.json$", os.path.basename(f))
    if not m:
        continue
    try:
        data = json.load(open(f))
    except Exception as e:
        print(f"(unreadable {f}: {e})")
        continue
    for r in data:
        test = f"pp{r['n_prompt']}" if r.get("n_prompt") else f"tg{r['n_gen']}"
        allruns.append({"tool": m[1], "model": m[2], "round": int(m[3]), "test": test,
                        "avg_ts": r["avg_ts"], "samples_ts": r.get("samples_ts")})
        k = (m[2], test)
        rows.setdefault(k, {})
        rows[k][m[1]] = max(rows[k].get(m[1], 0), r["avg_ts"])
json.dump(allruns, open(out, "w"), indent=1)
print(f"{'model':28} {'test':7} {'realm vk':>10} {'llama vk':>10} {'ratio':>7}")
for (model, test), v in sorted(rows.items()):
    a, b = v.get("realm"), v.get("llama")
    ratio = f"{a / b:.3f}" if a and b else "-"
    print(f"{model:28} {test:7} {a or 0:10.1f} {b or 0:10.1f} {ratio:>7}")
EOF
else
	cat "$WORK"/bench-*.json
fi

step "result"
[ -z "$skipped" ] || echo "benches skipped for time:$skipped"
kill $(jobs -p) 2>/dev/null
wait
if [ $fail -eq 0 ]; then echo "gpu-check: all steps passed"; else echo "gpu-check: some steps FAILED (see !! lines above)"; fi
exit $fail

#!/usr/bin/env bash
# compare-llamacpp.sh [MODEL.gguf...] [THREADS]
#
# Measures prompt processing (ppN) and generation (tgN) tokens/s of Realm
# (`bin/realm bench`, through the backend plugin) and of llama.cpp (the CPU
# prebuilt of the npm package node-llama-cpp) on the same models, thread
# counts and depths, interleaved in one run, and prints one table:
# model | threads | test | realm t/s | llama.cpp t/s | realm/llama.cpp,
# then a table of the load figures (time to the first token: process
# start → model load → one decode; RSS of the plugin / of llama.cpp's
# process after the tests, and the memory Realm's KV pool held then). llama.cpp is driven by scripts/llamacpp/bench.c
# (compiled here with cc against the prebuilt libllama: llama_decode
# called directly, like llama-bench); LLAMA_HARNESS=node uses
# scripts/llamacpp/run.mjs bench instead (no depth, no load figures), whose
# per-decode overhead in node-llama-cpp's JavaScript layer costs llama.cpp
# 25-30% of tg speed.
#
# Models: the files given, and/or synthetic ones written by
# `realm gguf synth` for every PRESETS × TYPES (e.g. PRESETS="tinyllama-1.1b-8k
# llama-3.1-8b" TYPES="q4_0 q4_k_m q8_0"), into WORK (/tmp/realm-compare),
# reused when already there and deleted at the end unless KEEP=1.
#
# Environment: THREADS ("2"; a list such as "1 2" runs each), DEPTHS ("0";
# a list such as "0 2048 4096": tokens already in the KV cache, llama-bench's
# -d; needs a model whose training context holds DEPTH + PP), PP (128) and
# TG (32) tokens, REPS (3) repetitions per test and tool, ROUNDS (2)
# alternations realm → llama.cpp, VIA_WASM=1 (realm also runs the tests from
# the bench guest through the ABI: rows "(wasm)", and a wasm/direct column),
# HOG=N (N competing busy processes, `yes > /dev/null` pinned nowhere,
# run for the whole measurement: the busy-machine figures),
# COLD=1 (evict each model file from the page cache before every run of
# either tool, for cold-cache load times; dd iflag=nocache, per file),
# BACKEND (cpu-avx2 on amd64; "" lets the configuration choose), FA (auto:
# llama.cpp's flash attention setting, node harness only; bench.c keeps
# llama.cpp's default), LLAMA_CPU_VARIANT (empty: the ggml CPU variant ggml
# picks for this CPU, e.g. sapphirerapids with AMX on a recent Xeon; a name
# such as zen4, icelake or haswell runs a copy of the harness holding only
# libggml-cpu-NAME.so, e.g. to measure llama.cpp without AMX). The machine is
# shared and noisy: compare the ratios of one run, not absolute figures
# across runs.
#
# Examples:
#   scripts/compare-llamacpp.sh /tmp/tl-q4_0.gguf 2
#   PRESETS=tinyllama-1.1b-8k TYPES="q4_0 q4_k_m q8_0" DEPTHS="0 2048 4096" PP=512 \
#     THREADS="1 2" scripts/compare-llamacpp.sh
#   PRESETS=llama-3.1-8b TYPES=q4_k_m COLD=1 ROUNDS=1 scripts/compare-llamacpp.sh
set -euo pipefail

usage() { echo "usage: $0 [MODEL.gguf...] [THREADS]  (or PRESETS=... TYPES=...; see the head of the script)" >&2; exit 2; }
MODELS=()
for a in "$@"; do
	if [[ $a =~ ^[0-9]+$ ]]; then THREADS=$a; else MODELS+=("$a"); fi
done
THREADS=${THREADS:-2}
DEPTHS=${DEPTHS:-0}
PP=${PP:-128}
TG=${TG:-32}
REPS=${REPS:-3}
ROUNDS=${ROUNDS:-2}
FA=${FA:-auto}
PRESETS=${PRESETS:-}
TYPES=${TYPES:-q4_0 q4_k_m q8_0}
WORK=${WORK:-/tmp/realm-compare}
if [[ -z ${BACKEND+x} ]]; then
	case $(uname -m) in x86_64 | amd64) BACKEND=cpu-avx2 ;; *) BACKEND= ;; esac
fi
HOG=${HOG:-0}
for v in PP TG REPS ROUNDS HOG; do
	[[ ${!v} =~ ^[0-9]+$ ]] || { echo "$0: $v must be a number, got '${!v}'" >&2; exit 2; }
done
for v in THREADS DEPTHS; do
	[[ ${!v} =~ ^[0-9\ ]+$ && -n ${!v// /} ]] || { echo "$0: $v must be numbers, got '${!v}'" >&2; exit 2; }
done
[[ ${#MODELS[@]} -gt 0 || -n $PRESETS ]] || usage
for m in ${MODELS[@]+"${MODELS[@]}"}; do
	[[ -f $m ]] || { echo "$0: no such model file: $m" >&2; exit 1; }
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HARNESS=$ROOT/scripts/llamacpp
ABS=()
for m in ${MODELS[@]+"${MODELS[@]}"}; do ABS+=("$(cd "$(dirname "$m")" && pwd)/$(basename "$m")"); done
MODELS=(${ABS[@]+"${ABS[@]}"})
cd "$ROOT" # realm finds ./plugins.hcl here

command -v node >/dev/null || { echo "$0: node (≥ 20) is required" >&2; exit 1; }
if [[ ! -f $HARNESS/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/llama-addon.node ]]; then
	echo "# installing node-llama-cpp (npm ci in scripts/llamacpp)" >&2
	(cd "$HARNESS" && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm ci >&2)
fi
if [[ ! -x bin/realm || ( -n $BACKEND && ! -x bin/realm-backend-$BACKEND ) || ( -n ${VIA_WASM:-} && ! -f bin/examples/bench.wasm ) ]]; then
	echo "# building bin/ (make build)" >&2
	make build >&2
fi

OUT=$(mktemp -d)
SYNTHESIZED=()
HOGS=()
cleanup() {
	for h in ${HOGS[@]+"${HOGS[@]}"}; do kill "$h" 2>/dev/null || true; done
	rm -rf "$OUT"
	if [[ -z ${KEEP:-} ]]; then
		for f in ${SYNTHESIZED[@]+"${SYNTHESIZED[@]}"}; do rm -f "$f"; done
	fi
}
trap cleanup EXIT

# Synthetic models: PRESETS × TYPES (the tokenizer from the llama.cpp
# vocabulary files in testdata: Llama 3's for llama-3* presets).
for preset in $PRESETS; do
	donor=$ROOT/testdata/reference/vocab/ggml-vocab-llama-spm.gguf
	[[ $preset == llama-3* ]] && donor=$ROOT/testdata/reference/vocab/ggml-vocab-llama-bpe.gguf
	mkdir -p "$WORK"
	for t in $TYPES; do
		f=$WORK/$preset-$t.gguf
		if [[ ! -f $f ]]; then
			echo "# writing $f (realm gguf synth)" >&2
			bin/realm gguf synth --preset "$preset" --type "$t" --tokenizer-from "$donor" -o "$f.part" >&2
			mv "$f.part" "$f"
			SYNTHESIZED+=("$f")
		fi
		MODELS+=("$f")
	done
done

VARIANT=${LLAMA_CPU_VARIANT:-}
if [[ -n $VARIANT ]]; then
	# ggml loads the best-scoring libggml-cpu-*.so beside the addon: run a
	# copy of the harness whose prebuilt folder holds only the chosen one.
	cp -r "$HARNESS/run.mjs" "$HARNESS/package.json" "$HARNESS/node_modules" "$OUT/"
	BINS=$OUT/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64
	[[ -f $BINS/libggml-cpu-$VARIANT.so ]] || { echo "$0: no CPU variant '$VARIANT' in $(ls "$BINS" | grep -o 'cpu-[a-z0-9]*' | tr '\n' ' ')" >&2; exit 1; }
	find "$BINS" -name 'libggml-cpu-*.so' ! -name "libggml-cpu-$VARIANT.so" -delete
	HARNESS=$OUT
fi

LLAMA_DIR=$ROOT
case ${LLAMA_HARNESS:-c} in
c)
	BINS=$HARNESS/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64
	command -v cc >/dev/null || { echo "$0: a C compiler (cc) is required for scripts/llamacpp/bench.c" >&2; exit 1; }
	cc -O2 -o "$OUT/bench" "$ROOT/scripts/llamacpp/bench.c" -L"$BINS" -l:libllama.v0.5.0.so -l:libggml.v0.5.0.so \
		-l:libggml-base.so -lm -Wl,-rpath,"$BINS"
	# ggml finds its CPU variant libraries in the working directory.
	LLAMA_DIR=$BINS
	;;
node) [[ $DEPTHS == 0 ]] || { echo "$0: the node harness has no depth (DEPTHS)" >&2; exit 2; } ;;
*) echo "$0: LLAMA_HARNESS must be c or node" >&2; exit 2 ;;
esac

# realm_cmd/llama_cmd MODEL THREADS DEPTH set the array CMD.
realm_cmd() {
	CMD=(bin/realm bench -m "$1" -p "$PP" -n "$TG" -t "$2" -d "$3" -r "$REPS" --json)
	[[ -n $BACKEND ]] && CMD+=(--backend "$BACKEND")
	[[ -n ${VIA_WASM:-} ]] && CMD+=(--via-wasm)
	return 0
}
llama_cmd() {
	case ${LLAMA_HARNESS:-c} in
	c) CMD=("$OUT/bench" "$1" "$PP" "$TG" "$2" "$REPS" "$3") ;;
	node) CMD=(node "$HARNESS/run.mjs" bench -m "$1" -p "$PP" -n "$TG" -t "$2" -r "$REPS" --fa "$FA") ;;
	esac
}
evict() { # drop MODEL's pages from the page cache (COLD=1)
	[[ -n ${COLD:-} ]] && dd if="$1" iflag=nocache count=0 status=none
	return 0
}

echo "# machine:   $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|avx512f|avx512_vnni|avx_vnni|amx_tile|amx_int8)$' | tr '\n' ' ')"
realm_cmd MODEL T D
echo "# realm:     ${CMD[*]}"
llama_cmd MODEL T D
echo "# llama.cpp: ${CMD[*]}"
echo "# models:    $(for m in "${MODELS[@]}"; do printf '%s (%s) ' "$(basename "$m")" "$(du -h "$m" | cut -f1)"; done)"
echo "# threads $THREADS, depths $DEPTHS, pp$PP tg$TG, $REPS reps, $ROUNDS rounds${COLD:+, cold page cache}"
echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for ((h = 0; h < HOG; h++)); do
	yes >/dev/null &
	HOGS+=($!)
done
[[ $HOG -gt 0 ]] && echo "# hog: $HOG busy process(es) (yes > /dev/null) run during every test"
if [[ $HOG -eq 0 ]] && awk -v n="$(nproc)" '{exit !($1 > n + 0.5)}' /proc/loadavg; then
	echo "# WARNING: load average above $(nproc) CPUs: llama.cpp's spinning thread barriers slow down badly when" \
		"its threads are descheduled (tg with THREADS > 1 most of all); the ratios below are not representative"
fi
i=0
for m in "${MODELS[@]}"; do
	for t in $THREADS; do
		for d in $DEPTHS; do
			i=$((i + 1))
			printf '%s\t%s\t%s\t%s\n' "$i" "$m" "$t" "$d" >>"$OUT/index"
			for ((r = 1; r <= ROUNDS; r++)); do
				evict "$m"
				realm_cmd "$m" "$t" "$d"
				"${CMD[@]}" >"$OUT/realm.$i.$r.json"
				echo "# $(basename "$m") t=$t d=$d round $r: realm done, load $(cut -d' ' -f1 /proc/loadavg)" >&2
				evict "$m"
				llama_cmd "$m" "$t" "$d"
				(cd "$LLAMA_DIR" && "${CMD[@]}" 2>"$OUT/llama.$i.$r.err") >"$OUT/llama.$i.$r.json" ||
					{ cat "$OUT/llama.$i.$r.err" >&2; exit 1; }
				echo "# $(basename "$m") t=$t d=$d round $r: llama.cpp done, load $(cut -d' ' -f1 /proc/loadavg)" >&2
			done
		done
	done
done
echo "# load average after:  $(cut -d' ' -f1-3 /proc/loadavg)"

node - "$OUT" "$ROUNDS" <<'EOF'
const fs = require("fs");
const [dir, rounds] = [process.argv[2], Number(process.argv[3])];
const load = (f) => JSON.parse(fs.readFileSync(`${dir}/${f}`, "utf8"));
const name = (t) => (t.n_gen > 0 ? `tg${t.n_gen}` : `pp${t.n_prompt}`) + (t.n_depth > 0 ? ` @ d${t.n_depth}` : "");
const mean = (v) => v.reduce((x, y) => x + y, 0) / v.length;
const sd = (v) => { const m = mean(v); return v.length < 2 ? 0 : Math.sqrt(v.reduce((x, y) => x + (y - m) ** 2, 0) / (v.length - 1)); };
const fmt = (m, s) => `${m.toFixed(2)} ± ${s.toFixed(2)}`;
const print = (table) => {
  const w = table[0].map((_, i) => Math.max(...table.map((row) => row[i].length)));
  for (const row of table) console.log("| " + row.map((c, i) => c.padEnd(w[i])).join(" | ") + " |");
};
const index = fs.readFileSync(`${dir}/index`, "utf8").trim().split("\n").map((l) => l.split("\t"));
const speed = [["model", "threads", "test", "round", "realm t/s", "llama.cpp t/s", "realm/llama.cpp", "per CPU-s realm / llama.cpp"]];
const cpu = (a, b) => (a.cpu_ts && b.tokens_per_cpu_s ? `${a.cpu_ts.toFixed(1)} / ${b.tokens_per_cpu_s.toFixed(1)} = ${(a.cpu_ts / b.tokens_per_cpu_s).toFixed(2)}` : "-");
const loads = [["model", "threads", "depth", "round", "realm ttft ms", "llama.cpp ttft ms", "ratio", "CPU ms realm / llama.cpp", "plugin RSS MiB", "realm KV pool MiB", "llama.cpp RSS MiB", "file MiB"]];
let info = "";
for (const [i, , threads] of index) {
  const all = {};
  let typ = "";
  for (let r = 1; r <= rounds; r++) {
    const realm = load(`realm.${i}.${r}.json`);
    const llama = load(`llama.${i}.${r}.json`);
    typ = realm[0]?.model_type ?? "";
    if (!info && llama[0]) {
      info = `# realm backend ${realm[0]?.backends}; llama.cpp: node-llama-cpp's prebuilt libllama (${llama[0].llama_cpp_release ?? "bench.c"})`;
    }
    const direct = {};
    for (const a of realm) if (!a.via_wasm) direct[name(a)] = a;
    for (const a of realm) {
      const b = llama.find((x) => name(x) === name(a));
      if (!b) continue;
      const key = name(a) + (a.via_wasm ? " (wasm)" : "");
      const row = [typ, threads, key, String(r), fmt(a.avg_ts, a.stddev_ts), fmt(b.avg_ts, b.stddev_ts), (a.avg_ts / b.avg_ts).toFixed(2), cpu(a, b)];
      if (a.via_wasm && direct[name(a)]) row[6] += ` (wasm/direct ${(a.avg_ts / direct[name(a)].avg_ts).toFixed(3)})`;
      speed.push(row);
      all[key] ??= { realm: [], llama: [] };
      all[key].realm.push(...a.samples_ts);
      all[key].llama.push(...b.samples_ts);
    }
    const a = realm.find((x) => !x.via_wasm), b = llama[0];
    if (a && b && b.ttft_ms !== undefined) {
      // After the tests: the last direct test's figures (the plugin
      // gives prompt buffers back a second after the last prompt).
      const top = realm.filter((x) => !x.via_wasm).at(-1);
      const rss = top.plugin_rss_bytes ?? 0, kv = top.kv_bytes ?? 0;
      const c = a.ttft_cpu_ms && b.ttft_cpu_ms ? `${a.ttft_cpu_ms.toFixed(0)} / ${b.ttft_cpu_ms.toFixed(0)} = ${(a.ttft_cpu_ms / b.ttft_cpu_ms).toFixed(2)}` : "-";
      loads.push([typ, threads, String(a.n_depth ?? 0), String(r), a.ttft_ms.toFixed(0), b.ttft_ms.toFixed(0), (a.ttft_ms / b.ttft_ms).toFixed(2), c,
        (rss / 2 ** 20).toFixed(0), (kv / 2 ** 20).toFixed(0), (Math.max(...llama.map((x) => x.rss_bytes ?? 0)) / 2 ** 20).toFixed(0), (a.model_size / 2 ** 20).toFixed(0)]);
    }
  }
  if (rounds > 1) {
    for (const [t, s] of Object.entries(all)) {
      speed.push([typ, threads, t, "all", fmt(mean(s.realm), sd(s.realm)), fmt(mean(s.llama), sd(s.llama)), (mean(s.realm) / mean(s.llama)).toFixed(2), ""]);
    }
  }
}
console.log(info);
print(speed);
if (loads.length > 1) {
  console.log("\n# load: time to the first token (start → model load → one decode) and RSS after the tests");
  print(loads);
}
EOF

#!/usr/bin/env bash
# compare-llamacpp.sh MODEL [THREADS]
#
# Measures prompt processing (ppN) and generation (tgN) tokens/s of Realm
# (`bin/realm bench`, through the backend plugin) and of llama.cpp (the CPU
# prebuilt of the npm package node-llama-cpp) on the same model and thread
# count, interleaved in one run, and prints test | realm t/s | llama.cpp
# t/s | realm/llama.cpp. llama.cpp is driven by scripts/llamacpp/bench.c
# (compiled here with cc against the prebuilt libllama: llama_decode
# called directly, like llama-bench); LLAMA_HARNESS=node uses
# scripts/llamacpp/run.mjs bench instead, whose per-decode overhead in
# node-llama-cpp's JavaScript layer costs llama.cpp 25-30% of tg speed.
#
# Environment: PP (128) and TG (32) tokens, REPS (3) repetitions per test
# and tool, ROUNDS (2) alternations realm → llama.cpp, BACKEND (cpu-avx2 on
# amd64; "" lets the configuration choose), FA (auto: llama.cpp's flash
# attention setting, node harness only; bench.c keeps llama.cpp's default), LLAMA_CPU_VARIANT (empty: the ggml CPU variant ggml
# picks for this CPU, e.g. sapphirerapids with AMX on a recent Xeon; a name
# such as zen4, icelake or haswell runs a copy of the harness holding only
# libggml-cpu-NAME.so, e.g. to measure llama.cpp without AMX). The machine is
# shared and noisy: compare the ratios of one run, not absolute figures
# across runs.
set -euo pipefail

usage() { echo "usage: $0 MODEL.gguf [THREADS]" >&2; exit 2; }
[[ $# -ge 1 && $# -le 2 ]] || usage
MODEL=$1
THREADS=${2:-2}
PP=${PP:-128}
TG=${TG:-32}
REPS=${REPS:-3}
ROUNDS=${ROUNDS:-2}
FA=${FA:-auto}
if [[ -z ${BACKEND+x} ]]; then
	case $(uname -m) in x86_64 | amd64) BACKEND=cpu-avx2 ;; *) BACKEND= ;; esac
fi
for v in THREADS PP TG REPS ROUNDS; do
	[[ ${!v} =~ ^[0-9]+$ ]] || { echo "$0: $v must be a number, got '${!v}'" >&2; exit 2; }
done
[[ -f $MODEL ]] || { echo "$0: no such model file: $MODEL" >&2; exit 1; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HARNESS=$ROOT/scripts/llamacpp
MODEL=$(cd "$(dirname "$MODEL")" && pwd)/$(basename "$MODEL")
cd "$ROOT" # realm finds ./plugins.hcl here

command -v node >/dev/null || { echo "$0: node (≥ 20) is required" >&2; exit 1; }
if [[ ! -f $HARNESS/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/llama-addon.node ]]; then
	echo "# installing node-llama-cpp (npm ci in scripts/llamacpp)" >&2
	(cd "$HARNESS" && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm ci >&2)
fi
if [[ ! -x bin/realm || ( -n $BACKEND && ! -x bin/realm-backend-$BACKEND ) ]]; then
	echo "# building bin/ (make build)" >&2
	make build >&2
fi

OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
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

REALM_CMD=(bin/realm bench -m "$MODEL" -p "$PP" -n "$TG" -t "$THREADS" -r "$REPS" --json)
[[ -n $BACKEND ]] && REALM_CMD+=(--backend "$BACKEND")
LLAMA_DIR=$ROOT
case ${LLAMA_HARNESS:-c} in
c)
	BINS=$HARNESS/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64
	command -v cc >/dev/null || { echo "$0: a C compiler (cc) is required for scripts/llamacpp/bench.c" >&2; exit 1; }
	cc -O2 -o "$OUT/bench" "$ROOT/scripts/llamacpp/bench.c" -L"$BINS" -l:libllama.v0.5.0.so -l:libggml.v0.5.0.so \
		-l:libggml-base.so -lm -Wl,-rpath,"$BINS"
	# ggml finds its CPU variant libraries in the working directory.
	LLAMA_DIR=$BINS
	LLAMA_CMD=("$OUT/bench" "$MODEL" "$PP" "$TG" "$THREADS" "$REPS")
	;;
node) LLAMA_CMD=(node "$HARNESS/run.mjs" bench -m "$MODEL" -p "$PP" -n "$TG" -t "$THREADS" -r "$REPS" --fa "$FA") ;;
*) echo "$0: LLAMA_HARNESS must be c or node" >&2; exit 2 ;;
esac

echo "# model:     $MODEL ($(du -h "$MODEL" | cut -f1))"
echo "# machine:   $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "# realm:     ${REALM_CMD[*]}"
echo "# llama.cpp: ${LLAMA_CMD[*]}"
echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
if awk -v n="$(nproc)" '{exit !($1 > n + 0.5)}' /proc/loadavg; then
	echo "# WARNING: load average above $(nproc) CPUs: llama.cpp's spinning thread barriers slow down badly when" \
		"its threads are descheduled (tg with THREADS > 1 most of all); the ratios below are not representative"
fi
for ((r = 1; r <= ROUNDS; r++)); do
	"${REALM_CMD[@]}" >"$OUT/realm.$r.json"
	echo "# round $r: realm done, load $(cut -d' ' -f1 /proc/loadavg)" >&2
	(cd "$LLAMA_DIR" && "${LLAMA_CMD[@]}" 2>"$OUT/llama.$r.err") >"$OUT/llama.$r.json" ||
		{ cat "$OUT/llama.$r.err" >&2; exit 1; }
	echo "# round $r: llama.cpp done, load $(cut -d' ' -f1 /proc/loadavg)" >&2
done
echo "# load average after:  $(cut -d' ' -f1-3 /proc/loadavg)"

node - "$OUT" "$ROUNDS" <<'EOF'
const fs = require("fs");
const [dir, rounds] = [process.argv[2], Number(process.argv[3])];
const load = (f) => JSON.parse(fs.readFileSync(`${dir}/${f}`, "utf8"));
const name = (t) => (t.n_gen > 0 ? `tg${t.n_gen}` : `pp${t.n_prompt}`);
const rows = [];
const all = {};
let info = "";
for (let r = 1; r <= rounds; r++) {
  const realm = load(`realm.${r}.json`);
  const llama = load(`llama.${r}.json`);
  if (r === 1 && llama[0]) {
    const l = llama[0];
    info = (l.llama_cpp_release
      ? `# llama.cpp ${l.llama_cpp_release} (source ${String(l.source_commit).slice(0, 7)}, build_commit ${l.build_commit}, build_number ${l.build_number}), ${l.backends}, flash_attn ${l.flash_attn}\n`
      : `# llama.cpp: node-llama-cpp's prebuilt libllama through scripts/llamacpp/bench.c\n`) +
      `# realm backend ${realm[0]?.backends}, ${realm[0]?.model_type}, threads realm ${realm[0]?.n_threads} / llama.cpp ${l.n_threads}`;
  }
  for (const a of realm) {
    const b = llama.find((x) => name(x) === name(a));
    if (!b) continue;
    rows.push([`${name(a)}`, String(r), a.avg_ts, a.stddev_ts, b.avg_ts, b.stddev_ts]);
    (all[name(a)] ??= { realm: [], llama: [] });
    all[name(a)].realm.push(...a.samples_ts);
    all[name(a)].llama.push(...b.samples_ts);
  }
}
const mean = (v) => v.reduce((x, y) => x + y, 0) / v.length;
const sd = (v) => { const m = mean(v); return v.length < 2 ? 0 : Math.sqrt(v.reduce((x, y) => x + (y - m) ** 2, 0) / (v.length - 1)); };
for (const [t, s] of Object.entries(all)) {
  if (rounds > 1) rows.push([t, "all", mean(s.realm), sd(s.realm), mean(s.llama), sd(s.llama)]);
}
console.log(info);
const fmt = (m, s) => `${m.toFixed(2)} ± ${s.toFixed(2)}`;
const table = [["test", "round", "realm t/s", "llama.cpp t/s", "ratio"]];
for (const [t, r, am, as, bm, bs] of rows) table.push([t, r, fmt(am, as), fmt(bm, bs), (am / bm).toFixed(2)]);
const w = table[0].map((_, i) => Math.max(...table.map((row) => row[i].length)));
for (const row of table) console.log("| " + row.map((c, i) => c.padEnd(w[i])).join(" | ") + " |");
EOF

#!/usr/bin/env bash
# Load test of `realm serve` against llama.cpp's llama-server (make loadtest):
# the synthetic TinyLlama-1.1B Q4_0 file, 1, 4 and 8 concurrent streaming
# clients (CLIENTS), TOKENS generated tokens per request, greedy. Realm runs
# with max_concurrent = clients, llama-server with -np clients; rounds
# alternate between them so that both see the same machine load. Prints the
# aggregate generated tokens/s and p50/p99 time to first token of each, with
# the ratios, the CPU model and the load average.
#
# Knobs (environment):
#   WORK          scratch directory, never in git (default /tmp/realm-loadtest)
#   CLIENTS       client counts (default "1 4 8")
#   ROUNDS        rounds of every configuration (default 2; the table shows medians)
#   REQUESTS      requests per client per round (default 2)
#   TOKENS        max_tokens per request (default 64)
#   THREADS       threads of both servers (default: nproc)
#   BACKEND       Realm backend plugin (default cpu-avx2 on amd64, cpu-neon on arm64)
#   REALM_EXTRA   more Realm builds to measure: "label=DIR ..." where DIR holds
#                 realm, realm-backend-$BACKEND and chat.wasm (e.g. a build of main)
#   LLAMA_SERVER  a llama-server binary; without it one is built (CPU only)
#                 under $WORK from LLAMA_SRC, default the llama.cpp source
#                 bundled in the node-llama-cpp npm package (scripts/llamacpp)
#   LLAMA_OMP_WAIT  OMP_WAIT_POLICY of llama-server (default PASSIVE: with the
#                 default spinning barriers llama.cpp ran at 0.6 tok/s on a
#                 2-core machine with other work on it, 10 with PASSIVE or -t 1)
#   NO_LLAMA=1    measure Realm only
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-/tmp/realm-loadtest}
CLIENTS=${CLIENTS:-"1 4 8"}
ROUNDS=${ROUNDS:-2}
REQUESTS=${REQUESTS:-2}
TOKENS=${TOKENS:-64}
THREADS=${THREADS:-$(nproc)}
GO=${GO:-go}
case "$($GO env GOARCH)" in
arm64) BACKEND=${BACKEND:-cpu-neon} ;;
*) BACKEND=${BACKEND:-cpu-avx2} ;;
esac
mkdir -p "$WORK/bin" "$WORK/models"
RESULTS="$WORK/results.jsonl"
: >"$RESULTS"

log() { echo "loadtest: $*" >&2; }

log "building realm, the $BACKEND plugin, the chat guest and the load client into $WORK/bin"
(cd "$ROOT" &&
	$GO build -o "$WORK/bin/realm" ./cmd/realm &&
	$GO build -o "$WORK/bin/realm-backend-$BACKEND" "./cmd/realm-backend-$BACKEND" &&
	GOOS=wasip1 GOARCH=wasm $GO build -o "$WORK/bin/chat.wasm" ./examples/chat &&
	$GO build -o "$WORK/bin/loadclient" ./tests/loadclient)

MODEL="$WORK/models/tiny.gguf"
if [ ! -s "$MODEL" ]; then
	log "writing the synthetic TinyLlama-1.1B Q4_0 file $MODEL"
	"$WORK/bin/realm" gguf synth --preset tinyllama-1.1b --type q4_0 \
		--tokenizer-from "$ROOT/testdata/reference/models/llama-2-tiny-random.gguf" -o "$MODEL.part"
	mv "$MODEL.part" "$MODEL"
fi

# llama-server, built from the node-llama-cpp bundle unless given.
if [ -z "${NO_LLAMA:-}" ] && [ -z "${LLAMA_SERVER:-}" ]; then
	LLAMA_SERVER="$WORK/llama-build/bin/llama-server"
	if [ ! -x "$LLAMA_SERVER" ]; then
		src=${LLAMA_SRC:-}
		if [ -z "$src" ]; then
			bundle="$ROOT/scripts/llamacpp/node_modules/node-llama-cpp/llama/gitRelease.bundle"
			if [ ! -f "$bundle" ]; then
				log "installing node-llama-cpp (scripts/llamacpp) for its llama.cpp source"
				(cd "$ROOT/scripts/llamacpp" && npm ci --ignore-scripts --no-audit --no-fund >&2)
			fi
			src="$WORK/llama.cpp"
			[ -d "$src" ] || git clone -q "$bundle" "$src"
		fi
		log "building llama-server (CPU) from $src"
		cmake -S "$src" -B "$WORK/llama-build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
			-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DGGML_NATIVE=ON >"$WORK/llama-cmake.log"
		cmake --build "$WORK/llama-build" --target llama-server -j"$(nproc)" >"$WORK/llama-build.log"
	fi
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_up() { # url pid
	for _ in $(seq 1 600); do
		if curl -fsS -o /dev/null "$1/health" 2>/dev/null; then return 0; fi
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.2
	done
	return 1
}

stop() { # pid
	kill -INT "$1" 2>/dev/null || true
	for _ in $(seq 1 50); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
	kill -KILL "$1" 2>/dev/null || true
}

load_line() { echo "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') | load $(cut -d' ' -f1-3 /proc/loadavg)"; }

measure() { # label url n
	"$WORK/bin/loadclient" -url "$2" -model tiny -clients 1 -requests 1 -tokens 4 >/dev/null # warm-up
	"$WORK/bin/loadclient" -url "$2" -model tiny -clients "$3" -requests "$REQUESTS" -tokens "$TOKENS" -label "$1" |
		tee -a "$RESULTS" >&2
	log "  $(load_line)"
}

run_realm() { # label dir n
	local port cfg pid
	port=$(free_port)
	cfg="$WORK/plugins-$1-$3.hcl"
	cat >"$cfg" <<EOF
models_dir = "$WORK/models"
backend "$BACKEND" {
  binary  = "$2/realm-backend-$BACKEND"
  arch    = "any"
  threads = $THREADS
  env     = ["GODEBUG=asyncpreemptoff=1"]
}
app "chat" {
  wasm   = "$2/chat.wasm"
  models = ["*"]
}
server {
  max_concurrent = $3
  max_queue      = 64
}
EOF
	"$2/realm" serve --config "$cfg" --backend "$BACKEND" --addr "127.0.0.1:$port" --cache-dir "$WORK/wazero" \
		2>"$WORK/serve-$1-$3.log" &
	pid=$!
	if ! wait_up "http://127.0.0.1:$port" "$pid"; then
		log "realm serve ($1) did not start; see $WORK/serve-$1-$3.log"
		stop "$pid"
		return 1
	fi
	measure "$1" "http://127.0.0.1:$port" "$3" || true
	stop "$pid"
}

run_llama() { # n
	local port pid
	port=$(free_port)
	OMP_WAIT_POLICY=${LLAMA_OMP_WAIT:-PASSIVE} "$LLAMA_SERVER" -m "$MODEL" --host 127.0.0.1 --port "$port" -t "$THREADS" -np "$1" -c $((1024 * $1)) \
		--no-webui >"$WORK/llama-server-$1.log" 2>&1 &
	pid=$!
	if ! wait_up "http://127.0.0.1:$port" "$pid"; then
		log "llama-server did not start; see $WORK/llama-server-$1.log"
		stop "$pid"
		return 1
	fi
	measure llama-server "http://127.0.0.1:$port" "$1" || true
	stop "$pid"
}

for round in $(seq 1 "$ROUNDS"); do
	for n in $CLIENTS; do
		log "round $round, $n clients"
		run_realm realm "$WORK/bin" "$n"
		for extra in ${REALM_EXTRA:-}; do
			run_realm "${extra%%=*}" "${extra#*=}" "$n"
		done
		if [ -z "${NO_LLAMA:-}" ]; then run_llama "$n"; fi
	done
done

echo "CPU: $(load_line)"
"$WORK/bin/loadclient" -summary "$RESULTS"

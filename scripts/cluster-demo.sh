#!/usr/bin/env bash
# A Realm cluster on loopback: one front end (realm serve --cluster, with
# an embedded NATS server) and two workers (realm worker --join), then a
# story streamed through it and `realm cluster status`.
#
#   scripts/cluster-demo.sh            # uses bin/ (make build), models/stories260K.gguf
#   BACKEND=cpu-avx2 MODEL=... scripts/cluster-demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
BACKEND=${BACKEND:-reference}
MODEL=${MODEL:-stories260k}
HTTP=${HTTP:-127.0.0.1:18080}
NATS=${NATS:-127.0.0.1:14222}
work=$(mktemp -d)
pids=()
cleanup() {
	rc=$?
	[ "$rc" = 0 ] || tail -n 20 "$work"/*.log >&2 || true
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT
# What plugins.hcl names: the CLI, the plugin, the apps of its app blocks.
[ -x "$BIN/realm" ] || go build -o "$BIN/realm" ./cmd/realm
[ -x "$BIN/realm-backend-$BACKEND" ] || go build -o "$BIN/realm-backend-$BACKEND" "./cmd/realm-backend-$BACKEND"
for app in chat generate; do
	[ -e "$BIN/examples/$app.wasm" ] || GOOS=wasip1 GOARCH=wasm go build -o "$BIN/examples/$app.wasm" "./examples/$app"
done

"$BIN/realm" serve --cluster --addr "$HTTP" --nats-listen "$NATS" --nats-dir "$work/nats" \
	--cache-dir "$work/cache" 2>"$work/frontend.log" &
pids+=($!)
for i in 1 2; do
	"$BIN/realm" worker --join "nats://$NATS" --id "worker$i" --backend "$BACKEND" \
		--cache-dir "$work/cache$i" 2>"$work/worker$i.log" &
	pids+=($!)
done
for _ in $(seq 100); do
	n=$(curl -s "http://$HTTP/health" 2>/dev/null | sed -n 's/.*"workers":\([0-9]*\).*/\1/p' || true)
	[ "${n:-0}" = 2 ] && break
	sleep 0.2
done
[ "${n:-0}" = 2 ] || { echo "the workers did not join" >&2; exit 1; }
"$BIN/realm" cluster status --join "nats://$NATS"
echo "--- a story, streamed through the front end:"
curl -sN "http://$HTTP/v1/completions" -H 'Content-Type: application/json' \
	-d "{\"model\":\"$MODEL\",\"prompt\":\"Once upon a time\",\"max_tokens\":96,\"temperature\":0,\"stream\":true}" |
	python3 -c '
import json, sys
for line in sys.stdin:
    if not line.startswith("data: ") or line.strip() == "data: [DONE]":
        continue
    ev = json.loads(line[6:])
    if "error" in ev:
        sys.exit("error event: " + json.dumps(ev))
    print(ev["choices"][0]["text"], end="", flush=True)
'
echo
sleep 1 # the workers publish their state within a second
echo "--- after the story:"
"$BIN/realm" cluster status --join "nats://$NATS"

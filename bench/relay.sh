#!/usr/bin/env bash
# What relaying costs `wameter serve` (SQLite): the same signed webhooks as
# bench/serve.sh, with and without `--relay-url`, the app being a second
# wameter (discard://, which checks each relayed signature and parses the
# body as an app would). For each: the most webhooks per second (64
# connections), then a paced run at about 5,000/s; after each run, how
# long the relay took to drain what was left in the outbox.
#
#   bench/relay.sh [EVENTS]        (default 400000 events ≈ 300000 webhooks)
#
# wrk, the server and the app share the machine's cores: every number is a
# floor. Results go to stdout; copy them into docs/PERFORMANCE.md.
set -euo pipefail
cd "$(dirname "$0")/.."
events="${1:-400000}"
out=bench/out
mkdir -p "$out"
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
cargo build --release -q
bin=target/release/wameter
secret=bench-secret
token=bench-token-0123456789
port=18181
app_port=18182

if [ ! -s "$out/serve-signed.tsv" ]; then
  "$bin" gen --webhooks --events "$events" --businesses 6 --users 50000 --seed 7 --out "$out/serve-webhooks.ndjson"
  python3 bench/sign_bodies.py "$secret" "$out/serve-webhooks.ndjson" "$out/serve-signed.tsv" "$out/serve-users.txt"
fi
echo "bodies: $(wc -l < "$out/serve-signed.tsv")"

wait_for() { # log file
  for _ in $(seq 100); do
    grep -q "listening on" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  cat "$1" >&2; exit 1
}

WAMETER_APP_SECRET=$secret WAMETER_LOG=warn "$bin" serve --listen "127.0.0.1:$app_port" --database discard:// 2>"$out/relay-app.log" &
app=$!
trap 'kill $app 2>/dev/null || true' EXIT
wait_for "$out/relay-app.log"

db="$out/relay-bench.db"
run() { # name, wrk options…
  local name=$1; shift
  for relay in off on; do
    rm -f "$db" "$db-wal" "$db-shm"
    local extra=()
    [ "$relay" = on ] && extra=(--relay-url "http://127.0.0.1:$app_port/webhook")
    WAMETER_APP_SECRET=$secret WAMETER_API_TOKEN=$token WAMETER_LOG=warn WAMETER_HOME="$out/home" \
      "$bin" serve --listen "127.0.0.1:$port" --database "sqlite://$db" "${extra[@]}" 2>"$out/relay-serve.log" &
    local server=$!
    wait_for "$out/relay-serve.log"
    printf '%-6s relay %-3s ' "$name" "$relay"
    WRK_BODIES="$out/serve-signed.tsv" WRK_THREADS=1 wrk "$@" -s bench/wrk/webhooks.lua "http://127.0.0.1:$port" | grep RESULT | tr '\n' ' '
    if [ "$relay" = on ]; then
      local started pending
      started=$(date +%s.%N)
      pending=$(curl -sf -H "Authorization: Bearer $token" "http://127.0.0.1:$port/v1/relay" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pending"])')
      while :; do
        state=$(curl -sf -H "Authorization: Bearer $token" "http://127.0.0.1:$port/v1/relay")
        [ "$(echo "$state" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pending"])')" = 0 ] && break
        sleep 0.2
      done
      printf 'left in outbox at the end %s, drained in %.1f s, relayed %s' "$pending" "$(echo "$(date +%s.%N) - $started" | bc)" \
        "$(echo "$state" | python3 -c 'import json,sys; print(json.load(sys.stdin)["delivered"])')"
    fi
    echo
    kill "$server"; wait "$server" 2>/dev/null || true
  done
}

run max -t1 -c64 -d10s
WRK_DELAY_MS=10 run paced -t1 -c56 -d10s

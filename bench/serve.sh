#!/usr/bin/env bash
# Benchmarks `wameter serve` with a real HTTP load tool (wrk, from Debian)
# on signed webhooks as Meta sends them: `wameter gen --webhooks` (users'
# messages, and each send's sent/delivered/read/failed statuses with the
# pricing objects Meta attaches; about 3 webhooks per 4 generated events).
#
#   bench/serve.sh [EVENTS]         (default 400000 events ≈ 300000 webhooks)
#   BIN=/tmp/old/wameter STORES="discard sqlite" bench/serve.sh 100000
#
# For each store — discard:// (no storage: the ceiling), SQLite, and
# PostgreSQL when WAMETER_TEST_POSTGRES is set (scripts/postgres-for-tests.sh)
# — on a fresh database: the most signed webhooks per second (64
# connections, closed loop), then a paced run at about 5,000/s (56
# connections, 10 ms between requests on each) for latency; then the
# window query on the SQLite data, flat out and paced at about 1,000/s. wrk and the server share the machine's
# cores, so the numbers are a floor. Results go to stdout; copy them into
# docs/PERFORMANCE.md.
set -euo pipefail
cd "$(dirname "$0")/.."
events="${1:-400000}"
out=bench/out
mkdir -p "$out"
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
# BIN=path/to/wameter measures another build (e.g. the previous commit's,
# for a before/after in one session); otherwise this tree's release build.
if [ -z "${BIN:-}" ]; then cargo build --release -q; fi
bin="${BIN:-target/release/wameter}"
secret=bench-secret
token=bench-token
port=18181

"$bin" gen --webhooks --events "$events" --businesses 6 --users 50000 --seed 7 --out "$out/serve-webhooks.ndjson"
python3 bench/sign_bodies.py "$secret" "$out/serve-webhooks.ndjson" "$out/serve-signed.tsv" "$out/serve-users.txt"
echo "bodies: $(wc -l < "$out/serve-signed.tsv"), $(du -h "$out/serve-webhooks.ndjson" | cut -f1)"

start_server() {
  WAMETER_APP_SECRET=$secret WAMETER_API_TOKEN=$token WAMETER_LOG=warn WAMETER_HOME="$out/home" \
    "$bin" serve --listen "127.0.0.1:$port" --database "$1" 2>"$out/serve.log" &
  server=$!
  for _ in $(seq 100); do
    grep -q "listening on" "$out/serve.log" 2>/dev/null && return 0
    sleep 0.1
  done
  cat "$out/serve.log" >&2; exit 1
}

stop_server() { kill "$server"; wait "$server" 2>/dev/null || true; }

run() { # name, database
  echo "== $1"
  start_server "$2"
  WRK_BODIES="$out/serve-signed.tsv" WRK_THREADS=1 wrk -t1 -c64 -d10s -s bench/wrk/webhooks.lua "http://127.0.0.1:$port" | grep RESULT | sed "s/^/max    /"
  stop_server
  [ "$2" = discard:// ] || reset "$2"
  start_server "$2"
  WRK_BODIES="$out/serve-signed.tsv" WRK_THREADS=1 WRK_DELAY_MS=10 wrk -t1 -c56 -d10s -s bench/wrk/webhooks.lua "http://127.0.0.1:$port" | grep RESULT | sed "s/^/paced  /"
  stop_server
}

reset() {
  case "$1" in
    sqlite://*) rm -f "${1#sqlite://}" "${1#sqlite://}-wal" "${1#sqlite://}-shm" ;;
    postgres://*) psql "${WAMETER_TEST_POSTGRES}" -q -c "DROP DATABASE IF EXISTS wameter_bench" -c "CREATE DATABASE wameter_bench" ;;
  esac
}

stores="${STORES:-discard sqlite postgres}"   # e.g. STORES=sqlite bench/serve.sh
[[ " $stores " == *" discard "* ]] && run discard discard://
db="$out/serve-bench.db"
reset "sqlite://$db"
[[ " $stores " == *" sqlite "* ]] && run sqlite "sqlite://$db"
if [[ " $stores " == *" postgres "* && -n "${WAMETER_TEST_POSTGRES:-}" ]]; then
  pg="${WAMETER_TEST_POSTGRES%/*}/wameter_bench"
  reset "$pg"
  run postgres "$pg"
fi

[[ " $stores " == *" sqlite "* ]] || exit 0
echo "== window query (SQLite, after the paced run)"
start_server "sqlite://$db"
# Settle the charges the paced run left pending first, so the settler does
# not share the cores with the window queries being measured.
curl -sf -H "Authorization: Bearer $token" "http://127.0.0.1:$port/v1/reports/costs" >/dev/null
WRK_USERS="$out/serve-users.txt" WRK_TOKEN=$token wrk -t1 -c4 -d10s -s bench/wrk/windows.lua "http://127.0.0.1:$port" | grep RESULT | sed "s/^/max    /"
WRK_USERS="$out/serve-users.txt" WRK_TOKEN=$token WRK_DELAY_MS=10 wrk -t1 -c10 -d10s -s bench/wrk/windows.lua "http://127.0.0.1:$port" | grep RESULT | sed "s/^/paced  /"
stop_server

#!/usr/bin/env bash
# PostgreSQL against SQLite, and two `serve` processes on one PostgreSQL
# against one, in one run on the same signed webhooks (issue 21):
#
#   export WAMETER_TEST_POSTGRES="$(scripts/postgres-for-tests.sh)"
#   bench/postgres.sh [EVENTS] [SECONDS]      (defaults 400000 events, 15 s a run)
#
# Every configuration gets the same load: two wrk processes of 32
# connections each (closed loop), each sending its own half of the bodies,
# so no body is sent twice within a run; with two servers each wrk talks to
# one. Each run starts on a fresh database. wrk, the servers and PostgreSQL
# share the machine's cores; the ratios are what the issue's targets name.
#
# PIN=1 gives PostgreSQL a core of its own (CPU 1; new backends inherit
# the postmaster's affinity) and puts wrk and the servers on CPU 0: one
# node's ingestion with the database elsewhere, as deployed. Then two
# servers share that one core, so the two-process ratio is not printed.
set -euo pipefail
cd "$(dirname "$0")/.."
events="${1:-400000}"
seconds="${2:-15}"
out=bench/out
mkdir -p "$out"
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
[ -n "${WAMETER_TEST_POSTGRES:-}" ] || { echo "WAMETER_TEST_POSTGRES is needed (scripts/postgres-for-tests.sh)" >&2; exit 1; }
if [ -z "${BIN:-}" ]; then cargo build --release -q; fi
bin="${BIN:-target/release/wameter}"
secret=bench-secret
pg="${WAMETER_TEST_POSTGRES%/*}/wameter_bench"

if [ ! -s "$out/pg-signed.tsv" ]; then
  "$bin" gen --webhooks --events "$events" --businesses 6 --users 50000 --seed 7 --out "$out/pg-webhooks.ndjson"
  python3 bench/sign_bodies.py "$secret" "$out/pg-webhooks.ndjson" "$out/pg-signed.tsv" "$out/pg-users.txt"
fi
echo "bodies: $(wc -l < "$out/pg-signed.tsv")"

servers=()
pin=""
if [ "${PIN:-}" = 1 ]; then
  postmaster=$(head -1 "$(psql -tA "$WAMETER_TEST_POSTGRES" -c 'show data_directory')/postmaster.pid")
  for p in $postmaster $(pgrep -P "$postmaster"); do taskset -a -p 2 "$p" >/dev/null; done
  pin="taskset -c 0"
fi

start_server() { # database, port
  WAMETER_APP_SECRET=$secret WAMETER_API_TOKEN=bench-token WAMETER_LOG=warn WAMETER_HOME="$out/home" \
    $pin "$bin" serve --listen "127.0.0.1:$2" --database "$1" 2>"$out/serve-$2.log" &
  servers+=($!)
  for _ in $(seq 100); do
    grep -q "listening on" "$out/serve-$2.log" 2>/dev/null && return 0
    sleep 0.1
  done
  cat "$out/serve-$2.log" >&2; exit 1
}
stop_servers() { kill "${servers[@]}"; wait "${servers[@]}" 2>/dev/null || true; servers=(); }

reset() {
  case "$1" in
    sqlite://*) rm -f "${1#sqlite://}" "${1#sqlite://}-wal" "${1#sqlite://}-shm" ;;
    postgres://*) psql "$WAMETER_TEST_POSTGRES" -q -c "DROP DATABASE IF EXISTS wameter_bench" -c "CREATE DATABASE wameter_bench" ;;
  esac
}

run() { # name, database, processes
  reset "$2"
  start_server "$2" 18191
  local second=18191
  if [ "$3" = 2 ]; then start_server "$2" 18192; second=18192; fi
  local file="$out/pg-run-$1.txt"
  ( WRK_BODIES="$out/pg-signed.tsv" WRK_SHARDS=2 WRK_SHARD=0 $pin wrk -t1 -c32 -d"${seconds}s" -s bench/wrk/webhooks.lua "http://127.0.0.1:18191" | grep RESULT > "$file.0" ) &
  local first=$!
  WRK_BODIES="$out/pg-signed.tsv" WRK_SHARDS=2 WRK_SHARD=1 $pin wrk -t1 -c32 -d"${seconds}s" -s bench/wrk/webhooks.lua "http://127.0.0.1:$second" | grep RESULT > "$file.1"
  wait "$first"
  stop_servers
  local rate
  rate=$(cat "$file.0" "$file.1" | sed -E 's/.*per_second=([0-9]+).*/\1/' | paste -sd+ | bc)
  echo "$1 $rate" >> "$out/pg-rates.txt"
  echo "== $1: $rate webhooks/s"
  sed 's/^/   /' "$file.0" "$file.1"
}

: > "$out/pg-rates.txt"
run sqlite "sqlite://$out/pg-bench.db" 1
run postgres-1 "$pg" 1
[ -n "$pin" ] || run postgres-2 "$pg" 2
rate() { grep "^$1 " "$out/pg-rates.txt" | cut -d' ' -f2; }
echo "PostgreSQL / SQLite (one process each): $(echo "scale=2; $(rate postgres-1) / $(rate sqlite)" | bc)"
[ -n "$pin" ] || echo "two PostgreSQL processes / one:         $(echo "scale=2; $(rate postgres-2) / $(rate postgres-1)" | bc)"
if [ -n "$pin" ]; then
  for p in $postmaster $(pgrep -P "$postmaster"); do taskset -a -p 3 "$p" >/dev/null; done
fi

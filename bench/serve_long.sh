#!/usr/bin/env bash
# Long flat-out ingestion on SQLite (issue 20): does `serve` slow down as the
# months it keeps charges for grow?
#
#   bench/serve_long.sh [SECONDS] [EVENTS]          (default 60 s, 2,400,000 events)
#   BIN=/tmp/old/wameter bench/serve_long.sh        (another build, same data)
#   FIRST=day, ORDER=time                           (see below)
#
# One fresh SQLite database, wrk flat out (64 connections) on signed webhooks
# from `wameter gen --webhooks` (enough bodies that none is sent twice), the
# stored-webhook count read from /metrics every 10 s: webhooks/s per 10 s
# slice, the last slice against the first, and what each slice's webhooks
# cost the server in I/O and CPU. Then, with wrk stopped, the time
# of a charge query (it settles whatever is pending first: the backlog),
# the server's peak RSS, and the kept charges against `wameter replay` of the
# same bodies. wrk and the server share the two cores.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
events="${2:-2400000}"
out=bench/out
mkdir -p "$out"
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
if [ -z "${BIN:-}" ]; then cargo build --release -q; fi
bin="${BIN:-target/release/wameter}"
secret=bench-secret
token=bench-token
port=18182
bodies="$out/long-webhooks.ndjson"
if [ ! -f "$out/long-signed.tsv" ]; then
  target/release/wameter gen --webhooks --events "$events" --businesses 6 --users 50000 --seed 7 --out "$bodies"
  python3 bench/sign_bodies.py "$secret" "$bodies" "$out/long-signed.tsv" "$out/long-users.txt"
fi
# `gen` writes episodes one after another at random instants over three
# months: a backfill's order, the incremental settler's worst case (each
# round's events land all over the months). ORDER=time sends them in time
# order instead, as live traffic arrives.
signed="$out/long-signed.tsv"
if [ "${ORDER:-}" = time ]; then
  if [ ! -f "$out/long-signed-by-time.tsv" ]; then
    python3 -c '
import re, sys
rows = open(sys.argv[1]).read().splitlines()
stamp = re.compile(r"\"timestamp\":\"(\d+)\"")
rows.sort(key=lambda row: int(stamp.search(row).group(1)) if stamp.search(row) else 0)
open(sys.argv[2], "w").write("\n".join(rows) + "\n")' "$signed" "$out/long-signed-by-time.tsv"
  fi
  signed="$out/long-signed-by-time.tsv"
fi
echo "bodies: $(wc -l < "$signed") (order: ${ORDER:-as generated})"
db="$out/long.db"
rm -f "$db" "$db-wal" "$db-shm"
WAMETER_APP_SECRET=$secret WAMETER_API_TOKEN=$token WAMETER_LOG=${WAMETER_LOG:-warn} WAMETER_HOME="$out/home" \
  "$bin" serve --listen "127.0.0.1:$port" --database "sqlite://$db" 2>"$out/long-serve.log" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q "listening on" "$out/long-serve.log" 2>/dev/null && break; sleep 0.1; done
stored() { curl -s "http://127.0.0.1:$port/metrics" | awk '/^wameter_webhooks_received_total/ {s += $2} END {print s + 0}'; }
WRK_BODIES="$signed" WRK_THREADS=1 wrk -t1 -c64 -d"${seconds}s" -s bench/wrk/webhooks.lua "http://127.0.0.1:$port" > "$out/long-wrk.txt" &
wrk_pid=$!
# wrk reads the body file before it starts: wait for the first stored webhook.
while [ "$(stored)" = 0 ]; do sleep 0.05; done
# The server's I/O (bytes read through system calls: database pages, and
# the requests themselves, about 1 KB each; bytes written to storage) and
# CPU, from /proc, per webhook stored in each slice: what SQLite's page
# reads, log writes and checkpoints cost.
io() { awk '/^rchar/ {r = $2} /^write_bytes/ {w = $2} END {print r, w}' "/proc/$server/io"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$server/stat"; }
previous=0; first=""; slices=""; per_webhook=""
read -r read_before written_before < <(io); cpu_before=$(cpu_ticks)
for slice in $(seq $((seconds / 10))); do
  sleep 10
  now=$(stored); rate=$(( (now - previous) / 10 ))
  read -r read_now written_now < <(io); cpu_now=$(cpu_ticks)
  per_webhook="$per_webhook $(python3 -c "n = max($now - $previous, 1); print(f'{($read_now - $read_before) / n / 1024:.0f}/{($written_now - $written_before) / n / 1024:.0f}/{($cpu_now - $cpu_before) * 1000 / $(getconf CLK_TCK) / n:.3f}')")"
  previous=$now; read_before=$read_now; written_before=$written_now; cpu_before=$cpu_now
  slices="$slices $rate"; first=${first:-$rate}
done
wait $wrk_pid || true
grep RESULT "$out/long-wrk.txt" | sed 's/^/wrk /'
# Issue 20's measure is the minute's mean against its first 10 s; the last
# slice against the first shows the trend.
echo "webhooks/s per 10 s:$slices (minute mean/first $(python3 -c "s = [int(x) for x in '$slices'.split()]; print(round(sum(s) / len(s) / s[0], 2))"), last/first $(python3 -c "print(round(${rate}/${first}, 2))"))"
echo "per webhook, KB read / KB written / CPU ms, per 10 s:$per_webhook"
# Times one question: ask LABEL PATH.
ask() {
  local start code
  start=$(date +%s.%N)
  code=$(curl -s -o /dev/null -w "%{http_code}" -H "Authorization: Bearer $token" "http://127.0.0.1:$port$2")
  echo "$1: HTTP $code in $(python3 -c "print(round($(date +%s.%N) - $start, 3))") s"
}
day="/v1/charges?from=2026-02-01&to=2026-02-02"
# FIRST=day asks a day's charges first: the backlog plus a small answer
# (issue 20's "a charge query after a flat-out load"); by default the
# first question is the cost report of every month.
if [ "${FIRST:-}" = day ]; then
  ask "a day's charges, first after the load (settles the backlog)" "$day"
  ask "a day's charges again (nothing pending)" "$day"
  ask "cost report then" /v1/reports/costs
else
  ask "first cost report after the load (settles the backlog)" /v1/reports/costs
  ask "a day's charges then" "$day"
fi
ask "cost report again (nothing pending)" /v1/reports/costs
echo "serve peak RSS: $(awk '/VmHWM/ {print $2, $3}' /proc/$server/status)"
echo "stored webhooks: $(stored)"

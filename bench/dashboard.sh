#!/usr/bin/env bash
# The dashboard on a store of 300,000 events (issue 24: pages in < 200 ms).
#
#   bench/dashboard.sh                          (this build)
#   BIN=/tmp/old/wameter bench/dashboard.sh     (another build, same data)
#
# One fresh SQLite store filled through POST /v1/events with
# `wameter gen --events 300000` over the 90 days before yesterday (so the
# windows page has a week of traffic), then, five times each: a write that
# adds one charge (a template and its delivery) followed by one view of a
# page, timed with curl (the write is in the last month; the reconciliation
# is asked of it and of the month before; the overview also after writes
# into the month before). "First view" is that view; "again" is the same
# page asked once more with nothing stored between. Also: how long the
# 300,000 events took to post, the first cost report (it settles
# everything), and the server's peak RSS. Then `serve` is started again on
# the same store and, once its background reconciler has reconciled the
# months within its bound (its log says so; all four months of this
# store), each reconciliation page is viewed for the first time: the last
# two months, the default slice (both), and the month before them.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${BIN:-}" ]; then cargo build --release -q; fi
bin="$(realpath "${BIN:-target/release/wameter}")"
out=bench/out/dashboard
mkdir -p "$out"
port=18701
token=bench-token
to=$(date -u -d yesterday +%F)
from=$(date -u -d "$to - 90 days" +%F)
if [ ! -f "$out/log-$to.ndjson" ]; then
  rm -f "$out"/log-* "$out"/part.*
  target/release/wameter gen --seed 7 --events 300000 --businesses 6 --users 20000 \
    --from "$from" --to "$to" -o "$out/log-$to.ndjson" --accounts-out "$out/accounts.toml"
  split -l 20000 "$out/log-$to.ndjson" "$out/part."
fi
rm -f "$out"/store.db*
echo 'accounts = "accounts.toml"' > "$out/wameter.toml"
(cd "$out" && WAMETER_API_TOKEN=$token WAMETER_APP_SECRET=x WAMETER_LOG=warn \
  /usr/bin/time -f "%M" -o rss.txt "$bin" serve --listen 127.0.0.1:$port --database sqlite://store.db \
  > serve.log 2>&1) &
for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:$port/healthz && break; sleep 0.1; done
base=http://127.0.0.1:$port
start=$(date +%s.%N)
for part in "$out"/part.*; do
  curl -sf -o /dev/null -X POST -H "Authorization: Bearer $token" --data-binary @"$part" "$base/v1/events"
done
echo "posted 300,000 events: $(echo "$(date +%s.%N) - $start" | bc) s"
curl -s -o /dev/null -w "first cost report (settles everything): %{time_total} s\n" \
  -H "Authorization: Bearer $token" "$base/v1/reports/costs"
business=$(grep -m1 phone_number_id "$out/accounts.toml" | cut -d'"' -f2)
month=$(date -u -d "$to" +%Y-%m)
last_month=$(date -u -d "$to - 1 month" +%Y-%m)
n=0
day="$to"
write() {
  n=$((n + 1))
  printf '{"type":"outbound","at":"%sT10:%02d:00Z","business":"%s","user":"+551199998%04d","id":"wamid.bench%d","template":{"name":"promo","category":"marketing"}}\n{"type":"status","at":"%sT10:%02d:03Z","business":"%s","id":"wamid.bench%d","status":"delivered"}\n' \
    "$day" $((n % 60)) "$business" $n $n "$day" $((n % 60)) "$business" $n > "$out/one.ndjson"
  curl -sf -o /dev/null -X POST -H "Authorization: Bearer $token" --data-binary @"$out/one.ndjson" "$base/v1/events"
}
view() { curl -s -o /dev/null -w "%{time_total}" -H "Cookie: wameter_token=$token" "$base/$1"; }
# The first view after the start reads every kept charge.
echo "overview, first view after the start: $(view overview) s"
for page in overview allowance calls windows "reconciliation?month=$month" "reconciliation?month=$last_month"; do
  firsts="" agains=""
  for _ in 1 2 3 4 5; do
    write
    firsts="$firsts $(view "$page")"
    agains="$agains $(view "$page")"
  done
  echo "$page: first view after a write:$firsts; again:$agains"
done
# A write into a whole month (a late status of last month): its month is
# settled and read again, not a few days' worth.
day=$(date -u -d "$to - 1 month" +%Y-%m-15)
firsts=""
for _ in 1 2 3 4 5; do
  write
  firsts="$firsts $(view overview)"
done
echo "overview, the write in $last_month: first view after a write:$firsts"
for _ in 1 2 3; do
  curl -s -o /dev/null -w "/v1/charges (JSON): %{time_total} s; " \
    -H "Authorization: Bearer $token" "$base/v1/charges"
  curl -s -o /dev/null -w "/v1/reports/costs (group_by=month,category): %{time_total} s; " \
    -H "Authorization: Bearer $token" "$base/v1/reports/costs"
  write
  curl -s -o /dev/null -w "the same after a write: %{time_total} s\n" \
    -H "Authorization: Bearer $token" "$base/v1/reports/costs"
done
pkill -f "^$bin serve --listen 127.0.0.1:$port" || true
wait || true
echo "peak RSS: $(cat "$out/rss.txt") KB"

# Started again on the same store.
(cd "$out" && WAMETER_API_TOKEN=$token WAMETER_APP_SECRET=x \
  WAMETER_LOG=warn,wameter_server::dashboard=debug \
  "$bin" serve --listen 127.0.0.1:$port --database sqlite://store.db > serve-again.log 2>&1) &
started=$(date +%s.%N)
for _ in $(seq 600); do grep -q "reconciled the latest months" "$out/serve-again.log" && break; sleep 0.1; done
echo "after a restart, the reconciler's first round ended after $(echo "$(date +%s.%N) - $started" | bc) s"
older=$(date -u -d "$to - 2 month" +%Y-%m)
for page in "reconciliation?month=$month" "reconciliation?month=$last_month" reconciliation "reconciliation?month=$older"; do
  echo "$page, first view after the restart: $(view "$page") s; again: $(view "$page") s"
done
pkill -f "^$bin serve --listen 127.0.0.1:$port" || true
wait || true

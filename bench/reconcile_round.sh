#!/usr/bin/env bash
# The dashboard's background reconciler, its first full round on a copy of a
# store (issue 20): `serve` on the copy, the round's time from its debug log,
# and the server's peak RSS then.
#
#   bench/reconcile_round.sh [STORE] [PORTFOLIO_MONTHS]
#   BIN=/tmp/old/wameter bench/reconcile_round.sh bench/out/long.db 12
#
# STORE defaults to what `bench/serve_long.sh` leaves (bench/out/long.db);
# PORTFOLIO_MONTHS is how many (portfolio, month)s it holds (12 there). A
# store of an older schema is migrated first, outside the round's time.
set -euo pipefail
cd "$(dirname "$0")/.."
store="${1:-bench/out/long.db}"
months="${2:-12}"
if [ -z "${BIN:-}" ]; then cargo build --release -q; fi
bin="${BIN:-target/release/wameter}"
copy="$(mktemp -d)/store.db"
log="${copy%.db}.log"
cp "$store" "$copy"
WAMETER_APP_SECRET=s WAMETER_API_TOKEN=t WAMETER_HOME=bench/out/home \
  WAMETER_LOG=warn,wameter_server::dashboard=debug \
  "$bin" serve --listen 127.0.0.1:18185 --database "sqlite://$copy" 2>"$log" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$(dirname "$copy")"' EXIT
for _ in $(seq 1200); do
  sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -q "portfolio_months=$months " && break
  sleep 0.2
done
echo "first full round: $(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -o "portfolio_months=$months elapsed_ms=[0-9]*" | head -1)"
echo "serve peak RSS: $(awk '/VmHWM/ {print $2, $3}' /proc/$server/status)"

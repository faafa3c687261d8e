#!/usr/bin/env bash
# Added latency of the guard: the same sends, alternately straight to a
# sandbox and through `wameter serve --upstream` in front of it, so both
# see the same sandbox state. Half are templates (category from the
# guard's cache, estimate, hard-stop budget check), half free-form replies
# (customer service window check). The sandbox's webhooks go to the
# server, so the guard reads real pair histories as they grow.
#
#   bench/guard_latency.sh [SENDS]      (default 2000 through each path)
#
# Needs Python with httpx (scripts/pywa-for-tests.sh installs one).
# Results go to stdout; copy them into docs/PERFORMANCE.md.
# SERVE_LOG="warn,wameter_server::guard=debug" logs each guarded send's
# steps in microseconds to bench/out/guard/serve.log; bench/guard_steps.py
# then prints them, and the guard's own time by the pair's history length.
# The sandbox runs with its default status delays (sent after 1 s,
# delivered after 2 s, as Meta's arrive).
# SANDBOX_ARGS="--sent-after 0 --delivered-after 0" gives instant statuses.
# SERVE_ARGS="--record-wait 30s" (say) passes flags to the server.
# BIN=/tmp/old/wameter runs another build (for before/after in one session).
# USERS=60 spreads the sends over 60 users instead of 200: longer pair
# histories (the guard read 46 events a pair at the median of 2000 sends,
# 105 at most; 14 and 33 with 200 users).
# PASS_THROUGH=1 sends read receipts, which the guard forwards unread: the
# cost of the extra HTTP hop alone.
# PIN=1 gives the server CPU 1 and the sandbox and client CPU 0 (taskset),
# as in production where the guard does not share cores with its callers.
set -euo pipefail
cd "$(dirname "$0")/.."
sends="${1:-2000}"
out=bench/out/guard
rm -rf "$out" && mkdir -p "$out"
python="${WAMETER_TEST_PYTHON:-$(scripts/pywa-for-tests.sh)}"
if [ -z "${BIN:-}" ]; then cargo build --release -q; fi
bin="${BIN:-target/release/wameter}"
secret=bench-secret
cat > "$out/accounts.toml" <<TOML
[[business]]
phone_number_id = "106540352242922"
waba = "419561257915477"
timezone = "America/Sao_Paulo"

[[budget]]
name = "bench"
waba = "419561257915477"
amount = "1000000"
hard_stop = true
TOML

if [ "${PIN:-0}" = 1 ]; then
  on_server=(taskset -c 1) on_others=(taskset -c 0)
else
  on_server=() on_others=()
fi

wait_for() {
  for _ in $(seq 100); do
    grep -q "listening on" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  cat "$1" >&2; exit 1
}

WAMETER_APP_SECRET=$secret WAMETER_LOG=warn "${on_others[@]}" "$bin" sandbox --listen 127.0.0.1:18095 ${SANDBOX_ARGS:-} \
  --accounts "$out/accounts.toml" --webhook-url http://127.0.0.1:18096/webhook 2>"$out/sandbox.log" &
sandbox=$!
WAMETER_APP_SECRET=$secret WAMETER_API_TOKEN=bench-token-0123456789 WAMETER_LOG="${SERVE_LOG:-warn}" WAMETER_HOME="$out/home" \
  "${on_server[@]}" "$bin" serve --listen 127.0.0.1:18096 --database "sqlite://$out/guard.db" --upstream http://127.0.0.1:18095 \
  --accounts "$out/accounts.toml" ${SERVE_ARGS:-} 2>"$out/serve.log" &
server=$!
trap 'kill $sandbox $server 2>/dev/null || true' EXIT
wait_for "$out/sandbox.log"
wait_for "$out/serve.log"
"${on_others[@]}" "$python" bench/guard_latency.py "$sends"
if grep -q "Guarded send" "$out/serve.log"; then python3 bench/guard_steps.py "$out/serve.log"; fi

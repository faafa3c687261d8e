#!/usr/bin/env bash
# Webhook benchmark (issue 4): `wameter gen --webhooks` traffic (EVENTS generated events,
# default 530,000 ≈ 400,000 webhook bodies), timed as parse only, replay --json and reconcile.
# Results go in docs/PERFORMANCE.md.
set -euo pipefail
cd "$(dirname "$0")/.."
events=${EVENTS:-530000}
mkdir -p bench/out
cargo build --release -p wameter
bin=target/release/wameter
[[ -f bench/out/webhooks.ndjson ]] || $bin gen --webhooks --events "$events" --seed 7 --out bench/out/webhooks.ndjson
cat bench/out/webhooks.ndjson > /dev/null
echo "== parse only"; /usr/bin/time -f "%e s wall, %M KB max RSS" $bin replay bench/out/webhooks.ndjson --parse-only
echo "== replay --json"; /usr/bin/time -f "%e s wall, %M KB max RSS" $bin replay bench/out/webhooks.ndjson --json > bench/out/webhooks-replay.json
echo "== reconcile"; /usr/bin/time -f "%e s wall, %M KB max RSS" $bin reconcile bench/out/webhooks.ndjson

#!/usr/bin/env bash
# Webhook benchmark (issue 4): 100,000 conversations as Meta webhook bodies (400,000 lines),
# timed as parse only, replay --json and reconcile. Results go in docs/PERFORMANCE.md.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${CONVERSATIONS:-100000}
mkdir -p bench/out
cargo build --release -p wameter
bin=target/release/wameter
[[ -f bench/out/webhooks.ndjson ]] || python3 bench/webhooks_gen.py "$n" bench/out/webhooks.ndjson
cat bench/out/webhooks.ndjson > /dev/null
echo "== parse only"; /usr/bin/time -f "%e s wall, %M KB max RSS" $bin replay bench/out/webhooks.ndjson --parse-only
echo "== replay --json"; /usr/bin/time -f "%e s wall, %M KB max RSS" $bin replay bench/out/webhooks.ndjson --json > bench/out/webhooks-replay.json
echo "== reconcile"; /usr/bin/time -f "%e s wall, %M KB max RSS" $bin reconcile bench/out/webhooks.ndjson

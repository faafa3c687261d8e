#!/usr/bin/env bash
# Replay benchmark (issue 2): a 10 M-event `wameter gen` log, timed three ways —
# parse only (the floor), full replay, and DuckDB computing the same PMP charges.
# Results go in docs/PERFORMANCE.md. Needs: cargo, python3 with `pip install duckdb`.
set -euo pipefail
cd "$(dirname "$0")/.."
events=${EVENTS:-10000000}
mkdir -p bench/out
cargo build --release -p wameter
bin=target/release/wameter
[[ -f bench/out/log.ndjson ]] || $bin gen --seed 42 --events "$events" --businesses 20 --users 50000 \
  -o bench/out/log.ndjson --accounts-out bench/out/accounts.toml
cat bench/out/log.ndjson > /dev/null   # warm the page cache so every run reads from memory
echo "== parse only";  /usr/bin/time -f "%e s wall, %M KB max RSS" $bin replay bench/out/log.ndjson --parse-only
echo "== replay --json"; /usr/bin/time -f "%e s wall, %M KB max RSS" $bin replay bench/out/log.ndjson \
  --accounts bench/out/accounts.toml --json > bench/out/replay.json
grep '"totals"' bench/out/replay.json
echo "== DuckDB";      /usr/bin/time -f "%e s wall, %M KB max RSS" python3 bench/duckdb_pmp.py bench/out/log.ndjson

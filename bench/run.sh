#!/usr/bin/env bash
# Replay benchmark (issues 2 and 20): one `wameter gen` log, timed in one run
# four ways — parse only (the floor), replay (table), replay --json, and
# DuckDB computing the same PMP charges in SQL — and the ratios between
# them. Results go in docs/PERFORMANCE.md.
#
#   bench/run.sh                 # 10 M events
#   EVENTS=2000000 bench/run.sh  # 2 M events
#
# Needs cargo and python3; DuckDB is installed into target/bench-venv the
# first time (from PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."
events=${EVENTS:-10000000}
mkdir -p bench/out
# BIN=another/wameter measures another build (a before) on the same log.
bin=${BIN:-target/release/wameter}
[[ -n ${BIN:-} ]] || cargo build --release -p wameter
python=python3
if ! $python -c "import duckdb" 2>/dev/null; then
  [[ -x target/bench-venv/bin/python ]] || { python3 -m venv target/bench-venv && target/bench-venv/bin/pip install -q duckdb; }
  python=target/bench-venv/bin/python
fi
log=bench/out/log-$events.ndjson
accounts=bench/out/accounts-$events.toml
[[ -f $log ]] || $bin gen --seed 42 --events "$events" --businesses 20 --users 50000 -o "$log" --accounts-out "$accounts"
cat "$log" > /dev/null   # warm the page cache so every run reads from memory

# Runs a command, prints its time and peak memory, and remembers the seconds.
timed() {
  local name=$1; shift
  /usr/bin/time -f "%e %U %S %M" -o bench/out/time.txt "$@"
  read -r wall user sys rss < bench/out/time.txt
  printf '%-22s %7.2f s wall  %6.2f s CPU  %7.0f MB peak\n' "$name" "$wall" "$(echo "$user + $sys" | bc)" "$(echo "$rss / 1024" | bc)" >&2
  eval "t_${name//[^a-z]/_}=$wall"
}
echo "== $(wc -l < "$log") lines, $(du -m "$log" | cut -f1) MB" >&2
timed parse    $bin replay "$log" --parse-only > /dev/null
timed replay   $bin replay "$log" --accounts "$accounts" > bench/out/replay.txt
timed json     $bin replay "$log" --accounts "$accounts" --json > bench/out/replay.json
timed duckdb   $python bench/duckdb_pmp.py "$log" > bench/out/duckdb.txt
grep -o '"totals": {[^}]*}' bench/out/replay.json >&2
cat bench/out/duckdb.txt >&2
echo "replay / parse-only:   $(echo "scale=2; $t_replay / $t_parse" | bc)" >&2
echo "DuckDB / replay:       $(echo "scale=2; $t_duckdb / $t_replay" | bc)  (>= 5 is the target)" >&2
echo "DuckDB / replay --json: $(echo "scale=2; $t_duckdb / $t_json" | bc)" >&2

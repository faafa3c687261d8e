#!/usr/bin/env bash
# Replay benchmark (issues 2 and 20): one `wameter gen` log, timed in one run
# four ways — parse only (the floor), replay (table), replay --json, and
# DuckDB computing the same PMP charges in SQL — and the ratios between
# them. Results go in docs/PERFORMANCE.md.
#
#   bench/run.sh                 # 10 M events
#   EVENTS=2000000 bench/run.sh  # 2 M events
#   RUNS=5 bench/run.sh          # each measurement five times, medians
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

# Runs a command RUNS times (default 1), its output to the file given
# (each run's replacing the last), prints the median time and the
# largest peak memory, and remembers the median seconds. On a VM whose
# kernel time varies from run to run (docs/PERFORMANCE.md, 2026-12-07),
# RUNS=5 makes the ratios below mean something.
runs=${RUNS:-1}
timed() {
  local name=$1 out=$2; shift 2
  local walls=() cpus=() peak=0
  for _ in $(seq "$runs"); do
    /usr/bin/time -f "%e %U %S %M" -o bench/out/time.txt "$@" > "$out"
    read -r wall user sys rss < bench/out/time.txt
    walls+=("$wall"); cpus+=("$(echo "$user + $sys" | bc)")
    (( rss > peak )) && peak=$rss
  done
  local median; median=$(printf '%s\n' "${walls[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p")
  local cpu; cpu=$(printf '%s\n' "${cpus[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p")
  printf '%-22s %7.2f s wall  %6.2f s CPU  %7.0f MB peak' "$name" "$median" "$cpu" "$(echo "$peak / 1024" | bc)" >&2
  (( runs > 1 )) && printf '  (median of %d: %s)' "$runs" "${walls[*]}" >&2
  printf '\n' >&2
  eval "t_${name//[^a-z]/_}=$median"
}
echo "== $(wc -l < "$log") lines, $(( $(stat -L -c %s "$log") / 1000000 )) MB" >&2
timed parse  /dev/null              $bin replay "$log" --parse-only
timed replay bench/out/replay.txt  $bin replay "$log" --accounts "$accounts"
timed json   bench/out/replay.json $bin replay "$log" --accounts "$accounts" --json
timed duckdb bench/out/duckdb.txt  $python bench/duckdb_pmp.py "$log"
grep -o '"totals": {[^}]*}' bench/out/replay.json >&2
cat bench/out/duckdb.txt >&2
echo "replay / parse-only:   $(echo "scale=2; $t_replay / $t_parse" | bc)" >&2
echo "DuckDB / replay:       $(echo "scale=2; $t_duckdb / $t_replay" | bc)  (>= 5 is the target)" >&2
echo "DuckDB / replay --json: $(echo "scale=2; $t_duckdb / $t_json" | bc)" >&2

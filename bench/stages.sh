#!/usr/bin/env bash
# Where a replay's time goes, by stage, for one or more builds: each build
# replays the same log ROUNDS times, the builds interleaved (this machine's
# kernel time varies from run to run, docs/PERFORMANCE.md), and the median
# wall / CPU / system milliseconds of each stage (the replay's own
# `WAMETER_LOG=wameter=debug` stage log), of the whole run, and the largest
# peak are printed, one column per build.
#
#   bench/stages.sh [BUILD...]              (default target/release/wameter)
#   ROUNDS=8 EVENTS=10000000 bench/stages.sh /tmp/old/wameter target/release/wameter
#
# PAUSE=1 (seconds) waits before each run. Below the table: the least wall
# time of the run and of its load stage, the median user time and the huge
# pages faulted, which the kernel's varying time does not blur.
# Needs the log bench/run.sh makes (EVENTS=2000000 by default) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
events=${EVENTS:-2000000}
rounds=${ROUNDS:-5}
log=bench/out/log-$events.ndjson
accounts=bench/out/accounts-$events.toml
[[ -f $log ]] || { echo "no $log: run EVENTS=$events bench/run.sh first" >&2; exit 1; }
builds=("$@")
[[ ${#builds[@]} -gt 0 ]] || builds=(target/release/wameter)
data=$(mktemp)
trap 'rm -f "$data" "$data.err"' EXIT
for round in $(seq "$rounds"); do
  # Every other round in reverse order: a run that starts as the previous
  # one exits pays more system time here, whichever build it is.
  order=("${builds[@]}")
  if (( round % 2 == 0 )); then
    order=(); for (( i=${#builds[@]}-1; i>=0; i-- )); do order+=("${builds[i]}"); done
  fi
  for build in "${order[@]}"; do
    sleep "${PAUSE:-1}"
    huge_before=$(awk '/^thp_fault_alloc/ {print $2}' /proc/vmstat)
    WAMETER_LOG=wameter=debug /usr/bin/time -f "TOTAL %e %U %S %M" \
      "$build" replay "$log" --accounts "$accounts" > /dev/null 2> "$data.err"
    huge_after=$(awk '/^thp_fault_alloc/ {print $2}' /proc/vmstat)
    grep -o 'stage="[a-z]*" wall_ms="[0-9]*" cpu_ms="[0-9]*" sys_ms="[0-9]*"' "$data.err" \
      | sed 's/[a-z_]*=//g; s/"//g' | sed "s|^|$build |" >> "$data"
    read -r _ wall user sys peak < <(grep TOTAL "$data.err")
    echo "$build total $(echo "$wall * 1000" | bc) $(echo "($user + $sys) * 1000" | bc) $(echo "$sys * 1000" | bc)" >> "$data"
    echo "$build peak $(( peak / 1024 )) 0 0" >> "$data"
    echo "$build user $(echo "$user * 1000" | bc) 0 0" >> "$data"
    echo "$build hugepages $(( ${huge_after:-0} - ${huge_before:-0} )) 0 0" >> "$data"
  done
done
python3 - "$data" "${builds[@]}" <<'PY'
import collections, statistics, sys
rows = collections.defaultdict(list)
stages = []
for line in open(sys.argv[1]):
    build, stage, *values = line.split()
    rows[build, stage].append([float(v) for v in values])
    if stage not in stages:
        stages.append(stage)
builds = sys.argv[2:]
print("medians, ms: wall / CPU / system (peak: MB, largest)")
print("stage".ljust(12) + "".join(b[-28:].rjust(30) for b in builds))
extra = ("user", "hugepages")
for stage in [s for s in stages if s not in extra]:
    cells = []
    for build in builds:
        runs = rows[build, stage]
        if stage == "peak":
            cells.append(f"{max(r[0] for r in runs):.0f}")
        else:
            cells.append(" / ".join(f"{statistics.median(r[i] for r in runs):.0f}" for i in range(3)))
    print(stage.ljust(12) + "".join(c.rjust(30) for c in cells))
# What the builds own when the kernel's time varies from run to run: the
# least wall time of the whole run and of reading the log, user time, and
# the transparent huge pages each run faulted (/proc/vmstat; 0 where the
# kernel does not count them).
def least(build, stage):
    return f"{min(r[0] for r in rows[build, stage]):.0f}"
print()
print("total, least wall (ms)".ljust(28) + "".join(least(b, "total").rjust(16) for b in builds))
print("load, least wall (ms)".ljust(28) + "".join(least(b, "load").rjust(16) for b in builds))
print("user time, median (ms)".ljust(28) + "".join(f"{statistics.median(r[0] for r in rows[b, 'user']):.0f}".rjust(16) for b in builds))
print("huge pages faulted".ljust(28) + "".join(f"{min(r[0] for r in rows[b, 'hugepages']):.0f}-{max(r[0] for r in rows[b, 'hugepages']):.0f}".rjust(16) for b in builds))
PY

"""The guard's own steps, from `serve`'s debug log of a guard_latency run.

    python3 bench/guard_steps.py bench/out/guard/serve.log

Needs the log `SERVE_LOG="warn,wameter_server::guard=debug"
bench/guard_latency.sh` writes: one "Guarded send." line per send with each
step's microseconds and the pair's stored events. Prints each step's
p50/p90/p99, then the guard's own time (the steps summed, what its
`Server-Timing: wameter` reports less the hop) by the length of the pair's
history, which issue 20's target names (37 events).
"""

import re
import sys

STEPS = ["lookup", "read", "read_back", "windows", "estimate", "reserve", "record"]


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))] if values else None


rows = []
for line in open(sys.argv[1], encoding="utf-8"):
    if "Guarded send" not in line:
        continue
    line = re.sub(r"\x1b\[[0-9;]*m", "", line)
    row = {key: int(value) for key, value in re.findall(r"(\w+)_us=(\d+)", line)}
    events = re.search(r"pair_events=(\d+)", line)
    row["pair_events"] = int(events.group(1)) if events else 0
    rows.append(row)
if not rows:
    sys.exit("no 'Guarded send.' lines: run with SERVE_LOG=\"warn,wameter_server::guard=debug\"")

print(f"the guard's steps over {len(rows)} sends, µs p50 / p90 / p99")
for step in STEPS:
    values = [row.get(step, 0) for row in rows]
    print(f"  {step:<10} {pct(values, .5):>5} {pct(values, .9):>5} {pct(values, .99):>5}")
print("its own time (the steps summed) by the pair's stored events, µs p50 / p90 / p99")
for low, high in [(0, 15), (15, 30), (30, 45), (45, 60), (60, 10**9)]:
    values = [sum(row.get(step, 0) for step in STEPS) for row in rows if low <= row["pair_events"] < high]
    if values:
        label = f"{low}-{high - 1}" if high < 10**9 else f"{low}+"
        print(f"  {label:<7} n={len(values):<5} {pct(values, .5):>5} {pct(values, .9):>5} {pct(values, .99):>5}")

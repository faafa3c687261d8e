"""Pairs of identical sends, one straight to the sandbox, one through the guard (bench/guard_latency.sh).

Two measures of what the guard adds:
- the difference of percentiles between the two paths (what a caller sees,
  but the sandbox's own variance — its p99 is several times its p50 —
  dominates the tail of both);
- per send through the guard, the time the caller waited minus the time the
  guard spent waiting for upstream on that same send (its `Server-Timing:
  upstream;dur=`): the HTTP hop, the checks and the record, and nothing of
  the sandbox's variance — but also this Python client's own per-request
  cost, which the direct path pays as well, so it is an upper bound.

With PASS_THROUGH=1 every send is a read receipt, which the guard forwards
without looking at it: what the extra HTTP hop alone adds, the floor under
the guard's own numbers.
"""
import os, statistics, sys, time

import httpx

sends = int(sys.argv[1])
phone = "106540352242922"
direct = httpx.Client(base_url="http://127.0.0.1:18095", headers={"Authorization": "Bearer x"})
guard = httpx.Client(base_url="http://127.0.0.1:18096", headers={"Authorization": "Bearer x"})
# USERS (default 200) sets how many users the sends are spread over: fewer
# users, longer pair histories for the guard to read.
users = [f"+55119{i:08d}" for i in range(int(os.environ.get("USERS", "200")))]
inbound_ids = []
for user in users:
    answer = direct.post("/_sandbox/inbound", json={"business": phone, "user": user})
    answer.raise_for_status()
    inbound_ids.append(answer.json()["id"])
pass_through = os.environ.get("PASS_THROUGH") == "1"
time.sleep(2)  # the users' messages reach the server as webhooks

def body(i):
    if pass_through:
        return {"messaging_product": "whatsapp", "status": "read", "message_id": inbound_ids[i % len(inbound_ids)]}
    to = users[i % len(users)]
    if i % 2:
        return {"messaging_product": "whatsapp", "to": to, "type": "text", "text": {"body": "hi"}}
    return {"messaging_product": "whatsapp", "to": to, "type": "template", "template": {"name": "hello_world", "language": {"code": "en_US"}}}

added = []
inside = []
recorded = {}

def timed(client, payload):
    start = time.perf_counter()
    answer = client.post(f"/v23.0/{phone}/messages", json=payload)
    elapsed = (time.perf_counter() - start) * 1000
    assert answer.status_code == 200, answer.text
    timing = answer.headers.get("server-timing")
    if timing:
        upstream = float(timing.split("upstream;dur=")[1].split(",")[0])
        added.append(elapsed - upstream)
        inside.append(float(timing.split("wameter;dur=")[1].split(",")[0]))
        state = answer.headers.get("x-wameter-recorded")
        recorded[state] = recorded.get(state, 0) + 1
    return elapsed

for i in range(50):  # warm-up: connections, the guard's template cache
    timed(direct, body(i)); timed(guard, body(i))
added.clear(); inside.clear(); recorded.clear()
times = {"direct": [], "guard": []}
for i in range(sends):
    order = [("direct", direct), ("guard", guard)] if i % 2 else [("guard", guard), ("direct", direct)]
    for name, client in order:
        times[name].append(timed(client, body(i)))

def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]

print(f"{sends} sends each way ({'read receipts, passed through' if pass_through else 'half templates, half free-form'}), ms")
for p in (50, 90, 99):
    d, g = pct(times["direct"], p), pct(times["guard"], p)
    print(f"p{p}: direct {d:.2f}  guard {g:.2f}  added {g - d:.2f}")
print(f"mean: direct {statistics.mean(times['direct']):.2f}  guard {statistics.mean(times['guard']):.2f}")
if not added:
    sys.exit(0)  # passed through: no Server-Timing
print("upper bound per send (caller's wait minus the guard's wait for upstream; includes the client's own cost), ms")
print("  " + "  ".join(f"p{p} {pct(added, p):.2f}" for p in (50, 90, 99)) + f"  max {max(added):.2f}")
print("inside the guard (its own steps, from Server-Timing: no HTTP hop), ms")
print("  " + "  ".join(f"p{p} {pct(inside, p):.2f}" for p in (50, 90, 99)) + f"  max {max(inside):.2f}")
print(f"X-Wameter-Recorded: {recorded}")

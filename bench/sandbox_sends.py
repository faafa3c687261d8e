"""Sends free-form replies through a running `wameter sandbox` and prints sends/s by fifth.

    wameter sandbox --listen 127.0.0.1:18093 --sent-after 0 --delivered-after 0 &
    python bench/sandbox_sends.py 10000 500     # needs httpx (scripts/pywa-for-tests.sh has it)

Issue 20's target: the last fifth's sends/s at least 0.8 x the first fifth's
(10,000 sends to 500 users in one month, instant statuses).
"""
import httpx, time, sys
port = sys.argv[3] if len(sys.argv) > 3 else "18093"
c = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": "Bearer x"})
n = int(sys.argv[1])
u = int(sys.argv[2]) if len(sys.argv) > 2 else 200
users = [f"+55119{i:08d}" for i in range(u)]
t0 = time.time(); last = t0
marks = []
for i in range(n):
    user = users[i % u]
    # Each user writes before the business's replies, every 24 h of sends.
    if i < u:
        c.post("/_sandbox/inbound", json={"business": "106540352242922", "user": user})
    r = c.post("/v23.0/106540352242922/messages", json={"messaging_product": "whatsapp", "to": user, "type": "text", "text": {"body": "hi"}})
    assert r.status_code == 200, r.text
    if (i + 1) % (n // 5) == 0:
        now = time.time(); marks.append(round((n // 5) / (now - last))); last = now
print("sends", n, "users", u, "seconds", round(time.time() - t0, 1), "per-second by fifth", marks,
      "last/first", round(marks[-1] / marks[0], 2))
t = time.time(); c.get("/_sandbox/charges"); print("charges document", round(time.time() - t, 3), "s")

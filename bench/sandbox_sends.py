"""Sends free-form replies through a running `wameter sandbox` and prints sends/s by quarter.

    wameter sandbox --listen 127.0.0.1:18093 --sent-after 0 --delivered-after 0 &
    python bench/sandbox_sends.py 4000          # needs httpx (scripts/pywa-for-tests.sh has it)
"""
import httpx, time, sys
c = httpx.Client(base_url="http://127.0.0.1:18093", headers={"Authorization": "Bearer x"})
n = int(sys.argv[1])
users = [f"+55119{i:08d}" for i in range(200)]
for u in users:
    c.post("/_sandbox/inbound", json={"business": "106540352242922", "user": u})
marks = []
t0 = time.time(); last = t0
for i in range(n):
    r = c.post("/v23.0/106540352242922/messages", json={"messaging_product": "whatsapp", "to": users[i % 200], "type": "text", "text": {"body": "hi"}})
    assert r.status_code == 200, r.text
    if (i + 1) % (n // 4) == 0:
        now = time.time(); marks.append(round((n // 4) / (now - last))); last = now
print("sends", n, "seconds", round(time.time() - t0, 1), "per-second by quarter", marks)
t = time.time(); c.get("/_sandbox/charges"); print("charges", round(time.time() - t, 3))

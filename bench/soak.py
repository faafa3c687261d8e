#!/usr/bin/env python3
"""Soak `wameter serve` under hostile connections (issue 21), loopback only.

For DURATION seconds, against a fresh `serve` on SQLite:
  - IDLE connections that never send a byte (re-opened when the server
    closes them at its header timeout),
  - SLOW connections, half sending their headers a byte a second
    (slowloris), half sending signed-looking headers and then a body a byte a
    second (each holds one of the server's bodies-in-flight permits until
    its request timeout),
  - CLIENTS clients posting signed webhooks as fast as they are answered,
  - a probe opening a new connection for `GET /healthz` every 100 ms,
while serve's resident memory is read every 500 ms. Prints the probe's
latency percentiles, the peak RSS, the webhook answers by status, and
whether the targets hold (healthz p99 < 50 ms, RSS < 300 MB).

    bench/soak.py [--duration 60] [--idle 1000] [--slow 300] [--clients 4] [--bin target/release/wameter]

Bounded by design: every connection goes to 127.0.0.1 and the run ends
after DURATION. Needs a descriptor limit above IDLE + SLOW + a margin for
this process and serve (the script raises its own soft limit, which serve
inherits).
"""

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SECRET = b"soak-secret"
BUSINESS = "106540352242922"


def webhook(n):
    body = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550000000", "phone_number_id": BUSINESS},
            "contacts": [{"profile": {"name": "U"}, "wa_id": f"5511{n % 5000:09d}"}],
            "messages": [{"from": f"5511{n % 5000:09d}", "id": f"wamid.soak-{n}", "timestamp": str(1770717600 + n), "type": "text", "text": {"body": "oi"}}],
        }}]}],
    }
    raw = json.dumps(body, separators=(",", ":")).encode()
    return raw, "sha256=" + hmac.new(SECRET, raw, hashlib.sha256).hexdigest()


async def read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    if length:
        await reader.readexactly(length)
    return status, b"connection: close" in head.lower()


class Run:
    def __init__(self, port, until):
        self.port, self.until = port, until
        self.health = []
        self.health_failures = 0
        self.answers = {}
        self.rss = []
        self.reopened = 0

    def running(self):
        return time.monotonic() < self.until

    async def connect(self):
        return await asyncio.open_connection("127.0.0.1", self.port)

    async def idle(self):
        while self.running():
            try:
                reader, writer = await self.connect()
                # Held until the server closes it (its header timeout).
                await asyncio.wait_for(reader.read(1), timeout=max(0.1, self.until - time.monotonic()))
                writer.close()
                self.reopened += 1
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
                await asyncio.sleep(0.2)

    async def slow_headers(self):
        while self.running():
            try:
                reader, writer = await self.connect()
                request = b"POST /webhook HTTP/1.1\r\nHost: soak\r\nContent-Type: application/json\r\n"
                for byte in request:
                    if not self.running():
                        break
                    writer.write(bytes([byte]))
                    await writer.drain()
                    await asyncio.sleep(1)
                writer.close()
                self.reopened += 1
            except (OSError, ConnectionError):
                await asyncio.sleep(0.2)

    async def slow_body(self):
        while self.running():
            try:
                reader, writer = await self.connect()
                writer.write(b"POST /webhook HTTP/1.1\r\nHost: soak\r\nContent-Type: application/json\r\n"
                             b"X-Hub-Signature-256: sha256=" + b"0" * 64 + b"\r\nContent-Length: 1000000\r\n\r\n")
                await writer.drain()
                while self.running():
                    writer.write(b" ")
                    await writer.drain()
                    await asyncio.sleep(1)
                writer.close()
            except (OSError, ConnectionError):
                self.reopened += 1
                await asyncio.sleep(0.2)

    async def client(self, number):
        n = number * 10_000_000
        while self.running():
            try:
                reader, writer = await self.connect()
                while self.running():
                    n += 1
                    raw, signature = webhook(n)
                    writer.write(b"POST /webhook HTTP/1.1\r\nHost: soak\r\nContent-Type: application/json\r\n"
                                 + f"X-Hub-Signature-256: {signature}\r\nContent-Length: {len(raw)}\r\n\r\n".encode() + raw)
                    await writer.drain()
                    status, close = await read_response(reader)
                    self.answers[status] = self.answers.get(status, 0) + 1
                    if close:
                        break
                writer.close()
            except (OSError, ConnectionError, asyncio.IncompleteReadError):
                self.answers["connection error"] = self.answers.get("connection error", 0) + 1
                await asyncio.sleep(0.05)

    async def probe(self):
        while self.running():
            started = time.perf_counter()
            try:
                reader, writer = await self.connect()
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n")
                await writer.drain()
                status, _ = await asyncio.wait_for(read_response(reader), timeout=5)
                writer.close()
                if status == 200:
                    self.health.append((time.perf_counter() - started) * 1000)
                else:
                    self.health_failures += 1
            except (OSError, ConnectionError, asyncio.TimeoutError, asyncio.IncompleteReadError):
                self.health_failures += 1
            await asyncio.sleep(0.1)

    async def memory(self, pid):
        while self.running():
            with open(f"/proc/{pid}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        self.rss.append(int(line.split()[1]) / 1024)
            await asyncio.sleep(0.5)


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))] if values else float("nan")


async def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--slow", type=int, default=300)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--bin", default="target/release/wameter")
    parser.add_argument("--port", type=int, default=18199)
    args = parser.parse_args()

    needed = args.idle + args.slow + 512
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, needed * 2), hard))

    home = tempfile.mkdtemp(prefix="wameter-soak-")
    accounts = os.path.join(home, "accounts.toml")
    with open(accounts, "w") as f:
        f.write(f'[[business]]\nphone_number_id = "{BUSINESS}"\nwaba = "102290129340398"\ntimezone = "America/Sao_Paulo"\ncurrency = "USD"\n')
    # Enough connection slots for every attacker plus the clients and the
    # probe: what docs/DEPLOYMENT.md says to set for this many.
    slots = args.idle + args.slow + 256
    server = subprocess.Popen(
        [args.bin, "serve", "--listen", f"127.0.0.1:{args.port}", "--database", f"sqlite://{home}/soak.db",
         "--accounts", accounts, "--max-connections", str(slots)],
        env={**os.environ, "WAMETER_APP_SECRET": SECRET.decode(), "WAMETER_API_TOKEN": "soak-token", "WAMETER_LOG": "warn", "WAMETER_HOME": home},
        stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(100):
            line = server.stderr.readline()
            if "listening on" in line or server.poll() is not None:
                break
        if server.poll() is not None:
            sys.exit(f"serve did not start: {server.stderr.read()}")
        run = Run(args.port, time.monotonic() + args.duration)
        tasks = [run.idle() for _ in range(args.idle)]
        tasks += [run.slow_headers() for _ in range(args.slow // 2)]
        tasks += [run.slow_body() for _ in range(args.slow - args.slow // 2)]
        tasks += [run.client(i) for i in range(args.clients)]
        tasks += [run.probe(), run.memory(server.pid)]
        await asyncio.gather(*tasks)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=40)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(home, ignore_errors=True)

    p50, p99, worst = percentile(run.health, 50), percentile(run.health, 99), max(run.health, default=float("nan"))
    peak = max(run.rss, default=float("nan"))
    print(f"held: {args.idle} idle + {args.slow} slow connections for {args.duration:.0f} s ({run.reopened} re-opened after the server closed them)")
    print(f"healthz: {len(run.health)} probes, p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {worst:.2f} ms, {run.health_failures} failed")
    print(f"serve RSS: peak {peak:.0f} MB")
    answered = ", ".join(f"{k}: {v}" for k, v in sorted(run.answers.items(), key=str))
    print(f"webhooks ({args.clients} clients): {answered}")
    ok = p99 < 50 and peak < 300 and run.health_failures == 0
    print("targets (healthz p99 < 50 ms, RSS < 300 MB, no failed probe):", "met" if ok else "NOT met")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    asyncio.run(main())

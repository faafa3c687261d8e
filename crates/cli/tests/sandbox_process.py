"""Starts `wameter sandbox` on a free port for the Python client scripts
(pywa/, heyoo/) and waits for its address.

    with running_sandbox(binary, ["--clock-start", "…"], {"WAMETER_APP_SECRET": "…"}) as base:
        ...
"""
import contextlib
import subprocess
import sys
import threading


@contextlib.contextmanager
def running_sandbox(binary, args, env=None):
    sandbox = subprocess.Popen(
        [binary, "sandbox", "--listen", "127.0.0.1:0", *args],
        env={"WAMETER_LOG": "warn", "PATH": "/usr/bin:/bin", **(env or {})},
        stderr=subprocess.PIPE, text=True,
    )
    try:
        for line in sandbox.stderr:
            if line.startswith("wameter sandbox listening on "):
                base = line.split()[-1]
                break
        else:
            sys.exit("the sandbox did not start")
        # Keep reading what it says, so that it never blocks on a full pipe.
        threading.Thread(target=lambda: [None for _ in sandbox.stderr], daemon=True).start()
        yield base
    finally:
        sandbox.terminate()
        sandbox.wait()

"""heyoo (PyPI), a WhatsApp Cloud API wrapper, sends through `wameter sandbox`.

    python sandbox_client.py /path/to/wameter

heyoo keeps its Graph URLs in two attributes (`base_url`, `url`) and sends
with `requests`; pointing them at the sandbox is the whole change
(README, "Pointing an SDK at the sandbox"). A text inside the customer
service window, a template, and media (upload, URL, download, send by id,
delete) must work as against Meta. Prints one JSON summary line; exits
non-zero with the reason.
"""
import hashlib
import json
import os
import sys
import tempfile

from pathlib import Path

from heyoo import WhatsApp
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from sandbox_process import running_sandbox  # noqa: E402

PHONE = "106540352242922"
USER = "5511999990000"


def main(binary):
    with running_sandbox(binary, ["--clock-start", "2026-11-02T12:00:00Z"]) as base:
        messenger = WhatsApp(token="any-token", phone_number_id=PHONE)
        # The shim: heyoo's two URLs, on the sandbox.
        messenger.base_url = f"{base}/v23.0"
        messenger.url = f"{messenger.base_url}/{PHONE}/messages"

        answer = requests.post(f"{base}/_sandbox/inbound", json={"business": PHONE, "user": f"+{USER}", "text": "Oi!"})
        if answer.status_code != 200:
            sys.exit(f"inbound: {answer.status_code} {answer.text}")

        sent = []

        def check(what, answer):
            wamid = (answer or {}).get("messages", [{}])[0].get("id", "")
            if not wamid.startswith("wamid."):
                sys.exit(f"{what}: {answer!r}")
            sent.append(wamid)

        check("text", messenger.send_message("Olá! Como posso ajudar?", USER))
        check("template", messenger.send_template("hello_world", USER, components=[], lang="en_US"))

        photo = bytes((i * 13) % 256 for i in range(3000))
        with tempfile.TemporaryDirectory() as dir:
            path = os.path.join(dir, "photo.jpg")
            with open(path, "wb") as f:
                f.write(photo)
            uploaded = messenger.upload_media(path)
            if not uploaded or "id" not in uploaded:
                sys.exit(f"upload: {uploaded!r}")
            url = messenger.query_media_url(uploaded["id"])
            if not url:
                sys.exit("query_media_url gave nothing")
            saved = messenger.download_media(url, "image/jpeg", os.path.join(dir, "downloaded"))
            with open(saved, "rb") as f:
                downloaded = f.read()
        if hashlib.sha256(downloaded).digest() != hashlib.sha256(photo).digest():
            sys.exit(f"download: {len(downloaded)} bytes, not the {len(photo)} uploaded")
        check("image by id", messenger.send_image(uploaded["id"], USER, link=False))
        deleted = messenger.delete_media(uploaded["id"])
        if deleted != {"success": True}:
            sys.exit(f"delete: {deleted!r}")
        print(json.dumps({"heyoo": "ok", "sent": len(sent), "downloaded": len(downloaded)}))


if __name__ == "__main__":
    main(sys.argv[1])

#!/usr/bin/env python3
"""Reads webhook bodies (one per line) and writes "sha256=<hmac>\tbody" lines, as Meta
signs them (X-Hub-Signature-256, key = app secret), for bench/wrk/webhooks.lua.
Also writes, for the window query, `business/user?at=<an hour after the user wrote>` of
the first 20,000 user messages to USERS. Usage: sign_bodies.py SECRET IN OUT USERS"""
import hashlib, hmac, json, sys

secret, in_path, out_path, users_path = sys.argv[1].encode(), sys.argv[2], sys.argv[3], sys.argv[4]
users = []
with open(in_path) as bodies, open(out_path, "w") as out:
    for line in bodies:
        body = line.rstrip("\n")
        if not body:
            continue
        signature = hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()
        out.write("sha256=%s\t%s\n" % (signature, body))
        value = json.loads(body)["entry"][0]["changes"][0]["value"]
        for message in value.get("messages", []):
            business = value["metadata"]["phone_number_id"]
            users.append("%s/%s?at=%d" % (business, message["from"], int(message["timestamp"]) + 3600))
with open(users_path, "w") as out:
    out.write("\n".join(users[:20000]) + "\n")

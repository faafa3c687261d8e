#!/usr/bin/env python3
"""How many objects of the webhook fixtures list their keys in the order
`wameter_meta::outgoing::META_KEY_ORDER` writes them (the sandbox's webhook
bodies). Prints objects and whole files in that order, and the most common
objects that are not.

    python3 scripts/webhook-key-order.py
"""
import collections
import glob
import json
import re

source = open("crates/meta/src/outgoing.rs").read()
block = source[source.index("pub const META_KEY_ORDER"):]
order = re.findall(r'"([a-z_0-9]+)"', block[: block.index("];")])
rank = {key: index for index, key in enumerate(order)}


def place(key):
    return (rank.get(key, len(order)), key)


objects = in_order = files = files_in_order = 0
others = collections.Counter()
for path in sorted(glob.glob("crates/log/tests/fixtures/webhooks/*.json")):
    try:
        body = json.load(open(path))
    except ValueError:
        continue
    files += 1
    whole = True
    stack = [("", body)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, dict):
            objects += 1
            keys = list(value)
            if keys == sorted(keys, key=place):
                in_order += 1
            else:
                whole = False
                others[(where, tuple(keys))] += 1
            stack.extend((f"{where}.{k}", v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((f"{where}[]", v) for v in value)
    files_in_order += whole
print(f"objects in META_KEY_ORDER: {in_order} of {objects}; files entirely: {files_in_order} of {files}")
for (where, keys), count in others.most_common(8):
    print(f"  {count} × {where or '(top)'}: {', '.join(keys)}")

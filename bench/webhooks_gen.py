#!/usr/bin/env python3
"""Writes a log of Meta webhook POST bodies, one per line, for the webhook benchmark:
N users each write once (an inbound message webhook) and get one free-form reply whose
sent / delivered / read statuses carry PMP pricing, as Meta sends them. No outbound events:
wameter infers them from the pricing. Deterministic (seeded). Usage: webhooks_gen.py N OUT"""
import json, random, sys

n, out_path = int(sys.argv[1]), sys.argv[2]
random.seed(7)
business = "106540352242922"
base = 1770681600  # 2026-02-10T00:00:00Z
metadata = {"display_phone_number": "15550783881", "phone_number_id": business}

def envelope(value):
    return json.dumps({"object": "whatsapp_business_account",
                       "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": value}]}]})

with open(out_path, "w") as out:
    for i in range(n):
        user = "55119%08d" % random.randrange(10**8)
        t = base + i * 30
        out.write(envelope({"messaging_product": "whatsapp", "metadata": metadata,
                            "contacts": [{"profile": {"name": "K"}, "wa_id": user}],
                            "messages": [{"from": user, "id": "wamid.in%d" % i, "timestamp": str(t),
                                          "type": "text", "text": {"body": "hello there"}}]}) + "\n")
        for status, delay in (("sent", 60), ("delivered", 62), ("read", 300)):
            out.write(envelope({"messaging_product": "whatsapp", "metadata": metadata,
                                "statuses": [{"id": "wamid.out%d" % i, "status": status, "timestamp": str(t + delay),
                                              "recipient_id": user,
                                              "pricing": {"billable": False, "pricing_model": "PMP",
                                                          "type": "free_customer_service", "category": "service"}}]}) + "\n")

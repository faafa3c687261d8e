#!/usr/bin/env python3
"""Derives the JSON Schemas the sandbox's conformance tests use from Meta's
official OpenAPI description of the WhatsApp Business Messaging API.

    scripts/derive-openapi-schemas.py path/to/business-messaging-api_v23.0.yaml

writes crates/sandbox/tests/data/meta-openapi/{schemas.json,examples.json}.
The tests read only those files; this script is how they were made.

Kept from Meta's schemas: field names, types, required fields, enums, array
items, `additionalProperties: false` and references. Dropped: prose,
examples, formats and patterns (one of Meta's patterns, `^[2-6, 11-14]$` on a
button index, rejects Meta's own example "0").

Corrections, each forced by Meta's own examples in the same file:
- `allOf` of objects is merged into one object. Read literally, Meta's
  `allOf: [BaseMessageProperties, {additionalProperties: false, ...}]`
  rejects every message (the second part forbids `to`); OpenAPI tools read
  it as one object, and so do we.
- `oneOf` becomes `anyOf`: Meta's `oneOf`s are discriminated unions whose
  branches overlap without the discriminator.
- `BaseMessageProperties` does not require `recipient_type` or `type`, and
  `LanguageObject` does not require `policy`: Meta's request examples omit
  them (and the Graph API defaults them).
- Webhook messages (`IncomingMessage`) reuse the *send* schemas, which
  require `to` and `recipient_type`; a user's message has neither. Incoming
  messages are checked against the type-specific part only.
"""
import json
import re
import sys
from pathlib import Path

import yaml

KEEP = {"type", "properties", "required", "enum", "items", "anyOf", "oneOf", "allOf", "additionalProperties", "$ref"}
NOT_REQUIRED = {"BaseMessageProperties": {"recipient_type", "type"}, "LanguageObject": {"policy"}}


def convert(node, defs, incoming=False):
    if isinstance(node, list):
        return [convert(n, defs, incoming) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[1]
        return {"$ref": f"#/$defs/{name}"}
    out = {}
    for key, value in node.items():
        if key not in KEEP:
            continue
        if key == "properties":
            out[key] = {name: convert(v, defs, incoming) for name, v in value.items()}
        elif key in ("oneOf", "anyOf"):
            out["anyOf"] = convert(value, defs, incoming)
        elif key == "allOf":
            continue
        elif key in ("items", "additionalProperties"):
            out[key] = convert(value, defs, incoming)
        else:
            out[key] = value
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if "allOf" in node:
        merged = {"type": "object", "properties": {}, "required": []}
        for part in node["allOf"]:
            if "$ref" in part:
                name = part["$ref"].rsplit("/", 1)[1]
                if incoming and name == "BaseMessageProperties":
                    continue
                part = convert(SCHEMAS[name], defs, incoming)
                if name in NOT_REQUIRED:
                    part["required"] = [r for r in part.get("required", []) if r not in NOT_REQUIRED[name]]
            else:
                part = convert(part, defs, incoming)
            merged["properties"].update(part.get("properties", {}))
            merged["required"] += [r for r in part.get("required", []) if r not in merged["required"]]
            if part.get("additionalProperties") is False and not incoming:
                merged["additionalProperties"] = False
        out.update(merged)
        if not out["required"]:
            del out["required"]
    return out


def main():
    source = Path(sys.argv[1])
    spec = yaml.safe_load(source.read_text())
    global SCHEMAS
    SCHEMAS = spec["components"]["schemas"]
    defs = {}
    for name, schema in SCHEMAS.items():
        converted = convert(schema, defs)
        if name in NOT_REQUIRED and "required" in converted:
            converted["required"] = [r for r in converted["required"] if r not in NOT_REQUIRED[name]]
        defs[name] = converted
    # Webhook messages: the type-specific part of each send schema.
    incoming = []
    for variant in SCHEMAS["IncomingMessage"]["oneOf"]:
        name = variant["$ref"].rsplit("/", 1)[1]
        defs["Incoming" + name] = convert(SCHEMAS[name], defs, incoming=True)
        incoming.append({"$ref": f"#/$defs/Incoming{name}"})
    defs["IncomingMessage"] = {"anyOf": incoming}

    paths = spec["paths"]
    def body(path, method):
        return paths[path][method]["requestBody"]["content"]["application/json"]
    def ok(path, method):
        return paths[path][method]["responses"]["200"]["content"]["application/json"]
    templates = "/{Version}/{WABA-ID}/message_templates"
    roots = {
        "send_message_request": convert(body("/{Version}/{Phone-Number-ID}/messages", "post")["schema"], defs),
        "send_message_response": convert(ok("/{Version}/{Phone-Number-ID}/messages", "post")["schema"], defs),
        "error_response": {"$ref": "#/$defs/ErrorResponse"},
        "webhook": {"$ref": "#/$defs/WebhookPayload"},
        "status_value": {"$ref": "#/$defs/StatusMessageValue"},
        "incoming_message_value": {"$ref": "#/$defs/IncomingMessageValueGeneral"},
        "phone_number": convert(ok("/{Version}/{Phone-Number-ID}", "get")["schema"], defs),
        "templates_list_response": convert(ok(templates, "get")["schema"], defs),
        "template_create_request": convert(body(templates, "post")["schema"], defs),
        "template_create_response": convert(ok(templates, "post")["schema"], defs),
        "media_upload_response": convert(ok("/{Version}/{Phone-Number-ID}/media", "post")["schema"], defs),
        "media_url_response": convert(ok("/{Version}/{Media-ID}", "get")["schema"], defs),
        "media_delete_response": convert(ok("/{Version}/{Media-ID}", "delete")["schema"], defs),
    }
    used, queue = set(), [json.dumps(roots)]
    while queue:
        for name in re.findall(r'#/\$defs/([A-Za-z0-9_]+)', queue.pop()):
            if name not in used:
                used.add(name)
                queue.append(json.dumps(defs[name]))
    out = Path(__file__).resolve().parent.parent / "crates/sandbox/tests/data/meta-openapi"
    document = {
        "$comment": f"Derived by scripts/derive-openapi-schemas.py from Meta's {source.name} (MIT, Meta Platforms); see PROVENANCE.md.",
        "roots": roots,
        "$defs": {name: defs[name] for name in sorted(used)},
    }
    (out / "schemas.json").write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
    examples = {name: example["value"] for name, example in body("/{Version}/{Phone-Number-ID}/messages", "post")["examples"].items()}
    (out / "examples.json").write_text(json.dumps(examples, indent=1, sort_keys=True) + "\n")
    print(f"{len(used)} schemas, {len(examples)} request examples -> {out}")


SCHEMAS = {}
main()

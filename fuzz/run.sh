#!/usr/bin/env bash
# Fuzzes the log-line / webhook-envelope reader, seeded with the 123 real
# webhook payloads (one compact line each). Needs a nightly toolchain and
# `cargo install cargo-fuzz`. Usage: fuzz/run.sh [SECONDS] (default 600).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-600}"
corpus=fuzz/corpus/webhook_envelope
mkdir -p "$corpus"
for f in crates/log/tests/fixtures/webhooks/*.json; do
    python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))))' "$f" > "$corpus/$(basename "$f" .json)"
done
cargo +nightly fuzz run webhook_envelope "$corpus" -- -max_total_time="$seconds" -max_len=8192

#!/usr/bin/env bash
# Fuzzes every parser that takes user input (docs/TESTING.md, "Fuzzing"),
# each target for CPU_SECONDS of its own CPU time (not wall time: a
# niced run on a busy machine still gets its full share), one after
# another, seeded from the
# project's own real inputs: Meta's webhook payloads, the logs, accounts
# files, rate and tier CSVs and analytics answers under crates/ and data/.
# Prints each run's executions, coverage and CPU time; a crash stops the
# script with the reproducer under fuzz/artifacts/<target>/.
#
#   fuzz/run.sh CPU_SECONDS [TARGET…]     targets: log webhook accounts rate_file analytics sandbox
#
# Needs a nightly toolchain and `cargo install cargo-fuzz`. `nice` it to
# keep a machine usable: the CPU time printed is what the target got.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:?usage: fuzz/run.sh CPU_SECONDS [TARGET…]}"
shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(log webhook accounts rate_file analytics sandbox)

seed() { # target → fills fuzz/corpus/<target> once
  local dir=fuzz/corpus/$1
  [ -d "$dir" ] && return 0
  mkdir -p "$dir"
  case "$1" in
    log)
      for f in crates/log/tests/fixtures/webhooks/*.json; do
        python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))))' "$f" > "$dir/$(basename "$f" .json)"
      done
      for f in crates/cli/tests/data/meta/*.ndjson crates/cli/tests/data/calls/*.ndjson; do head -c 8000 "$f" > "$dir/$(basename "$f")"; done
      for f in crates/log/tests/fixtures/calling/*.json; do
        python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))))' "$f" > "$dir/calling-$(basename "$f" .json)"
      done
      printf '%s\n' '{"type":"call","at":"2026-08-03T10:00:00Z","business":"B","user":"+254700000001","id":"wacid.a","direction":"business_initiated","duration":56,"status":"failed","error":138021}' \
        '{"type":"agent_usage","at":"2026-08-03T12:00:00Z","business":"B","user":"+5511999990000","id":"wamid.a1","tokens":21500}' > "$dir/calls-and-agent.ndjson"
      cargo run -q --release -p wameter -- gen --events 40 --seed 3 --out "$dir/generated.ndjson" >/dev/null
      ;;
    webhook)
      cp crates/log/tests/fixtures/webhooks/*.json "$dir/"
      for f in crates/log/tests/fixtures/calling/*.json; do cp "$f" "$dir/calling-$(basename "$f")"; done
      ;;
    accounts)
      # The accounts files the tests write, as TOML.
      python3 - "$dir" <<'EOF'
import re, sys, pathlib
n = 0
for path in pathlib.Path("crates/cli/tests").rglob("*.rs"):
    for block in re.findall(r'r#?"(\[\[business\]\][^"]*)"#?', path.read_text()):
        n += 1
        (pathlib.Path(sys.argv[1]) / f"{path.stem}-{n}.toml").write_text(block)
EOF
      ;;
    rate_file)
      for f in data/ratecards/*.csv data/calling/*.csv crates/core/src/ratecard/testdata/*.csv crates/cli/tests/data/whatif/*.csv; do head -c 6000 "$f" > "$dir/$(basename "$f")"; done
      ;;
    analytics)
      cp crates/cli/tests/data/meta/pricing_analytics.json "$dir/"
      ;;
    sandbox)
      cat > "$dir/session" <<'EOF'
POST /_sandbox/inbound {"business":"106540352242922","user":"5511987654321","text":"olá","entry_point":"ad"}
POST /v23.0/106540352242922/messages {"messaging_product":"whatsapp","to":"5511987654321","type":"text","text":{"body":"hi"}}
POST /_sandbox/clock {"advance_seconds":90000}
POST /v23.0/106540352242922/messages {"messaging_product":"whatsapp","to":"5511987654321","type":"template","template":{"name":"hello_world","language":{"code":"en_US"}}}
POST /_sandbox/clock {"set":"2026-12-01T00:00:00Z"}
GET /_sandbox/charges
GET /_sandbox/webhooks
EOF
      cat > "$dir/media" <<'EOF'
POST /v23.0/106540352242922/media?messaging_product=whatsapp MULTIPART --b\nContent-Disposition: form-data; name="file"; filename="a.jpg"\nContent-Type: image/jpeg\n\n0123456789\n--b--\n
GET /v23.0/2000000000000001
GET /_sandbox/media/2000000000000001
POST /_sandbox/inbound {"business":"106540352242922","user":"5511987654321","text":"foto?"}
POST /v23.0/106540352242922/messages {"messaging_product":"whatsapp","to":"5511987654321","type":"image","image":{"id":"2000000000000001"}}
DELETE /v23.0/2000000000000001?phone_number_id=106540352242922
EOF
      cat > "$dir/calls" <<'EOF'
POST /v23.0/106540352242922/calls {"messaging_product":"whatsapp","to":"254700000001","action":"connect","session":{"sdp_type":"offer","sdp":"v=0"}}
POST /_sandbox/calls/wacid.sandbox.1/answer {}
POST /_sandbox/clock {"advance_seconds":56}
POST /v23.0/106540352242922/calls {"messaging_product":"whatsapp","call_id":"wacid.sandbox.1","action":"terminate"}
POST /_sandbox/calls {"business":"106540352242922","user":"254700000002"}
POST /v23.0/106540352242922/calls {"messaging_product":"whatsapp","call_id":"wacid.sandbox.2","action":"accept"}
POST /_sandbox/calls/wacid.sandbox.2/hang_up {}
POST /v23.0/102290129340398/message_templates {"name":"capped","language":"en_US","category":"MARKETING","components":[{"type":"BODY","text":"Sale"}],"optimization_spec":{"bid_amount":1000}}
POST /v23.0/106540352242922/marketing_messages {"messaging_product":"whatsapp","to":"5511987654321","type":"template","template":{"name":"capped","language":{"code":"en_US"}}}
GET /_sandbox/charges
EOF
      cat > "$dir/templates" <<'EOF'
POST /v23.0/102290129340398/message_templates {"name":"order_update","language":"en_US","category":"UTILITY","components":[{"type":"BODY","text":"Order {{1}}"}]}
GET /v23.0/102290129340398/message_templates?summary=total_count
POST /_sandbox/templates/category {"name":"order_update","category":"MARKETING"}
POST /_sandbox/templates/status {"name":"order_update","status":"PAUSED"}
GET /v23.0/106540352242922
GET /_sandbox
EOF
      ;;
  esac
}

clk=$(getconf CLK_TCK)
for target in "${targets[@]}"; do
  seed "$target"
  cargo +nightly fuzz build "$target" 2>/dev/null
  log=fuzz/corpus/$target.log
  mkdir -p "fuzz/artifacts/$target"
  start=$(date +%s)
  "fuzz/target/x86_64-unknown-linux-gnu/release/$target" "fuzz/corpus/$target" \
    -artifact_prefix="fuzz/artifacts/$target/" -max_len=16384 -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 >"$log" 2>&1 &
  fuzzer=$!
  # Stop it (SIGINT: libFuzzer prints its final stats) once it has had
  # its CPU time.
  cpu=0
  while kill -0 "$fuzzer" 2>/dev/null; do
    cpu=$(awk -v clk="$clk" '{printf "%d", ($14 + $15) / clk}' "/proc/$fuzzer/stat" 2>/dev/null || echo "$cpu")
    if [ "$cpu" -ge "$seconds" ]; then kill -INT "$fuzzer"; break; fi
    sleep 5
  done
  if ! wait "$fuzzer" && ! grep -q "stat::number_of_executed_units" "$log"; then
    tail -40 "$log"; echo "$target: CRASH (see fuzz/artifacts/$target/)"; exit 1
  fi
  if ls "fuzz/artifacts/$target"/* >/dev/null 2>&1; then
    tail -40 "$log"; echo "$target: CRASH (see fuzz/artifacts/$target/)"; exit 1
  fi
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo '?')
  echo "$target: clean, $(( $(date +%s) - start )) s wall, ${cpu} s CPU, $execs executions, $cov edges, corpus $(ls "fuzz/corpus/$target" | wc -l)"
done

#!/usr/bin/env bash
# Runs every test, nothing skipped: what CI runs and the README's second
# command. Starts a throwaway PostgreSQL (stopped again at the end), and
# installs pywa and heyoo, DuckDB, pandas, pyarrow, schemathesis and
# Playwright (PyPI), whatsapp-api-js (npm) and Chromium (Debian) the first
# time; a missing one is then a test failure, not a skip. The dashboard's
# screenshots land in target/screenshots/.
#
#   scripts/test.sh [cargo test arguments…]
#
# Plain `cargo test --workspace` runs the rest and names each test it
# skips for want of these.
set -euo pipefail
cd "$(dirname "$0")/.."

pg_log="$(mktemp)"
if ! WAMETER_TEST_POSTGRES="$(scripts/postgres-for-tests.sh 2>"$pg_log")"; then
  cat "$pg_log" >&2
  exit 1
fi
export WAMETER_TEST_POSTGRES
pg_dir="$(sed -n 's/^PostgreSQL test cluster in \(.*\) on port .*/\1/p' "$pg_log")"
stop_postgres() {
  [ -n "$pg_dir" ] || return 0
  local pg_ctl
  pg_ctl="$(ls /usr/lib/postgresql/*/bin/pg_ctl | tail -1)"
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$pg_ctl" -D "$pg_dir" stop -m fast >/dev/null 2>&1 || true
  else "$pg_ctl" -D "$pg_dir" stop -m fast >/dev/null 2>&1 || true; fi
  rm -rf "$pg_dir" "$pg_log"
}
trap stop_postgres EXIT

# pywa and heyoo (PyPI) for the sandbox's Python client tests.
WAMETER_TEST_PYTHON="$(scripts/pywa-for-tests.sh)"
export WAMETER_TEST_PYTHON
# whatsapp-api-js (npm) for the sandbox's Node client tests.
WAMETER_TEST_WHATSAPP_API_JS="$(scripts/whatsapp-api-js-for-tests.sh)"
export WAMETER_TEST_WHATSAPP_API_JS
# DuckDB, pandas and pyarrow (PyPI) to read the CSV and Parquet exports back.
WAMETER_TEST_ANALYTICS_PYTHON="$(scripts/analytics-for-tests.sh)"
export WAMETER_TEST_ANALYTICS_PYTHON
# schemathesis (PyPI) to test the API against its own OpenAPI document.
WAMETER_TEST_SCHEMATHESIS="$(scripts/schemathesis-for-tests.sh)"
export WAMETER_TEST_SCHEMATHESIS
# Debian's Chromium and Playwright (PyPI) for the dashboard's browser test.
WAMETER_TEST_BROWSER_PYTHON="$(scripts/browser-for-tests.sh)"
export WAMETER_TEST_BROWSER_PYTHON
# A dependency missing now is a failure, not a skip.
export WAMETER_TEST_ALL=1

cargo test --workspace "$@"
# The benchmarks are not tests, but they must build: one did not, unseen,
# for sessions after a type it used changed.
cargo test --workspace --benches --no-run --quiet

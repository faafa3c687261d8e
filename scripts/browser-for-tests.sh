#!/usr/bin/env bash
# Makes what the dashboard's browser test needs (crates/cli/tests/dashboard.rs):
# Debian's Chromium, and a Python virtual environment with Playwright
# (PyPI) to drive it; prints the environment's Python. Playwright drives the
# system Chromium (/usr/bin/chromium): nothing is downloaded from elsewhere.
#
#   export WAMETER_TEST_BROWSER_PYTHON="$(scripts/browser-for-tests.sh)"
#
# The Playwright version is pinned so that a new release cannot change a
# test's verdict.
set -euo pipefail
cd "$(dirname "$0")/.."
PLAYWRIGHT_VERSION="1.65.3"
venv="target/browser-venv"

if ! command -v chromium >/dev/null 2>&1; then
  echo "installing chromium…" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 && apt-get install -y -qq chromium >&2
fi
if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  echo "installing python3-venv…" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 && apt-get install -y -qq python3 python3-venv >&2
fi
if ! "$venv/bin/python" -c "import sys; from importlib.metadata import version; sys.exit(version('playwright') != '$PLAYWRIGHT_VERSION')" >/dev/null 2>&1; then
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check "playwright==$PLAYWRIGHT_VERSION" >&2
fi
echo "$(pwd)/$venv/bin/python"

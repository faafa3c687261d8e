#!/usr/bin/env bash
# Makes a Python virtual environment with schemathesis (PyPI), which tests
# `wameter serve` against its own /openapi.json (crates/cli/tests/openapi.rs),
# and prints the path of its `schemathesis` command.
#
#   export WAMETER_TEST_SCHEMATHESIS="$(scripts/schemathesis-for-tests.sh)"
#
# Installs python3 and venv from Debian when they are missing. The version is
# pinned so that a new release cannot change a test's verdict.
set -euo pipefail
cd "$(dirname "$0")/.."
SCHEMATHESIS_VERSION="4.32.5"
venv="target/schemathesis-venv"

if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  echo "installing python3-venv…" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 && apt-get install -y -qq python3 python3-venv >&2
fi
if ! "$venv/bin/python" -c "import sys; from importlib.metadata import version; sys.exit(version('schemathesis') != '$SCHEMATHESIS_VERSION')" >/dev/null 2>&1; then
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" >&2
fi
echo "$(pwd)/$venv/bin/schemathesis"

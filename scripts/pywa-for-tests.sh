#!/usr/bin/env bash
# Makes a Python virtual environment with pywa (a real WhatsApp Cloud API
# client library, from PyPI) for the sandbox's client test, and prints its
# Python.
#
#   export WAMETER_TEST_PYTHON="$(scripts/pywa-for-tests.sh)"
#
# Installs python3 and venv from Debian when they are missing. The version
# is pinned so that a new pywa release cannot change the test's verdict.
set -euo pipefail
cd "$(dirname "$0")/.."
PYWA_VERSION="4.5.0"
venv="target/pywa-venv"

if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  echo "installing python3-venv…" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 && apt-get install -y -qq python3 python3-venv >&2
fi
if ! "$venv/bin/python" -c "import pywa, sys; sys.exit(pywa.__version__ != '$PYWA_VERSION')" >/dev/null 2>&1; then
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check "pywa==$PYWA_VERSION" >&2
fi
echo "$(pwd)/$venv/bin/python"

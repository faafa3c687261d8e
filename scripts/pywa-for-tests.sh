#!/usr/bin/env bash
# Makes a Python virtual environment with pywa and heyoo (real WhatsApp Cloud
# API client libraries, from PyPI) for the sandbox's client tests, and prints
# its Python.
#
#   export WAMETER_TEST_PYTHON="$(scripts/pywa-for-tests.sh)"
#
# Installs python3 and venv from Debian when they are missing. The version
# versions are pinned so that a new release cannot change a test's verdict.
set -euo pipefail
cd "$(dirname "$0")/.."
PYWA_VERSION="4.5.0"
HEYOO_VERSION="0.1.2"
venv="target/pywa-venv"

if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  echo "installing python3-venv…" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 && apt-get install -y -qq python3 python3-venv >&2
fi
if ! "$venv/bin/python" -c "import pywa, sys; from importlib.metadata import version; sys.exit(pywa.__version__ != '$PYWA_VERSION' or version('heyoo') != '$HEYOO_VERSION')" >/dev/null 2>&1; then
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check "pywa==$PYWA_VERSION" "heyoo==$HEYOO_VERSION" >&2
fi
echo "$(pwd)/$venv/bin/python"

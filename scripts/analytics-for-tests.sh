#!/usr/bin/env bash
# Makes a Python virtual environment with DuckDB, pandas and pyarrow (PyPI)
# for the export tests (`replay --format csv|parquet` read back by the tools
# analysts use), and prints its Python.
#
#   export WAMETER_TEST_ANALYTICS_PYTHON="$(scripts/analytics-for-tests.sh)"
#
# Installs python3 and venv from Debian when they are missing. Versions are
# pinned so that a new release cannot change a test's verdict.
set -euo pipefail
cd "$(dirname "$0")/.."
DUCKDB_VERSION="1.5.6"
PANDAS_VERSION="2.3.3"
PYARROW_VERSION="22.0.0"
venv="target/analytics-venv"

if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  echo "installing python3-venv…" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 && apt-get install -y -qq python3 python3-venv >&2
fi
if ! "$venv/bin/python" -c "import sys, duckdb, pandas, pyarrow; sys.exit((duckdb.__version__, pandas.__version__, pyarrow.__version__) != ('$DUCKDB_VERSION', '$PANDAS_VERSION', '$PYARROW_VERSION'))" >/dev/null 2>&1; then
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check "duckdb==$DUCKDB_VERSION" "pandas==$PANDAS_VERSION" "pyarrow==$PYARROW_VERSION" >&2
fi
echo "$(pwd)/$venv/bin/python"

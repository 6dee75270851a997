#!/usr/bin/env bash
# Installs the Python package the tests read Parquet and CSV files back with
# (DuckDB) into a virtual environment of its own, never globally:
#
#   $ETHPIPE_TOOLS_DIR (default ~/.cache/ethpipe-tools)
#     python/bin/python   the interpreter the tests run (ethpipe_testkit::python())
#
# Idempotent and fast when nothing changed: pip runs only when the pin below
# differs from the stamp of the last install.
set -euo pipefail

DUCKDB_VERSION=1.5.6

dir="${ETHPIPE_TOOLS_DIR:-$HOME/.cache/ethpipe-tools}"
venv="$dir/python"
stamp="$venv/.ethpipe-pins"
pins="duckdb==$DUCKDB_VERSION"

if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$pins" ]; then
  exit 0
fi

if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing python3-venv with apt-get" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null || {
      apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null; }
  else
    echo "error: python3 with venv is missing; install it (e.g. sudo apt-get install python3-venv)" >&2
    exit 1
  fi
fi

mkdir -p "$dir"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check $pins
echo "$pins" > "$stamp"
echo "python tools ready: $venv/bin/python ($pins)" >&2

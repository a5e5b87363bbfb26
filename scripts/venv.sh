#!/usr/bin/env bash
# Usage: scripts/venv.sh VENV PYTHON PROFILE
# Creates VENV with PYTHON if it is missing, installs the test dependencies (tests/requirements.txt) and the
# pytest plugin once (again when either changes), and (re)builds the native module into it with `maturin develop`
# (editable: python/ is imported in place; the .so lands in python/hotswap/ under an ABI-tagged name, so several
# interpreters share the tree).
# Each interpreter gets its own cargo target directory, so switching between them does not rebuild pyo3.
set -euo pipefail
venv=$1 python=$2 profile=${3:-release}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
stamp="$venv/.hotswap-deps"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ tests/requirements.txt -nt "$stamp" ] \
    || { [ -f pytest_plugin/pyproject.toml ] && [ pytest_plugin/pyproject.toml -nt "$stamp" ]; }; then
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q -r tests/requirements.txt
  if [ -f pytest_plugin/pyproject.toml ]; then "$venv/bin/python" -m pip install -q --no-deps -e pytest_plugin; fi
  touch "$stamp"
fi
tag=$("$venv/bin/python" -c 'import sys; print("py%d%d" % sys.version_info[:2])')
export CARGO_TARGET_DIR="$root/target/$tag"
VIRTUAL_ENV="$root/$venv" PATH="$root/$venv/bin:$PATH" "$venv/bin/maturin" develop --profile "$profile"
"$venv/bin/python" -c 'import hotswap._native'

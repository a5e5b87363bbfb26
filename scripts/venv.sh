#!/usr/bin/env bash
# Usage: scripts/venv.sh [--no-build] VENV PYTHON PROFILE
# Creates VENV with PYTHON if it is missing, installs the test dependencies (tests/requirements.txt) and the
# pytest plugin once (again when either changes), and (re)builds the native module into it with `maturin develop`
# (editable: python/ is imported in place; the .so lands in python/hotswap/ under an ABI-tagged name, so several
# interpreters share the tree). PROFILE is a cargo profile: release, debug-checks, or dev (`cargo test`'s).
# With --no-build, only the venv and its packages.
# Every interpreter builds in the one cargo target directory: dependencies (rustpython-parser, notify, ...) are
# compiled once per profile (the dev profile's are `cargo test`'s too), and only pyo3 and hotswap itself are
# compiled again for another interpreter.
set -euo pipefail
build=yes
if [ "${1:-}" = --no-build ]; then build=no; shift; fi
venv=$1 python=$2 profile=${3:-release}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
stamp="$venv/.hotswap-deps"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ tests/requirements.txt -nt "$stamp" ] \
    || { [ -f pytest_plugin/pyproject.toml ] && [ pytest_plugin/pyproject.toml -nt "$stamp" ]; }; then
  # The interpreter's own pip (no upgrade: that was a download and an install per venv). Bytecode is still
  # compiled at install time: compiled later, under pytest's filterwarnings=error, a package's SyntaxWarning
  # would fail the import.
  pip=("$venv/bin/python" -m pip install -q --disable-pip-version-check)
  "${pip[@]}" -r tests/requirements.txt
  if [ -f pytest_plugin/pyproject.toml ]; then "${pip[@]}" --no-deps -e pytest_plugin; fi
  touch "$stamp"
fi
[ "$build" = yes ] || exit 0
VIRTUAL_ENV="$root/$venv" PATH="$root/$venv/bin:$PATH" "$venv/bin/maturin" develop --profile "$profile"
"$venv/bin/python" -c 'import hotswap._native'

#!/usr/bin/env bash
# Usage: scripts/test-pythons.sh PROFILE [VERSION ...]
# Runs every pytest suite (tests/ and pytest_plugin/tests/) under each CPython 3.9 ... 3.13 found on this
# machine (or only the VERSIONs given), each in its own venv under .venvs/. Says which ran and which were
# skipped; fails if any suite fails or if 3.11 is missing.
set -uo pipefail
profile=${1:-release}
shift || true
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
wanted=" $* "
ran=() skipped=() failed=()
have_311=no
while read -r version path; do
  if [ "$path" = "-" ]; then
    skipped+=("$version (not installed)")
    continue
  fi
  [ "$version" = "3.11" ] && have_311=yes
  if [ -n "${*:-}" ] && [[ "$wanted" != *" $version "* ]]; then
    skipped+=("$version (not asked for)")
    continue
  fi
  echo "=== CPython $version ($path), profile $profile"
  venv=".venvs/$version"
  [ "$profile" = release ] || venv=".venvs/$version-$profile"
  if ! scripts/venv.sh "$venv" "$path" "$profile"; then
    failed+=("$version (build)")
    continue
  fi
  suites=(tests)
  [ -d pytest_plugin/tests ] && suites+=(pytest_plugin/tests)
  if "$venv/bin/python" -m pytest -q "${suites[@]}"; then
    ran+=("$version")
  else
    failed+=("$version")
  fi
done < <(scripts/pythons.sh)

echo
echo "hotswap test summary: ran on: ${ran[*]:-none}"
[ ${#skipped[@]} -gt 0 ] && echo "skipped: $(IFS=,; echo "${skipped[*]}")"
if [ "$have_311" != yes ]; then
  echo "FAILED: CPython 3.11 is required and was not found"
  exit 1
fi
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED on: ${failed[*]}"
  exit 1
fi

#!/usr/bin/env bash
# Usage: scripts/test-pythons.sh PROFILE [VERSION ...] [--with PROFILE:VERSION ...]
# Runs every pytest suite (tests/ and pytest_plugin/tests/) under each CPython 3.9 ... 3.13 found on this
# machine (or only the VERSIONs given) against a PROFILE build, each in its own venv under .venvs/; each
# `--with PROFILE:VERSION` adds one more run (`--with dev:3.11`: the build `cargo test` uses, with debug
# assertions and overflow checks). Says which ran and which were skipped; fails if any suite fails or if 3.11 is
# missing.
#
# To be quick on a small machine: every venv and its packages are prepared at once (network and disk); the
# builds run one after another in the one cargo target directory (dependencies compiled once per profile); each
# suite starts as soon as its build is done, up to HOTSWAP_TEST_JOBS (default 2) suites at a time, its output
# kept and printed whole, in order, when it ends.
set -uo pipefail
profile=${1:-release}
shift || true
wanted=() extra=()
while [ $# -gt 0 ]; do
  case $1 in
    --with) extra+=("$2"); shift 2 ;;
    *) wanted+=("$1"); shift ;;
  esac
done
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
jobs=${HOTSWAP_TEST_JOBS:-2}
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
suites=(tests)
[ -d pytest_plugin/tests ] && suites+=(pytest_plugin/tests)

declare -A path_of
runs=() skipped=() ran=() failed=()
have_311=no
while read -r version path; do
  if [ "$path" = "-" ]; then
    skipped+=("$version (not installed)")
    continue
  fi
  path_of[$version]=$path
  [ "$version" = "3.11" ] && have_311=yes
  if [ ${#wanted[@]} -gt 0 ] && [[ " ${wanted[*]} " != *" $version "* ]]; then
    skipped+=("$version (not asked for)")
    continue
  fi
  runs+=("$version:$profile")
done < <(scripts/pythons.sh)
for spec in "${extra[@]}"; do
  if [ -n "${path_of[${spec#*:}]:-}" ]; then runs+=("${spec#*:}:${spec%%:*}"); else skipped+=("${spec#*:} ${spec%%:*} (not installed)"); fi
done

venv_of() { if [ "$2" = release ]; then echo ".venvs/$1"; else echo ".venvs/$1-$2"; fi; }
label_of() { if [ "$2" = "$profile" ]; then echo "$1"; else echo "$1 ($2)"; fi; }

# 1. Venvs and their packages, all at once.
declare -A prep_pid
for run in "${runs[@]}"; do
  version=${run%%:*} prof=${run#*:}
  scripts/venv.sh --no-build "$(venv_of "$version" "$prof")" "${path_of[$version]}" >"$logs/prep-$version-$prof" 2>&1 &
  prep_pid[$run]=$!
done

# 2. Builds one after another; each suite starts when its build is done.
declare -A suite_pid
for run in "${runs[@]}"; do
  version=${run%%:*} prof=${run#*:}
  venv=$(venv_of "$version" "$prof")
  if ! wait "${prep_pid[$run]}"; then
    cat "$logs/prep-$version-$prof"
    failed+=("$(label_of "$version" "$prof") (venv)")
    continue
  fi
  echo "=== CPython $version (${path_of[$version]}), profile $prof: build"
  if ! scripts/venv.sh "$venv" "${path_of[$version]}" "$prof"; then
    failed+=("$(label_of "$version" "$prof") (build)")
    continue
  fi
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
  # A background job of a non-interactive shell starts with SIGINT ignored, and Python then leaves it ignored
  # (the Ctrl-C tests would see nothing): restore the default before starting the suite.
  (trap - INT; exec "$venv/bin/python" -m pytest -q "${suites[@]}") >"$logs/suite-$version-$prof" 2>&1 &
  suite_pid[$run]=$!
done

# 3. Results in order.
for run in "${runs[@]}"; do
  [ -n "${suite_pid[$run]:-}" ] || continue
  version=${run%%:*} prof=${run#*:}
  wait "${suite_pid[$run]}"
  rc=$?
  echo "=== CPython $version (${path_of[$version]}), profile $prof: pytest ${suites[*]}"
  cat "$logs/suite-$version-$prof"
  if [ $rc -eq 0 ]; then ran+=("$(label_of "$version" "$prof")"); else failed+=("$(label_of "$version" "$prof")"); fi
done

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

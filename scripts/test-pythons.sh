#!/usr/bin/env bash
# Usage: scripts/test-pythons.sh [--cargo-test] PROFILE [VERSION ...]
# Runs every pytest suite (tests/ and pytest_plugin/tests/) under each CPython 3.9 ... 3.13 found on this
# machine (or only the VERSIONs given) against a PROFILE build (`make test`: dev, the profile `cargo test` uses:
# Rust debug assertions and overflow checks, dependencies optimised), each in its own venv .venvs/VERSION. With
# --cargo-test, `cargo test` runs first, in the same cargo target directory. Says which ran and which were
# skipped; fails if `cargo test` or any suite fails, or if 3.11 is missing.
#
# To be quick on a small machine: `cargo test` and every venv's package installs start at once (the installs
# are mostly network and disk, and fill the core that a single crate's compilation leaves idle); the builds run
# one after another in the one cargo target directory, so the dependencies (rustpython-parser, notify, ...) are
# compiled once for `cargo test` and every interpreter, and only pyo3 and hotswap itself again per interpreter;
# each suite starts as soon as its build is done, up to HOTSWAP_TEST_JOBS (default 2) suites at a time, each
# with HOTSWAP_TEST_WORKERS (default 2) pytest-xdist workers (the tests of each file tests/conftest.py lists in
# SERIAL_FILES run in one worker, in order); a
# suite's output (with its ten slowest tests) is kept and printed whole, in order, when it ends. When each phase
# ended is printed at the end.
set -uo pipefail
cargo_test=no
if [ "${1:-}" = --cargo-test ]; then cargo_test=yes; shift; fi
profile=${1:-dev}
shift || true
wanted=("$@")
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
jobs=${HOTSWAP_TEST_JOBS:-2}
workers=${HOTSWAP_TEST_WORKERS:-2}
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
suites=(tests)
[ -d pytest_plugin/tests ] && suites+=(pytest_plugin/tests)
started=$SECONDS
timings=()
# Wall seconds since `make test` started, for the phase summary.
stamp() { echo "$((SECONDS - started))s"; }

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
  runs+=("$version")
done < <(scripts/pythons.sh)

# 1. `cargo test`, and the venvs with their packages, all at once.
cargo_pid=
if [ "$cargo_test" = yes ]; then
  echo "=== cargo test"
  cargo test --lib --quiet >"$logs/cargo-test" 2>&1 &
  cargo_pid=$!
fi
declare -A prep_pid
for version in "${runs[@]}"; do
  scripts/venv.sh --no-build ".venvs/$version" "${path_of[$version]}" >"$logs/prep-$version" 2>&1 &
  prep_pid[$version]=$!
done
if [ -n "$cargo_pid" ]; then
  wait "$cargo_pid"
  rc=$?
  cat "$logs/cargo-test"
  timings+=("cargo test done at $(stamp)")
  [ $rc -eq 0 ] || failed+=("cargo test")
fi

# 2. Builds one after another; each suite starts when its build is done.
declare -A suite_pid
for version in "${runs[@]}"; do
  venv=.venvs/$version
  if ! wait "${prep_pid[$version]}"; then
    cat "$logs/prep-$version"
    failed+=("$version (venv)")
    continue
  fi
  timings+=("$version venv ready at $(stamp)")
  echo "=== CPython $version (${path_of[$version]}), profile $profile: build"
  if ! scripts/venv.sh "$venv" "${path_of[$version]}" "$profile"; then
    failed+=("$version (build)")
    continue
  fi
  timings+=("$version built at $(stamp)")
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
  xdist=()
  [ "$workers" -gt 1 ] && xdist=(-n "$workers" --dist loadgroup)
  # A background job of a non-interactive shell starts with SIGINT ignored, and Python then leaves it ignored
  # (the Ctrl-C tests would see nothing): restore the default before starting the suite.
  (trap - INT; start=$SECONDS; "$venv/bin/python" -m pytest -q --durations=10 "${xdist[@]}" "${suites[@]}"; rc=$?
   echo "(suite: $((SECONDS - start)) s)"; exit $rc) >"$logs/suite-$version" 2>&1 &
  suite_pid[$version]=$!
done

# 3. Results in order.
for version in "${runs[@]}"; do
  [ -n "${suite_pid[$version]:-}" ] || continue
  wait "${suite_pid[$version]}"
  rc=$?
  timings+=("$version suite done at $(stamp)")
  echo "=== CPython $version (${path_of[$version]}), profile $profile: pytest ${suites[*]}"
  cat "$logs/suite-$version"
  if [ $rc -eq 0 ]; then ran+=("$version"); else failed+=("$version"); fi
done

echo
echo "profile $profile; phases (wall time): $(IFS=,; echo "${timings[*]}" | sed 's/,/, /g')"
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

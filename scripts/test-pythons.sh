#!/usr/bin/env bash
# Usage: scripts/test-pythons.sh [--cargo-test] PROFILE [VERSION ...]
# Runs every pytest suite (tests/ and pytest_plugin/tests/) under each CPython 3.9 ... 3.13 found on this
# machine (or only the VERSIONs given) against a PROFILE build (`make test`: dev, the profile `cargo test` uses:
# Rust debug assertions and overflow checks, dependencies optimised), each in its own venv .venvs/VERSION. With
# --cargo-test, `cargo test` runs first, in the same cargo target directory. Says which ran and which were
# skipped; fails if `cargo test` or any suite fails, or if 3.11 is missing.
#
# To be quick on a small machine: `cargo test` and every venv's package installs start at once (the installs
# are partly network and disk, and fill the core that a single crate's compilation leaves idle); the builds
# run one after another in the one cargo target directory, as soon as `cargo test` is done and never waiting
# for a suite, so the dependencies (rustpython-parser, notify, ...) are compiled once for `cargo test` and every
# interpreter, and only pyo3 and hotswap itself again per interpreter; each suite starts as soon as its build is
# done, up to HOTSWAP_TEST_JOBS (default 2) suites at a time, each with HOTSWAP_TEST_WORKERS (default 2)
# pytest-xdist workers (the tests of each file tests/conftest.py lists in SERIAL_FILES run in one worker, in
# order), and the last one to start with one worker more; interpreters go in the order HOTSWAP_TEST_ORDER gives
# (slowest suite first). A suite's output (with its ten slowest tests) is kept and printed whole, in order, once
# all have ended. When each phase ended is printed at the end.
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

# Every step runs in the background and leaves its exit status in $logs/rc-NAME when it ends; the loop below
# starts what has become possible and looks again a moment later.
launch() {
  local name=$1; shift
  ( "$@"; echo $? >"$logs/rc-$name" ) >"$logs/$name" 2>&1 &
}
ended() { [ -f "$logs/rc-$1" ]; }
status() { cat "$logs/rc-$1"; }

# 1. `cargo test`, and the venvs with their packages, all at once.
if [ "$cargo_test" = yes ]; then
  echo "=== cargo test"
  launch cargo-test cargo test --lib --quiet
fi
order=()
for version in ${HOTSWAP_TEST_ORDER:-3.9 3.10 3.13 3.12 3.11}; do
  [[ " ${runs[*]} " == *" $version "* ]] && order+=("$version")
done
for version in "${runs[@]}"; do
  [[ " ${order[*]} " == *" $version "* ]] || order+=("$version")
done
for version in "${order[@]}"; do
  launch "prep-$version" scripts/venv.sh --no-build ".venvs/$version" "${path_of[$version]}"
done

# 2. The builds, one after another and once `cargo test` is done (they share its cargo target directory, which
# cargo locks), never waiting for a suite; each suite starts as soon as its build is done and fewer than $jobs
# suites run. Builds and suites go slowest suite first, so that the last suite to end is a short one; the last
# suite to start gets a worker more, as it soon runs alone and its workers wait on processes much of the time.
cargo_reported=no building="" to_build=("${order[@]}") built=() running=()
declare -A suite_started
suite() {
  local version=$1 n=$2 xdist=()
  [ "$n" -gt 1 ] && xdist=(-n "$n" --dist loadgroup)
  # A background job of a non-interactive shell starts with SIGINT ignored, and Python then leaves it ignored
  # (the Ctrl-C tests would see nothing): restore the default before starting the suite.
  trap - INT
  local start=$SECONDS rc
  ".venvs/$version/bin/python" -m pytest -q --durations=10 "${xdist[@]}" "${suites[@]}"
  rc=$?
  echo "(suite: $((SECONDS - start)) s, $n workers)"
  return $rc
}
build() {
  echo "=== CPython $1 (${path_of[$1]}), profile $profile: build"
  scripts/venv.sh ".venvs/$1" "${path_of[$1]}" "$profile"
}
while :; do
  if [ "$cargo_test" = yes ] && [ $cargo_reported = no ] && ended cargo-test; then
    cat "$logs/cargo-test"
    timings+=("cargo test done at $(stamp)")
    [ "$(status cargo-test)" -eq 0 ] || failed+=("cargo test")
    cargo_reported=yes
  fi
  if [ -n "$building" ] && ended "build-$building"; then
    cat "$logs/build-$building"
    if [ "$(status "build-$building")" -eq 0 ]; then
      timings+=("$building built at $(stamp)")
      built+=("$building")
    else
      failed+=("$building (build)")
    fi
    building=""
  fi
  if [ -z "$building" ] && [ ${#to_build[@]} -gt 0 ] && { [ "$cargo_test" = no ] || [ $cargo_reported = yes ]; } \
      && ended "prep-${to_build[0]}"; then
    version=${to_build[0]}
    to_build=("${to_build[@]:1}")
    if [ "$(status "prep-$version")" -eq 0 ]; then
      timings+=("$version build started at $(stamp)")
      building=$version
      launch "build-$version" build "$version"
    else
      cat "$logs/prep-$version"
      failed+=("$version (venv)")
    fi
  fi
  still=()
  for version in "${running[@]}"; do
    if ended "suite-$version"; then timings+=("$version suite done at $(stamp)"); else still+=("$version"); fi
  done
  running=("${still[@]}")
  while [ ${#built[@]} -gt 0 ] && [ ${#running[@]} -lt "$jobs" ]; do
    version=${built[0]}
    built=("${built[@]:1}")
    n=$workers
    # The last suite to start: no build is left to come.
    [ -z "$building" ] && [ ${#to_build[@]} -eq 0 ] && [ ${#built[@]} -eq 0 ] && n=$((workers + 1))
    launch "suite-$version" suite "$version" "$n"
    suite_started[$version]=yes
    running+=("$version")
  done
  if [ -z "$building" ] && [ ${#to_build[@]} -eq 0 ] && [ ${#built[@]} -eq 0 ] && [ ${#running[@]} -eq 0 ] \
      && { [ "$cargo_test" = no ] || [ $cargo_reported = yes ]; }; then
    break
  fi
  sleep 0.2
done

# 3. Results in order of the versions.
for version in "${runs[@]}"; do
  [ -n "${suite_started[$version]:-}" ] || continue
  echo "=== CPython $version (${path_of[$version]}), profile $profile: pytest ${suites[*]}"
  cat "$logs/suite-$version"
  if [ "$(status "suite-$version")" -eq 0 ]; then ran+=("$version"); else failed+=("$version"); fi
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

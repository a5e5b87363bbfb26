#!/usr/bin/env bash
# Usage: scripts/wheels.sh MATURIN OUT [VERSION ...]
# Builds a release wheel of hotswap for every CPython 3.9 ... 3.13 found on this machine (scripts/pythons.sh), or
# only the VERSIONs given, and an sdist, into OUT (dist/), then checks each wheel: installed with pip into a fresh venv whose PATH has
# no Rust toolchain, `hotswap` imports and patches a function in place.
set -euo pipefail
maturin=$1 out=$2
shift 2
wanted=" $* "
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mkdir -p "$out"
interpreters=() found=()
while read -r version path; do
  [ "$path" = "-" ] && continue
  [ $# -eq 0 ] || [[ "$wanted" == *" $version "* ]] || continue
  interpreters+=(-i "$path")
  found+=("$version:$path")
done < <(scripts/pythons.sh)
[ ${#found[@]} -gt 0 ] || { echo "no CPython 3.9-3.13 found" >&2; exit 1; }
"$maturin" build --release --out "$out" "${interpreters[@]}"
"$maturin" sdist --out "$out"

# PATH without cargo, rustc or rustup: only the system's directories, and no ~/.cargo/bin.
plain_path=$(echo "$PATH" | tr ':' '\n' | grep -v -e '\.cargo' -e '\.rustup' | while read -r dir; do
  [ -x "$dir/cargo" ] || [ -x "$dir/rustc" ] || echo "$dir"; done | paste -sd: -)
check=$(mktemp -d)
trap 'rm -rf "$check"' EXIT
for entry in "${found[@]}"; do
  version=${entry%%:*} python=${entry#*:}
  tag="cp${version/./}"
  wheel=$(ls "$out"/hotswap-*-"$tag"-"$tag"-*.whl 2>/dev/null | sort -V | tail -n 1)
  [ -n "$wheel" ] || { echo "no wheel for CPython $version in $out" >&2; exit 1; }
  "$python" -m venv "$check/$version"
  env -i HOME="$HOME" PATH="$check/$version/bin:$plain_path" bash -c '
    set -e
    ! command -v cargo >/dev/null && ! command -v rustc >/dev/null
    pip install -q --no-index --disable-pip-version-check "$1"
    cd "$2"
    printf "def f():\n    return 1\n" > wheelcheck.py
    python - <<"PY"
import sys
sys.path.insert(0, ".")
import hotswap, wheelcheck
f = wheelcheck.f
open("wheelcheck.py", "w").write("def f():\n    return 2\n")
assert hotswap.reload(wheelcheck).ok and f() == 2
print(f"{hotswap.__name__} {hotswap.__version__} from {hotswap.__file__.rsplit(chr(47), 3)[-3]}: imports and reloads on", sys.version.split()[0])
PY
  ' _ "$root/$wheel" "$check/$version"
done
ls -l "$out"

#!/usr/bin/env bash
# Lists the CPython interpreters hotswap supports (3.9 ... 3.13) that exist on this machine, one
# "VERSION PATH" line each: from PATH first, then from pyenv's versions. Prints "VERSION -" for a missing one.
set -u
pyenv_root=""
command -v pyenv >/dev/null 2>&1 && pyenv_root=$(pyenv root 2>/dev/null)
for minor in 9 10 11 12 13; do
  version="3.$minor"
  found=""
  for candidate in "$(command -v "python$version" 2>/dev/null)" \
      $( [ -n "$pyenv_root" ] && ls -d "$pyenv_root"/versions/"$version".*/bin/python3 2>/dev/null | sort -V | tail -n 1 ); do
    [ -n "$candidate" ] && [ -x "$candidate" ] || continue
    # pyenv's shims answer for versions they cannot run; ask the interpreter itself.
    if [ "$("$candidate" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$version" ]; then
      found=$candidate
      break
    fi
  done
  echo "$version ${found:--}"
done

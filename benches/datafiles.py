"""Cost of recording the files modules read at import (the ``open`` audit hook of ``hotswap._datafiles``).

Imports: a tree of 300 modules imported in a fresh interpreter, best of several runs (the machine's load moves
the median more than the hook does): without hotswap, with
hotswap but its audit hook left out (``sys.addaudithook`` replaced by a no-op before ``import hotswap``: the import
hook that records sources still runs), with hotswap as shipped, and with every module reading a small JSON file at
import. Outside imports: the cost per audited operation (``open`` of a file; setting a class attribute, which CPython
audits as ``object.__setattr__``) once the imports are done, with and without the hook.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

MODULES = 300
RUNS = 11

IMPORT_TREE = """
import sys, time
sys.path.insert(0, {root!r})
{setup}
t0 = time.perf_counter()
import tree
print((time.perf_counter() - t0) * 1000)
"""

LOOPS = """
import os, sys, time
{setup}
path = {path!r}
class C: pass
def best(fn, n):
    times = []
    for _ in range(5):
        t0 = time.perf_counter_ns(); fn(n); times.append((time.perf_counter_ns() - t0) / n)
    return min(times)
def opens(n):
    for _ in range(n):
        open(path, "rb").close()
def setattrs(n):
    for i in range(n):
        C.x = i
print(best(opens, 20000), best(setattrs, 200000))
"""

SETUPS = {
    "without hotswap": "",
    "hotswap, audit hook left out": "sys.addaudithook = lambda hook: None\nimport hotswap",
    "hotswap": "import hotswap",
}


def make_tree(root: Path, read_json: bool) -> None:
    pkg = root / "tree"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("".join(f"from . import m{i}\n" for i in range(MODULES)))
    for i in range(MODULES):
        body = f"X = {i}\n\ndef f(a):\n    return a + X\n\nclass K:\n    def m(self):\n        return {i}\n"
        if read_json:
            (pkg / f"m{i}.json").write_text(json.dumps({"value": i}))
            body = ("import json, os\nwith open(os.path.join(os.path.dirname(__file__), "
                    f"'m{i}.json')) as fh:\n    CONFIG = json.load(fh)\n") + body
        (pkg / f"m{i}.py").write_text(body)


def run(code: str) -> str:
    # -B: no byte-code cache written, so every run compiles the same way
    return subprocess.run([sys.executable, "-B", "-c", code], capture_output=True, text=True, check=True).stdout


def main() -> None:
    base = Path(tempfile.mkdtemp(prefix="hotswap-bench-datafiles-"))
    plain, reading = base / "plain", base / "reading"
    make_tree(plain, False)
    make_tree(reading, True)
    cases = [(label, "no", plain, setup) for label, setup in SETUPS.items()]
    cases += [("without hotswap", "yes", reading, SETUPS["without hotswap"]),
              ("hotswap", f"yes ({MODULES} files recorded)", reading, SETUPS["hotswap"])]
    times: dict = {case[:2]: [] for case in cases}
    for _ in range(RUNS):  # interleaved, so a change in the machine's load hits every case alike
        for label, reads, root, setup in cases:
            times[(label, reads)].append(float(run(IMPORT_TREE.format(root=str(root), setup=setup))))
    rows = [(label, reads, min(times[(label, reads)])) for label, reads, _, _ in cases]
    print(f"Importing a {MODULES}-module tree, best of {RUNS} fresh interpreters (Python {sys.version.split()[0]})")
    print()
    print("| setup | each module reads a JSON file | import time |")
    print("|---|---|---:|")
    for label, reads, ms in rows:
        print(f"| {label} | {reads} | {ms:.1f} ms |")
    print()
    data = base / "data.bin"
    data.write_bytes(b"x")
    print("Outside imports (no window open), per operation, best of 5")
    print()
    print("| setup | `open()` + `close()` | class attribute set |")
    print("|---|---:|---:|")
    for label, setup in SETUPS.items():
        opens, sets = run(LOOPS.format(setup=setup, path=str(data))).split()
        print(f"| {label} | {float(opens):.0f} ns | {float(sets):.0f} ns |")


if __name__ == "__main__":
    main()

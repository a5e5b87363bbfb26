"""Memory over many reloads, and the cost of calling a patched function.

1. Resident memory after 1, 100 and 1,000 reloads of a 600-line module (one-function edits, alternating);
   the number to watch is the growth from 100 to 1,000 (target: under 5 MB).
2. Call overhead: ns per call of a function hotswap patched against an identical one it never touched, in
   alternating batches of the same run, each called from its own loop (its own call site) (target: no
   measurable difference). On 3.13, a function whose `__code__` was reassigned is no longer specialised at its
   call sites, and no supported API gives it a new version (`func_set_code` sets it to 0, and 3.13's
   `_PyFunction_GetVersionForCurrentState` no longer assigns one lazily as 3.12's did; only the private
   `_PyFunction_SetVersion` could); the table shows what that costs.
3. What the code -> functions index costs the rest of the program once started: making closures in a loop
   (3.12+: the function watcher's work on each function made) and allocating containers (3.9-3.11: the gc
   callback's work at each collection), before and after the index starts.
"""

from __future__ import annotations

import gc
import importlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import hotswap  # noqa: E402
from _modules import edit, make_module  # noqa: E402


def rss_mb() -> float:
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # peak, where /proc is missing


def memory(root: Path) -> list:
    source = make_module(100)
    path = root / "bench_memory.py"
    path.write_text(source)
    importlib.invalidate_caches()
    module = importlib.import_module("bench_memory")
    rows = []
    done = 0
    for target in (1, 100, 1000):
        while done < target:
            path.write_text(edit(source, done % 2))
            report = hotswap.reload(module)
            assert report.ok and report.patched == ("target",), report
            done += 1
        gc.collect()
        rows.append((target, rss_mb()))
    return rows


def call_overhead(root: Path) -> tuple:
    source = "def patched(x):\n    return x + 1\n\ndef untouched(x):\n    return x + 1\n"
    path = root / "bench_calls.py"
    path.write_text(source)
    importlib.invalidate_caches()
    module = importlib.import_module("bench_calls")
    patched, untouched = module.patched, module.untouched
    path.write_text(source.replace("def patched(x):\n    return x + 1", "def patched(x):\n    return x + 2"))
    assert hotswap.reload(module).patched == ("patched",)
    path.write_text(source)
    assert hotswap.reload(module).patched == ("patched",)  # same code as `untouched` again

    loop_patched, loop_untouched = _timing_loop(), _timing_loop()
    a, b = [], []
    for _ in range(15):
        a.append(loop_patched(patched, 200_000))
        b.append(loop_untouched(untouched, 200_000))
    return statistics.median(a), statistics.median(b)


def _timing_loop():
    """A loop compiled on its own, so each callee gets a call site of its own (a shared one would flip between
    two functions and never stay specialised)."""
    ns: dict = {"perf": time.perf_counter_ns}
    exec("def loop(fn, n):\n    t0 = perf()\n    for i in range(n):\n        fn(i)\n"
         "    return (perf() - t0) / n\n", ns)
    return ns["loop"]


def index_cost() -> list:
    """ns per closure made and per container allocated, before and after the function index starts."""
    import types

    def make(k):
        def add(x):
            return x + k
        return add

    def closures(n=200_000):
        t0 = time.perf_counter_ns()
        for i in range(n):
            make(i)
        return (time.perf_counter_ns() - t0) / n

    def containers(n=400_000):
        t0 = time.perf_counter_ns()
        keep = []
        for i in range(n):
            keep.append([i])
        return (time.perf_counter_ns() - t0) / n

    def sample():
        return statistics.median(closures() for _ in range(7)), statistics.median(containers() for _ in range(7))

    before = sample()
    code = next(c for c in make.__code__.co_consts if isinstance(c, types.CodeType))
    hotswap._native.find_functions([code])
    after = sample()
    return [("make a closure", before[0], after[0]), ("allocate a list (and its share of gc)", before[1], after[1])]


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="hotswap-bench-mem-"))
    sys.path.insert(0, str(root))
    rows = memory(root)
    print(f"## Memory: resident set after N reloads of a 600-line module (CPython {sys.version.split()[0]})\n")
    print("| reloads | RSS |")
    print("|---:|---:|")
    for count, mb in rows:
        print(f"| {count:,} | {mb:.1f} MB |")
    print(f"\nGrowth from 100 to 1,000 reloads: {rows[2][1] - rows[1][1]:+.2f} MB (target: under 5 MB)\n")
    patched, untouched = call_overhead(root)
    print("## Call overhead: patched vs never-patched function (median ns per call, alternating batches)\n")
    print("| patched | untouched | ratio |")
    print("|---:|---:|---:|")
    print(f"| {patched:.1f} ns | {untouched:.1f} ns | {patched / untouched:.3f} |\n")
    rows = index_cost()
    mode = hotswap._native.function_index_mode()
    print(f"## What the running function index costs the program (index: {mode}; median ns per operation)\n")
    print("| operation | before the index starts | with the index | ratio |")
    print("|---|---:|---:|---:|")
    for name, before, after in rows:
        print(f"| {name} | {before:.1f} ns | {after:.1f} ns | {after / before:.2f} |")
    print()


if __name__ == "__main__":
    main()

"""Memory over many reloads, and the cost of calling a patched function.

1. Resident memory after 1, 100 and 1,000 reloads of a 600-line module (one-function edits, alternating);
   the number to watch is the growth from 100 to 1,000 (target: under 5 MB).
2. Call overhead: ns per call of a function hotswap patched against an identical one it never touched, in
   alternating batches of the same run (target: no measurable difference). On 3.13, a function whose
   `__code__` was reassigned is no longer specialised at its call sites; the table shows what that costs.
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

    def loop(fn, n=200_000):
        t0 = time.perf_counter_ns()
        for i in range(n):
            fn(i)
        return (time.perf_counter_ns() - t0) / n

    a, b = [], []
    for _ in range(15):
        a.append(loop(patched))
        b.append(loop(untouched))
    return statistics.median(a), statistics.median(b)


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


if __name__ == "__main__":
    main()

"""Memory soak (`make soak`): many reloads, and template execs when the template exists; resident memory and
open file descriptors must stay flat after a warm-up. Exits non-zero, saying why, when they do not.

Not part of `make test` (it runs for minutes); the same checks at a smaller scale are in the test suites.
"""

from __future__ import annotations

import gc
import importlib
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "benches"))

from _modules import edit, make_module  # noqa: E402

import hotswap  # noqa: E402

RELOADS = int(os.environ.get("HOTSWAP_SOAK_RELOADS", "10000"))
EXECS = int(os.environ.get("HOTSWAP_SOAK_EXECS", "1000"))
WARMUP = 200
MAX_RSS_GROWTH_MB = 5.0


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no /proc/self/status")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def soak_reloads(root: Path) -> list:
    source = make_module(100)  # about 600 lines
    path = root / "soak_module.py"
    path.write_text(source)
    importlib.invalidate_caches()
    module = importlib.import_module("soak_module")
    stale = module.target
    problems = []
    baseline = None
    for i in range(RELOADS):
        path.write_text(edit(source, i % 2))
        report = hotswap.reload(module)
        if not report.ok or stale(0) != (i % 2) + 2:
            problems.append(f"reload {i} went wrong: {report}")
            break
        if i + 1 == WARMUP:
            gc.collect()
            baseline = (rss_mb(), open_fds())
    gc.collect()
    end = (rss_mb(), open_fds())
    print(f"reloads: {RELOADS}, RSS {baseline[0]:.1f} -> {end[0]:.1f} MB, fds {baseline[1]} -> {end[1]}")
    if end[0] - baseline[0] > MAX_RSS_GROWTH_MB:
        problems.append(f"RSS grew {end[0] - baseline[0]:.1f} MB over {RELOADS - WARMUP} reloads")
    if end[1] > baseline[1]:
        problems.append(f"open file descriptors grew {baseline[1]} -> {end[1]}")
    return problems


def soak_template(root: Path) -> list:
    try:
        from hotswap import isolate_imports
    except ImportError:
        return ["the template (hotswap.isolate_imports) is not available"]
    (root / "soak_task.py").write_text("def task(x):\n    return x * 2\n")
    importlib.invalidate_caches()
    import soak_task

    problems = []
    with isolate_imports("soak_task") as env:
        baseline = None
        for i in range(EXECS):
            proc = env.exec(soak_task.task, i)
            value = env.communicate_isolated(proc, timeout=30)
            if value != i * 2:
                problems.append(f"exec {i} returned {value!r}")
                break
            if i + 1 == min(WARMUP, EXECS // 2):
                gc.collect()
                baseline = (rss_mb(), open_fds())
        gc.collect()
        end = (rss_mb(), open_fds())
    print(f"template execs: {EXECS}, RSS {baseline[0]:.1f} -> {end[0]:.1f} MB, fds {baseline[1]} -> {end[1]}")
    if end[0] - baseline[0] > MAX_RSS_GROWTH_MB:
        problems.append(f"RSS grew {end[0] - baseline[0]:.1f} MB over the template execs")
    if end[1] > baseline[1]:
        problems.append(f"open file descriptors grew {baseline[1]} -> {end[1]} over the template execs")
    return problems


def main() -> int:
    root = Path(tempfile.mkdtemp(prefix="hotswap-soak-"))
    sys.path.insert(0, str(root))
    problems = soak_reloads(root) + soak_template(root)
    for problem in problems:
        print(f"SOAK FAILED: {problem}")
    if not problems:
        print("soak passed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

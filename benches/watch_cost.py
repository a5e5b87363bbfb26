"""Watching cost: how long `AutoReloader(path)` takes to start on a tree of 10,000 files, and the CPU it uses
while nothing changes (30 s idle, process CPU time, which includes the native watcher's threads).
Targets: start under one second; near-zero idle CPU.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import hotswap

FILES = 10_000
IDLE_S = 30


def make_tree(root: Path) -> None:
    for i in range(FILES):
        folder = root / f"pkg{i // 500}" / f"sub{(i // 50) % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"mod{i}.py").write_text(f"X = {i}\n")


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="hotswap-bench-watch-"))
    make_tree(root)
    starts = []
    for _ in range(5):
        t0 = time.perf_counter()
        reloader = hotswap.AutoReloader(path=root)
        starts.append((time.perf_counter() - t0) * 1000)
        reloader.stop()
    reloader = hotswap.AutoReloader(path=root)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    time.sleep(IDLE_S)
    cpu = time.process_time() - cpu0
    wall = time.perf_counter() - wall0
    reloader.stop()
    print(f"## Watching cost: {FILES:,} files under the watched path (CPython {sys.version.split()[0]})\n")
    print("| start-up (median of 5) | idle CPU over 30 s | idle CPU share |")
    print("|---:|---:|---:|")
    print(f"| {statistics.median(starts):.0f} ms | {cpu * 1000:.1f} ms | {cpu / wall * 100:.3f} % |\n")


if __name__ == "__main__":
    main()

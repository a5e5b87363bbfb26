"""Dask: from a save to new code on every worker of a local cluster, hotswap.dask against Dask's own ways.

For 2 and 4 worker processes (``LocalCluster(processes=True)`` on 127.0.0.1), each holding scattered data and an
instance made before the edit, one edited module is brought to every worker, repeatedly, three ways:

- ``hotswap.dask.attach``: the save is applied on the client and sent to each worker, in place;
- ``client.restart()`` then scattering the same data again (the workers import the saved file afresh);
- ``client.upload_file(path)``: Dask sends the file to each worker, which writes and re-imports it.

The time runs from the save until every worker has confirmed it runs the new code: hotswap's report (each
worker's answer), ``upload_file`` returning (each worker re-imported the file), ``restart()`` and the scatter
returning; then a call on every worker must return the new value (checked outside the timing). Also checked:
whether the data scattered before is still held without being sent again, and whether the instance made before
the edit runs the new method. Medians of ``REPEATS`` runs; the ratios are against hotswap's median in the same
run. Prints a markdown table.

(Not named ``dask.py``: a script's own directory comes first on ``sys.path``, and ``distributed`` imports ``dask``.)
"""

from __future__ import annotations

import logging
import operator
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPEATS = 15
RESTART_REPEATS = 3
WORKER_COUNTS = (2, 4)
DATA_MB_PER_WORKER = 8

SOURCE = """
VALUE = {value}

def value():
    return VALUE

class Held:
    def method(self):
        return {value}
"""


def main() -> None:
    logging.getLogger("distributed").setLevel(logging.ERROR)
    try:
        import distributed  # noqa: F401
    except ImportError as err:
        print(f"## Dask\n\nunavailable: {err}\n")
        return
    import hotswap.dask  # noqa: F401

    root = Path(tempfile.mkdtemp(prefix="hotswap-bench-dask-"))
    sys.path.insert(0, str(root))
    rows = []
    for workers in WORKER_COUNTS:
        rows.extend(measure(root, workers))
    print("## Dask: a save to new code on every worker (`benches/dask_workers.py`)\n")
    print(f"LocalCluster, 1 thread per worker, {DATA_MB_PER_WORKER} MB scattered per worker; median of {REPEATS} "
          f"({RESTART_REPEATS} for restarts, each on a fresh cluster).\n")
    print("| way | workers | median | vs hotswap | scattered data kept | instance made before runs new method |")
    print("|---|---:|---:|---:|---|---|")
    for row in rows:
        ratio = f"{row['ratio']:.0f}x" if row["ratio"] >= 10 else f"{row['ratio']:.1f}x"
        print(f"| {row['way']} | {row['workers']} | {row['median_ms']:,.1f} ms | {ratio} | {row['kept']} | "
              f"{row['held']} |")


class Bench:
    def __init__(self, root: Path, workers: int, tag: str = "") -> None:
        from distributed import Client, LocalCluster

        self.path = root / f"bench_mod_{workers}{tag}.py"
        self.value = 0
        self.path.write_text(SOURCE.format(value=self.value))
        import importlib

        importlib.invalidate_caches()
        self.module = importlib.import_module(self.path.stem)
        self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                    dashboard_address=":0")
        self.client = Client(self.cluster)
        self.blobs = [os.urandom(DATA_MB_PER_WORKER * 1_000_000) for _ in range(workers)]
        self.scatter()

    def scatter(self) -> None:
        self.data = self.client.scatter(self.blobs)
        self.held = self.client.submit(self.module.Held, pure=False)
        self.held.result()

    def save(self) -> None:
        self.value += 1
        self.path.write_text(SOURCE.format(value=self.value))

    def check_new_code(self) -> None:
        values = self.client.run(self.module.value)
        assert set(values.values()) == {self.value}, values

    def check(self) -> "tuple[str, str]":
        kept = all(future.status == "finished" for future in self.data)
        method = self.client.submit(operator.methodcaller("method"), self.held, pure=False).result()
        return ("yes" if kept else "no (sent again)"), ("yes" if method == self.value else "no")

    def close(self) -> None:
        self.client.close()
        self.cluster.close()


def measure(root: Path, workers: int) -> list:
    import hotswap.dask

    bench = Bench(root, workers)
    results = {}
    try:
        with hotswap.dask.attach(bench.client, path=str(root)) as handle:
            times = []
            for _ in range(REPEATS):
                start = time.perf_counter()
                bench.save()
                report = handle.wait_for_reload(timeout=60)
                times.append(time.perf_counter() - start)
                assert report is not None and report.ok, report and report.summary()
                bench.check_new_code()
            results["hotswap.dask.attach"] = (times, *bench.check())

        times = []
        for _ in range(REPEATS):
            start = time.perf_counter()
            bench.save()
            bench.client.upload_file(str(bench.path))
            times.append(time.perf_counter() - start)
            bench.check_new_code()
        results["`client.upload_file(path)`"] = (times, *bench.check())
    finally:
        bench.close()
    # A fresh cluster for each restart: Dask's repeated `Client.restart()` on one cluster hangs after a few
    # (dask/distributed#8534; the fourth timed out here every time).
    times = []
    for i in range(RESTART_REPEATS):
        bench = Bench(root, workers, f"restart{i}")
        try:
            start = time.perf_counter()
            bench.save()
            bench.client.restart()
            bench.scatter()
            times.append(time.perf_counter() - start)
            bench.check_new_code()
        finally:
            bench.close()
    results["`client.restart()` + scatter again"] = (times, "no (sent again)", "no (lost; made again)")
    base = statistics.median(results["hotswap.dask.attach"][0])
    return [dict(way=way, workers=workers, median_ms=statistics.median(times) * 1000,
                 ratio=statistics.median(times) / base, kept=kept, held=held)
            for way, (times, kept, held) in results.items()]


if __name__ == "__main__":
    main()

"""Isolated call round trip with pandas, sympy and sqlalchemy preloaded: hotswap vs a fresh interpreter vs firehot.

Run with an interpreter that has the comparison packages (never hotswap's own dependencies):

    python3.11 -m venv benches/.venv
    benches/.venv/bin/pip install pandas sympy sqlalchemy firehot
    benches/.venv/bin/python benches/template.py [--rounds 30]

hotswap is imported from this checkout's python/ directory, so build it first for the same interpreter version
(`scripts/venv.sh .venvs/3.11 python3.11 release`). The three contenders run alternately, one call each per round;
the table shows medians (perf_counter_ns) and ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "python"))

WORK = """\
    import os
    import pandas
    import sympy
    import sqlalchemy

    def task(x):
        return x + 1, os.getpid()
"""


def make_project() -> str:
    root = tempfile.mkdtemp(prefix="hotswap-bench-")
    pkg = os.path.join(root, "benchproj")
    os.makedirs(pkg)
    with open(os.path.join(pkg, "__init__.py"), "w") as f:
        f.write("")
    with open(os.path.join(pkg, "work.py"), "w") as f:
        f.write(textwrap.dedent(WORK))
    return root


def ms(ns: float) -> str:
    return f"{ns / 1e6:.2f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--fresh-rounds", type=int, default=10, help="rounds that also start a fresh interpreter")
    ns = parser.parse_args()
    for name in ("pandas", "sympy", "sqlalchemy"):
        try:
            __import__(name)
        except ImportError:
            print(f"{name} is not installed for {sys.executable}; see this script's docstring", file=sys.stderr)
            return 2
    root = make_project()
    sys.path.insert(0, root)
    # firehot starts `python` from PATH (not sys.executable) and imports the package by name in its runner.
    os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    os.environ["PYTHONPATH"] = os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    from benchproj import work

    from hotswap import isolate_imports

    # "hotswap": one call per round, alternating with the others (the template forks its next spare child in the
    # pause). "back-to-back": calls with no pause, so the spare's fork is on the critical path of the next call.
    results = {"hotswap": [], "hotswap back-to-back": [], "fresh interpreter": [], "firehot": []}
    firehot_note = ""
    try:
        import firehot
    except ImportError as err:
        firehot = None
        firehot_note = f"firehot not measured: cannot import it ({err}); pip install firehot into {sys.prefix}"

    fresh_cmd = [sys.executable, "-c", "import benchproj.work as w; w.task(1)"]
    with contextlib.ExitStack() as stack:
        started = time.perf_counter()
        env = stack.enter_context(isolate_imports(os.path.join(root, "benchproj")))
        print(f"hotswap template ready in {(time.perf_counter() - started) * 1000:.0f} ms; preloaded {env.preloaded}; "
              f"left out {env.not_preloaded or 'nothing'}")
        fh_env = None
        if firehot is not None:
            try:
                started = time.perf_counter()
                fh_env = stack.enter_context(firehot.isolate_imports("benchproj"))
                # firehot builds its layer lazily; one call warms it.
                fh_env.communicate_isolated(fh_env.exec(work.task, 1))
                print(f"firehot ready in {(time.perf_counter() - started) * 1000:.0f} ms")
            except Exception as err:  # noqa: BLE001 - report and go on without it
                fh_env = None
                firehot_note = f"firehot not measured: {type(err).__name__}: {err}"
        for _ in range(3):  # warm-up
            env.communicate_isolated(env.exec(work.task, 1), timeout=60)
        for i in range(ns.rounds):
            t = time.perf_counter_ns()
            value, pid = env.communicate_isolated(env.exec(work.task, i), timeout=60)
            results["hotswap"].append(time.perf_counter_ns() - t)
            assert value == i + 1 and pid != os.getpid()
            if i < ns.fresh_rounds:
                t = time.perf_counter_ns()
                subprocess.run(fresh_cmd, check=True)
                results["fresh interpreter"].append(time.perf_counter_ns() - t)
            if fh_env is not None:
                t = time.perf_counter_ns()
                fh_env.communicate_isolated(fh_env.exec(work.task, i))
                results["firehot"].append(time.perf_counter_ns() - t)

        for i in range(ns.rounds):
            t = time.perf_counter_ns()
            env.communicate_isolated(env.exec(work.task, i), timeout=60)
            results["hotswap back-to-back"].append(time.perf_counter_ns() - t)

    base = statistics.median(results["hotswap"])
    print(f"\n## Isolated call round trip, pandas + sympy + sqlalchemy preloaded (exec + communicate; CPython "
          f"{sys.version.split()[0]}, {os.cpu_count()} CPUs)\n")
    print("| contender | runs | median | min | vs hotswap |")
    print("|---|---:|---:|---:|---:|")
    for name, samples in results.items():
        if not samples:
            continue
        median = statistics.median(samples)
        label = {"hotswap": "hotswap `isolate_imports`", "firehot": "firehot `isolate_imports`"}.get(name, name)
        print(f"| {label} | {len(samples)} | {ms(median)} | {ms(min(samples))} | {median / base:.1f}x |")
    if firehot_note:
        print(f"\n{firehot_note}")
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())

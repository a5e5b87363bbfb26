"""Reload engine benchmark: a one-function edit in modules of about 60, 600 and 6,000 lines.

Columns, all medians over the same alternating runs in one process:
- hotswap.reload: the whole reload (read, split, plan, build the changed function, native apply);
- compile(): compiling the whole module once, the reference;
- importlib.reload: re-executing the whole module (what a plain reload costs);
- native apply: hotswap's apply step alone for 1,000 function patches.
Run: `make bench` (or `python benches/reload_engine.py`).
"""

from __future__ import annotations

import importlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import hotswap  # noqa: E402
from hotswap import _native  # noqa: E402
from _modules import edit, line_count, make_module  # noqa: E402

ROUNDS = 31


def ms(samples):
    return statistics.median(samples) / 1e6


def bench_size(root: Path, functions: int) -> dict:
    # Two copies: importlib.reload replaces every object, which would leave hotswap nothing stale to check.
    name = f"bench_engine_{functions}"
    source = make_module(functions)
    path = root / f"{name}.py"
    path.write_text(source)
    plain_path = root / f"{name}_plain.py"
    plain_path.write_text(source)
    importlib.invalidate_caches()
    module = importlib.import_module(name)
    plain = importlib.import_module(f"{name}_plain")
    stale = module.target
    reload_ns, compile_ns, importlib_ns = [], [], []
    for i in range(ROUNDS):
        new = edit(source, i)
        path.write_text(new)
        t0 = time.perf_counter_ns()
        report = hotswap.reload(module)
        t1 = time.perf_counter_ns()
        assert report.ok and report.patched == ("target",), report
        assert stale(0) == i + 2
        reload_ns.append(t1 - t0)
        t0 = time.perf_counter_ns()
        compile(new, str(path), "exec", dont_inherit=True)
        compile_ns.append(time.perf_counter_ns() - t0)
        plain_path.write_text(new)
        t0 = time.perf_counter_ns()
        importlib.reload(plain)
        importlib_ns.append(time.perf_counter_ns() - t0)
    return {
        "lines": line_count(source),
        "reload": ms(reload_ns),
        "compile": ms(compile_ns),
        "importlib": ms(importlib_ns),
    }


def bench_apply(count: int = 1000) -> float:
    namespace: dict = {}
    exec("\n".join(f"def f{i}(x):\n    return x + {i}" for i in range(count)), namespace)
    functions = [namespace[f"f{i}"] for i in range(count)]
    donors = {}
    exec("\n".join(f"def f{i}(x):\n    return x - {i}" for i in range(count)), donors)
    samples = []
    for round_ in range(ROUNDS):
        source = functions if round_ % 2 == 0 else [namespace[f"f{i}"] for i in range(count)]
        ops = [("func", fn, donors[fn.__name__].__code__ if round_ % 2 == 0 else fn.__code__, None, fn.__defaults__,
                fn.__kwdefaults__, fn.__annotations__, fn.__doc__, None) for fn in source]
        t0 = time.perf_counter_ns()
        _native.apply(ops)
        samples.append(time.perf_counter_ns() - t0)
    return ms(samples)


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="hotswap-bench-"))
    sys.path.insert(0, str(root))
    print(f"## Reload engine: one-function edit (CPython {sys.version.split()[0]}, medians of {ROUNDS})\n")
    print("| module lines | hotswap.reload | compile() whole file | importlib.reload | reload / compile |")
    print("|---:|---:|---:|---:|---:|")
    for functions in (10, 100, 1000):
        row = bench_size(root, functions)
        print(f"| {row['lines']:,} | {row['reload']:.2f} ms | {row['compile']:.2f} ms | {row['importlib']:.2f} ms "
              f"| {row['reload'] / row['compile']:.2f} |")
    print(f"\nNative apply step, 1,000 function patches in one batch: {bench_apply():.3f} ms (median)")


if __name__ == "__main__":
    main()

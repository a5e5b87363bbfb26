"""Save-to-live latency of AutoReloader, with jurigged as a reference.

Save-to-live: from the moment a module's new content is written (open, write, then the clock is read just before
the close that completes the save) to the moment a program thread, calling a reference taken before the edit
(`from m import target`), first sees the new result. (The clock is not read after the close: the close releases
the GIL, and the reloader's thread may then apply the whole save before this thread runs again.) 50 saves
per module size (about 60, 600 and 6,000 lines; 10 for jurigged); p50 and p95 in milliseconds,
time.perf_counter_ns. hotswap's p50 is printed beside its target on the 2-core test machine (under 2, 3 and 10 ms).

Usage: python benches/watch_latency.py   (or `make bench`, which runs it in benches/.venv with jurigged installed)

hotswap runs in this interpreter; jurigged in a separate process of an interpreter that has it (this one, else
benches/.venv's). Without jurigged the output says it was skipped and why. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

SIZES = (60, 600, 6000)
#: p50 save-to-live targets for hotswap, in milliseconds, by module size.
TARGET_P50_MS = {60: 2.0, 600: 3.0, 6000: 10.0}
SAVES = 50
#: jurigged takes seconds per save of the largest module: fewer saves keep `make bench` short.
REFERENCE_SAVES = 10
TIMEOUT_S = 30.0
HERE = os.path.dirname(os.path.abspath(__file__))
JURIGGED_PYTHON = os.path.join(HERE, ".venv", "bin", "python")


def make_source(lines: int, value: int) -> str:
    body = [f"VALUE = {value}", "", "", "def target():", f"    return {value}", "", ""]
    i = 0
    while len(body) < lines:
        body += [f"def helper_{i}(x):", f"    return x + {i}", ""]
        i += 1
    return "\n".join(body) + "\n"


def write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def save(path: str, text: str) -> int:
    """Writes ``text`` to ``path`` in place; returns ``time.perf_counter_ns()`` read just before the close."""
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, text.encode())
        return time.perf_counter_ns()
    finally:
        os.close(fd)


class Caller(threading.Thread):
    """The program: calls the stale reference in a loop and timestamps each new result it sees."""

    def __init__(self, func) -> None:
        super().__init__(daemon=True)
        self.func = func
        self.seen: dict = {}
        self.changed = threading.Condition()
        self.halt = False

    def run(self) -> None:
        last = None
        while not self.halt:
            value = self.func()
            if value != last:
                now = time.perf_counter_ns()
                with self.changed:
                    self.seen[value] = now
                    self.changed.notify_all()
                last = value
            time.sleep(0.00005)

    def wait_for(self, value: int) -> int:
        with self.changed:
            if not self.changed.wait_for(lambda: value in self.seen, TIMEOUT_S):
                raise TimeoutError(f"the new result {value} was never seen")
            return self.seen[value]


def start_tool(tool: str, workdir: str):
    if tool == "hotswap":
        from hotswap import AutoReloader

        reloader = AutoReloader(workdir)
        return reloader.stop
    import jurigged

    watcher = jurigged.watch(pattern=os.path.join(workdir, "*.py"), logger=lambda *a, **k: print(*a, file=sys.stderr))
    return getattr(watcher, "stop", lambda: None)


def measure(tool: str, lines: int, workdir: str) -> dict:
    name = f"bench_{tool}_{lines}"
    path = os.path.join(workdir, name + ".py")
    write(path, make_source(lines, 0))
    importlib.invalidate_caches()
    module = importlib.import_module(name)
    caller = Caller(module.target)
    caller.start()
    caller.wait_for(0)
    time.sleep(0.5)  # setup: jurigged's watchdog observer starts asynchronously
    latencies_ms = []
    try:
        for value in range(1, (SAVES if tool == "hotswap" else REFERENCE_SAVES) + 1):
            written = save(path, make_source(lines, value))
            latencies_ms.append((caller.wait_for(value) - written) / 1e6)
            time.sleep(0.06)  # spacing between saves, longer than either tool's debounce
    finally:
        caller.halt = True
        caller.join()
    latencies_ms.sort()
    return {
        "size": lines,
        "lines": len(make_source(lines, 0).splitlines()),
        "p50": statistics.median(latencies_ms),
        "p95": latencies_ms[round(0.95 * (len(latencies_ms) - 1))],
    }


def run(tool: str) -> list:
    with tempfile.TemporaryDirectory() as workdir:
        workdir = os.path.realpath(workdir)
        sys.path.insert(0, workdir)
        stop = start_tool(tool, workdir)  # before the imports: jurigged registers modules as they are imported
        try:
            return [measure(tool, lines, workdir) for lines in SIZES]
        finally:
            stop()
            sys.path.remove(workdir)


def jurigged_python() -> "str | None":
    """An interpreter that can import jurigged: this one (as under `make bench`), or benches/.venv's."""
    for candidate in (sys.executable, JURIGGED_PYTHON):
        if os.path.exists(candidate):
            probe = subprocess.run([candidate, "-c", "import jurigged"], capture_output=True, check=False)
            if probe.returncode == 0:
                return candidate
    return None


def jurigged_results() -> "tuple[list, str]":
    python = jurigged_python()
    if python is None:
        return [], "skipped: not installed here nor in benches/.venv (`make bench` installs it)"
    # Its own process: jurigged and hotswap both watch files and hook imports.
    command = [python, os.path.abspath(__file__), "--tool", "jurigged", "--json"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return [], "failed: " + (done.stderr.strip().splitlines() or ["?"])[-1]
    return json.loads(done.stdout), ""


def _ms(value: float) -> str:
    return f"{value:,.0f} ms" if value >= 1000 else f"{value:.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tool", choices=("hotswap", "jurigged"), default="hotswap")
    parser.add_argument("--json", action="store_true", help="print raw results as JSON (used for jurigged)")
    args = parser.parse_args()
    if args.json:
        print(json.dumps(run(args.tool)))
        return
    rows = [("hotswap AutoReloader", r) for r in run("hotswap")]
    jurigged, note = jurigged_results()
    rows += [("jurigged", r) for r in jurigged]
    print(f"## Save to live (CPython {sys.version.split()[0]}; {SAVES} saves per size for hotswap, "
          f"{REFERENCE_SAVES} for jurigged)\n")
    print("| save to live (`benches/watch_latency.py`) | lines | p50 | p95 | p50 target |")
    print("|---|---:|---:|---:|---:|")
    for tool, r in rows:
        target = TARGET_P50_MS.get(r.get("size", 0)) if tool.startswith("hotswap") else None
        verdict = "" if target is None else f"< {target:g} ms ({'met' if r['p50'] < target else 'missed'})"
        print(f"| {tool} | {r['lines']:,} | {_ms(r['p50'])} | {_ms(r['p95'])} | {verdict} |")
    if note:
        print(f"\njurigged {note}")


if __name__ == "__main__":
    main()

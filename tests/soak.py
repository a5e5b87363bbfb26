"""Soak (`make soak`): many reloads, and template execs when the template exists; resident memory and open file
descriptors must stay flat after a warm-up. Then two loops against the guarantees under fork and signals: a process
with a running AutoReloader forks again and again (often while its reloader is applying a save), and every child
must start with its modules all old or all new, reload its own saves and exit cleanly; and Ctrl-C arrives at random
moments of reloads on the main thread, each of which must leave the module all old or all new. Exits non-zero,
saying why, when anything fails.

Not part of `make test` (it runs for minutes); the same checks at a smaller scale are in the test suites.
"""

from __future__ import annotations

import gc
import importlib
import os
import random
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "benches"))

import hotswap  # noqa: E402
from _modules import edit, make_module  # noqa: E402

RELOADS = int(os.environ.get("HOTSWAP_SOAK_RELOADS", "10000"))
EXECS = int(os.environ.get("HOTSWAP_SOAK_EXECS", "1000"))
FORKS = int(os.environ.get("HOTSWAP_SOAK_FORKS", "200"))
SIGNALS = int(os.environ.get("HOTSWAP_SOAK_SIGNALS", "500"))
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


def _save(path: Path, value: int) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"def f():\n    return {value}\n")
    os.replace(tmp, path)


def _wait(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def soak_fork_and_reload(root: Path) -> list:
    if not hasattr(os, "fork"):
        return []
    path = root / "soak_forked.py"
    _save(path, 0)
    importlib.invalidate_caches()
    import soak_forked

    f = soak_forked.f
    problems: list = []
    with hotswap.AutoReloader(str(root)) as reloader:
        baseline = None
        for i in range(1, FORKS + 1):
            _save(path, 2 * i - 1)  # the parent's reloader applies it, perhaps while the fork below happens
            pid = os.fork()
            if pid == 0:
                signal.alarm(30)
                code = 0
                running = hotswap.running_source(soak_forked)
                if f() not in (2 * i - 2, 2 * i - 1) or running != f"def f():\n    return {f()}\n".encode():
                    code = 2  # half a reload: the code and the source it runs disagree
                _save(path, 2 * i)
                if code == 0 and not _wait(lambda: f() == 2 * i):  # noqa: B023 - waited for at once
                    code = 3  # the child's own reloader did not apply its save
                reloader.stop()
                os._exit(code)
            _, status = os.waitpid(pid, 0)
            code = os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else status
            if code != 0:
                problems.append(f"forked child {i} ended with {code} (2: half a reload, 3: no reload, <0: signal)")
                break
            if not _wait(lambda: f() == 2 * i):  # noqa: B023 - waited for at once
                problems.append(f"after fork {i} the parent stopped reloading")
                break
            if i == min(WARMUP, FORKS // 2):
                gc.collect()
                baseline = (rss_mb(), open_fds(), threading.active_count())
        gc.collect()
        end = (rss_mb(), open_fds(), threading.active_count())
    if baseline is not None:
        print(f"fork and reload: {FORKS} forks, RSS {baseline[0]:.1f} -> {end[0]:.1f} MB, fds {baseline[1]} -> "
              f"{end[1]}, threads {baseline[2]} -> {end[2]}")
        if end[1] > baseline[1] or end[2] > baseline[2]:
            problems.append(f"descriptors or threads grew over the forks: {baseline} -> {end}")
    return problems


def soak_signal_during_reload(root: Path) -> list:
    """Ctrl-C at random moments of reloads whose top-level statement takes a few milliseconds."""
    path = root / "soak_signalled.py"
    path.write_text("def f():\n    return 0\n")
    importlib.invalidate_caches()
    import soak_signalled

    f = soak_signalled.f
    problems: list = []
    interrupted = applied = 0
    rng = random.Random(15)
    armed = [False]

    def on_sigint(signum, frame):  # Ctrl-C's KeyboardInterrupt, only while a reload is under way
        if armed[0]:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)
    for i in range(1, SIGNALS + 1):
        source = (f"def f():\n    return {i}\n\nimport time\nSLOW = time.sleep(0.01) or {i}\n\n"
                  f"def g():\n    return {i}\n")
        path.write_text(source)
        timer = threading.Timer(rng.uniform(0, 0.02), os.kill, (os.getpid(), signal.SIGINT))
        ok = False
        timer.start()
        armed[0] = True
        try:
            ok = hotswap.reload(soak_signalled).ok
        except KeyboardInterrupt:
            interrupted += 1
        finally:
            armed[0] = False
        timer.join()
        applied += ok
        running = hotswap.running_source(soak_signalled)
        new = running == source.encode()
        g = getattr(soak_signalled, "g", None)
        if f() != (i if new else f()) or (new and (g is None or g() != i)) or (ok and not new):
            problems.append(f"signal {i}: the module is neither all old nor all new (f={f()}, new baseline={new})")
            break
        if not new and running is not None and f"return {f()}\n".encode() not in running:
            problems.append(f"signal {i}: f() = {f()} does not match the source it runs")
            break
    signal.signal(signal.SIGINT, previous)
    print(f"signal during reload: {SIGNALS} reloads, {interrupted} interrupted, {applied} applied, all consistent"
          if not problems else "signal during reload: FAILED")
    return problems


def main() -> int:
    root = Path(tempfile.mkdtemp(prefix="hotswap-soak-"))
    sys.path.insert(0, str(root))
    problems = (soak_reloads(root) + soak_template(root) + soak_fork_and_reload(root)
                + soak_signal_during_reload(root))
    for problem in problems:
        print(f"SOAK FAILED: {problem}")
    if not problems:
        print("soak passed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

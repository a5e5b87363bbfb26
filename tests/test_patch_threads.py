"""Reloads applied while other threads call the module: each call sees the old or the new version, never a mix."""

from __future__ import annotations

import sys
import threading
import time

from conftest import wait_until, warm

VERSION_A = """
    class Base:
        def m(self):
            return "base"

    class C(Base):
        @property
        def p(self):
            return ("A", 1)

        def m(self):
            return ("A", "plain")

    def f(x, *, k=1):
        return ("A", x + k)

    def h(v=1):
        return ("A", v)

    def make():
        n = 1
        def inner():
            return ("A", n)
        return inner
"""

VERSION_B = (VERSION_A.replace('("A", 1)', '("B", 2)')
             .replace('return ("A", "plain")', 'return ("B", super().m())')
             .replace('return ("A", x + k)', 'return ("B", x + k)').replace("k=1", "k=2")
             .replace('def h(v=1):\n        return ("A", v)', 'def h(v=2):\n        return ("B", v)')
             .replace('return ("A", n)', 'return ("B", n + 1)'))

# Every edit lands while all eight threads are mid-call; 200 of them give any mix hundreds of chances to show.
EDITS = 200

ALLOWED = {
    "f": {("A", 2), ("B", 3)},
    "fk": {("A", 11), ("B", 12)},
    "h": {("A", 1), ("B", 2)},
    "p": {("A", 1), ("B", 2)},
    "m": {("A", "plain"), ("B", "base")},
    "inner": {("A", 1), ("B", 2)},
}


def test_eight_threads_calling_while_edits_apply(modules):
    m = modules.load(VERSION_A)
    f, h, obj, inner = m.f, m.h, m.C(), m.make()
    method = obj.m
    calls = {
        "f": lambda: f(1),
        "fk": lambda: f(x=10),
        "h": lambda: h(),
        "p": lambda: obj.p,
        "m": lambda: method(),
        "inner": lambda: inner(),
    }
    for call in calls.values():
        warm(call, times=2000)
    stop = threading.Event()
    bad: list = []
    counts = [0] * 8

    def worker(slot: int) -> None:
        while not stop.is_set():
            for name, call in calls.items():
                try:
                    result = call()
                except BaseException as exc:  # noqa: BLE001 - any exception is a failure here
                    bad.append((name, repr(exc)))
                    return
                if result not in ALLOWED[name]:
                    bad.append((name, result))
                    return
            counts[slot] += 1
            # Hand the GIL on after each round: the editing thread then waits behind one switch interval, not
            # behind eight, and every edit still lands while all eight threads are mid-call.
            time.sleep(0)

    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-3)  # switch threads more often than the default 5 ms
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    try:
        for t in threads:
            t.start()
        # Every thread is calling before the first edit (on a loaded machine one may start late).
        assert wait_until(lambda: all(counts) or bool(bad), timeout=60), counts
        for i in range(EDITS):
            report = modules.edit(m, VERSION_B if i % 2 == 0 else VERSION_A)
            assert report.ok, report.error
    finally:
        stop.set()
        for t in threads:
            t.join()
        sys.setswitchinterval(old_interval)
    assert not bad, bad[:5]
    assert all(counts), counts
    assert f(1) == ("A", 2) and obj.m() == ("A", "plain") and inner() == ("A", 1)

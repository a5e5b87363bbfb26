"""A scripted tour of hotswap's three tiers, with no typing needed: run it with `make demo`.

1. Patch in place: a loop keeps calling a module's functions through references taken at the start (`from
   shop import price`, a bound method of an existing cart, a callback in a registry) while this script saves
   edits to the file; an `AutoReloader` applies each save, and the demo prints how long it took from the save
   to the loop seeing the new result.
2. A broken save is reported with its file and line, and the loop keeps running the old code.
3. Warm restart: `hotswap run` runs a small app; a change it cannot patch (a class's `__slots__`) restarts it
   from a template process in milliseconds, and so does a new third-party import (the template is rebuilt).
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import hotswap

SHOP = textwrap.dedent(
    '''
    import hotswap

    reloads = 0
    if hotswap.currently_reloading():
        reloads += 1

    TAX = 0.25

    def price(net):
        return round(net * (1 + TAX), 2)

    class Cart:
        def __init__(self):
            self.items = []

        def add(self, net):
            self.items.append(net)
            return self

        def total(self):
            return sum(price(n) for n in self.items)
    '''
)

APP = textwrap.dedent(
    '''
    import time

    class Point:
        __slots__ = ("x",)

    def message():
        return "v1"

    while True:
        print("app says", message(), flush=True)
        time.sleep(0.02)
    '''
)


def say(text: str = "") -> None:
    print(text, flush=True)


class Loop:
    """The user's long-running program: calls stale references every millisecond and keeps the last result."""

    def __init__(self, shop) -> None:
        from shop import price  # noqa: F401  (imported inside shop's directory; a stale reference on purpose)

        cart = shop.Cart().add(10).add(5)
        callbacks = [shop.price]
        self.calls = (price, cart.total, callbacks[0])
        self.last = None
        self.count = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        price, total, callback = self.calls
        while not self.stop.is_set():
            self.last = (price(10), total(), callback(100))
            self.count += 1
            time.sleep(0.001)

    def wait_for(self, expected, timeout: float = 5.0) -> float:
        start = time.perf_counter()
        while self.last != expected:
            if time.perf_counter() - start > timeout:
                raise SystemExit(f"demo failed: the loop still sees {self.last}, expected {expected}")
            time.sleep(0.0002)
        return time.perf_counter() - start


def tier_one(root: Path) -> None:
    path = root / "shop.py"
    path.write_text(SHOP)
    sys.path.insert(0, str(root))
    shop = importlib.import_module("shop")
    loop = Loop(shop)
    reloader = hotswap.AutoReloader(path=root)
    say("1. Patch in place. A loop calls price(10), cart.total() and a registered callback(100), every ms,")
    say("   through references it took before any edit:")
    loop.wait_for((12.5, 18.75, 125.0))
    say(f"   before any edit        {loop.last}")
    source = SHOP
    steps = [
        ("a function body: round to whole units", "return round(net * (1 + TAX), 2)", "return round(net * (1 + TAX))",
         (12, 18, 125)),
        ("a constant the function reads: TAX 25% -> 10%", "TAX = 0.25", "TAX = 0.10", (11, 17, 110)),
        ("a method: existing carts get a loyalty discount", "return sum(price(n) for n in self.items)",
         "return sum(price(n) for n in self.items) - 1", (11, 16, 110)),
    ]
    for title, old, new, expected in steps:
        source = source.replace(old, new)
        saved = time.perf_counter()
        path.write_text(source)
        loop.wait_for(expected)
        latency_ms = (time.perf_counter() - saved) * 1000
        report = reloader.wait_for_reload(timeout=5)
        say(f"   edit {title}")
        say(f"     save -> live in {latency_ms:5.1f} ms   {report.summary() if report else ''}")
        say(f"     the loop now sees    {loop.last}")

    say("\n2. A broken save (a syntax error) is reported; the loop keeps running the old code:")
    path.write_text(source.replace("def price(net):", "def price(net:"))
    report = reloader.wait_for_reload(timeout=5)
    if report is None or report.ok:
        raise SystemExit("demo failed: the broken save was not reported")
    where = next((line.strip() for line in report.error.splitlines() if "line" in line), "")
    say(f"     reported: {report.error.strip().splitlines()[-1]}  ({where})")
    time.sleep(0.05)
    say(f"     the loop still sees  {loop.last} ({loop.count} calls so far, no restart)")
    source = source.replace("self.items) - 1", "self.items) - 2")
    path.write_text(source)
    loop.wait_for((11, 15, 110))
    report = reloader.wait_for_reload(timeout=5)
    say(f"     the next good save applies: {report.summary() if report else 'no reload'}")
    say(f"     the loop now sees    {loop.last}")
    say(f"     the module counted {shop.reloads} reloads through hotswap.currently_reloading()")
    reloader.stop()
    loop.stop.set()
    loop.thread.join()


def tier_three(root: Path) -> None:
    say("\n3. Warm restart: `hotswap run app.py` runs the app in a process forked from a template.")
    app_dir = root / "app"
    vendor = root / "vendor" / "heavylib"
    app_dir.mkdir()
    vendor.mkdir(parents=True)
    # A stand-in for a third-party package that is slow to import (think pandas).
    (vendor / "__init__.py").write_text("import time\ntime.sleep(0.3)\nVALUE = 42\n")
    app = app_dir / "app.py"
    app.write_text(APP)
    env = dict(os.environ, PYTHONPATH=str(root / "vendor"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "hotswap", "run", "--path", str(app_dir), str(app)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True,
    )
    lines: list = []
    events: list = []

    def pump(stream, sink) -> None:
        for line in stream:
            sink.append((time.perf_counter(), line.rstrip()))

    for stream, sink in ((proc.stdout, lines), (proc.stderr, events)):
        threading.Thread(target=pump, args=(stream, sink), daemon=True).start()

    def wait_line(text: str, after: float, timeout: float = 20.0) -> float:
        start = time.perf_counter()
        while time.perf_counter() - start < timeout:
            for stamp, line in list(lines):
                if stamp >= after and text in line:
                    return stamp
            time.sleep(0.002)
        raise SystemExit(f"demo failed: the app never printed {text!r}; hotswap said: {[e for _, e in events]}")

    try:
        wait_line("v1", 0)
        say("     the app prints       'app says v1'")
        edits = [
            ("a class's __slots__ changes (cannot be patched in place)",
             ('__slots__ = ("x",)', '__slots__ = ("x", "y")'), ('return "v1"', 'return "v2"'), "v2"),
            ("a new third-party import (the template is rebuilt first)",
             ("import time", "import time\nimport heavylib"),
             ('return "v2"', 'return "v3, heavylib says %d" % heavylib.VALUE'), "v3"),
        ]
        source = APP
        for title, (a, b), (c, d), marker in edits:
            source = source.replace(a, b).replace(c, d)
            saved = time.perf_counter()
            seen = len(events)
            app.write_text(source)
            stamp = wait_line(marker, saved)
            say(f"   edit: {title}")
            for _, event in events[seen:]:
                say(f"     {event}")
            say(f"     save -> new app output in {(stamp - saved) * 1000:.0f} ms: '{lines[-1][1]}'")
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    say("     Ctrl-C stopped the app, its template and the supervisor.")


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="     [log] %(message)s", stream=sys.stdout)
    root = Path(tempfile.mkdtemp(prefix="hotswap-demo-"))
    say("hotswap demo: edits applied to running programs.\n")
    started = time.perf_counter()
    tier_one(root)
    if hasattr(os, "fork"):
        tier_three(root)
    else:
        say("\n3. (warm restart needs os.fork; skipped on this platform)")
    say(f"\ndemo finished in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

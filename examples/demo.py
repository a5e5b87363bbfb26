"""A scripted tour of hotswap: a loop keeps running while its module is edited on disk.

Run it with `make demo`. It writes a small module to a temporary directory, starts a loop that calls the
module's functions through references taken at the start (`from shop import price`, a bound method, a
callback in a registry), then saves edits to the file and reloads it, printing what the loop sees.
"""

from __future__ import annotations

import importlib
import logging
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import hotswap

SHOP_V1 = '''
    import hotswap

    reloads = 0
    if hotswap.currently_reloading():
        reloads += 1

    TAX = 0.20

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

STEPS = [
    ("change a function body (round to whole units)", "return round(net * (1 + TAX), 2)",
     "return round(net * (1 + TAX))"),
    ("change a constant that a function reads", "TAX = 0.20", "TAX = 0.10"),
    ("change a method: existing instances follow", "return sum(price(n) for n in self.items)",
     "return sum(price(n) for n in self.items) - 1  # loyalty discount"),
    ("a broken save: reported, the loop keeps running old code", "def price(net):", "def price(net:"),
]


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="  [hotswap log] %(message)s", stream=sys.stdout)
    root = Path(tempfile.mkdtemp(prefix="hotswap-demo-"))
    path = root / "shop.py"
    source = textwrap.dedent(SHOP_V1)
    path.write_text(source)
    sys.path.insert(0, str(root))
    shop = importlib.import_module("shop")

    from shop import price  # a stale reference, the kind plain importlib.reload leaves behind

    cart = shop.Cart().add(10).add(5)
    total = cart.total  # a bound method of an existing instance
    callbacks = [shop.price]  # a callback in a registry
    seen = []
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            seen.append((price(10), total(), callbacks[0](100)))
            time.sleep(0.001)

    worker = threading.Thread(target=loop, daemon=True)
    worker.start()
    time.sleep(0.02)
    print("hotswap demo: a loop calls price(10), cart.total() and a registered callback(100) every millisecond\n")
    print(f"  before any edit      -> price(10)={price(10)}  cart.total()={total()}  callback(100)={callbacks[0](100)}")
    ok = True
    for title, old, new in STEPS:
        if old not in source:
            raise SystemExit(f"demo script is out of date: {old!r} not found")
        edited = source.replace(old, new)
        path.write_text(edited)
        report = hotswap.reload(shop)
        time.sleep(0.01)
        print(f"\n* {title}\n  {report.summary()}")
        if report.ok:
            source = edited
            print(f"  the loop now sees    -> price(10)={seen[-1][0]}  cart.total()={seen[-1][1]}  "
                  f"callback(100)={seen[-1][2]}")
        else:
            print(f"  the loop still sees  -> price(10)={seen[-1][0]}  cart.total()={seen[-1][1]}")
            path.write_text(source)  # the user fixes the save
            ok &= hotswap.reload(shop).ok
    stop.set()
    worker.join()
    print(f"\nthe module noticed {shop.reloads} reloads through currently_reloading(); "
          f"the loop ran {len(seen)} times without a restart.")
    expected = (round(10 * 1.1), round(10 * 1.1) + round(5 * 1.1) - 1, round(100 * 1.1))
    if seen[-1] != expected:
        print(f"unexpected final state {seen[-1]} != {expected}")
        return 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

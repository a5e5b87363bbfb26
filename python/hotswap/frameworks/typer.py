"""typer: a command whose decorator changed is registered once, with its new options.

Mechanism: typer builds its click commands from its registrations (``app.registered_commands``) each time the
app runs, and options come from the function's signature, which a reload patches in place. A re-run
``@app.command(...)`` appends a second registration, though; after each successful reload of a module, the
adapter drops every registration whose callback is a top-level function of that module that the module no
longer binds (removed, or registered again by the re-run decorator, whose registration takes the old one's place).

Trade-off: apps are found through a weak registry filled when a ``typer.Typer`` is created, so an app created
before the adapter was activated is not reconciled.
"""

from __future__ import annotations

import inspect
import sys
import types
import weakref
from typing import Any

from . import track_instances
from .click import callback_key

_typers: "weakref.WeakValueDictionary[int, Any]" = weakref.WeakValueDictionary()


def activate(typer: types.ModuleType) -> None:
    from ..reload import on_reload

    track_instances(typer.Typer, _typers)
    on_reload(_on_typer_reload)


def _on_typer_reload(report: Any) -> None:
    if not report.ok:
        return
    module = sys.modules.get(report.module)
    if module is None:
        return
    for app in list(_typers.values()):
        registered = getattr(app, "registered_commands", None)
        if not isinstance(registered, list):
            continue
        kept: list = []
        moved: set = set()
        for info in registered:
            if id(info) in moved:
                continue
            key = callback_key(getattr(info, "callback", None))
            if key is not None and key[0] == module.__name__ and "." not in key[1] and "<" not in key[1]:
                current = module.__dict__.get(key[1])
                if current is None or inspect.unwrap(current) is not inspect.unwrap(info.callback):
                    # Removed, or registered again by a re-run decorator: that registration takes this place.
                    again = next((i for i in registered if i is not info and id(i) not in moved
                                  and callback_key(getattr(i, "callback", None)) == key
                                  and inspect.unwrap(i.callback) is inspect.unwrap(current)), None)
                    if again is not None:
                        kept.append(again)
                        moved.add(id(again))
                    continue
            kept.append(info)
        registered[:] = kept

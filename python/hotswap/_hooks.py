"""Hooks the engine calls while it reloads: for integrations that keep state derived from user classes.

A framework that builds something from a class when the class is created (a validator, a table mapping, a
route) must redo it when hotswap patches the class in place, since the class is never created again. The
engine calls, in this order, for one reload:

1. ``before_class_change`` callbacks, for each class whose members are about to change, before any write of
   the reload is applied. A callback may raise to refuse the reload: the reload then fails (``ok=False``, the
   message names the callback's exception) and the module is left as it was. Raising ``NeedsRestart`` instead
   refuses only that class: it keeps all its old members, the rest of the reload is applied, and the report's
   ``needs_restart`` carries the message.
2. ``after_class_change`` callbacks, for each such class, once every write of the reload is applied.
3. ``after_module_reload`` callbacks, with the module and its report, after every successful reload.

Callbacks of steps 2 and 3 run when the reload can no longer be undone: one that raises is logged and does not
stop the others. The engine names no framework; integrations register here (and should check ``sys.modules``
for their framework before doing any work).

Trade-off: callbacks run on the reloading thread while the module lock is held, so they must be quick and
must not reload modules themselves.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import types
from typing import Any, Callable, List, Mapping

logger = logging.getLogger("hotswap")

__all__ = [
    "ClassChange", "NeedsRestart", "after_class_change", "after_module_reload", "before_class_change", "remove_hook",
]


class NeedsRestart(Exception):
    """Raised by a ``before_class_change`` callback for a change that cannot be applied in place (a changed
    table column): the class keeps all its old members and the report's ``needs_restart`` gives the message."""


@dataclasses.dataclass(frozen=True)
class ClassChange:
    """One class patched in place by a reload.

    Attributes:
        module: the name of the module being reloaded.
        cls: the live class (its identity never changes).
        old: the members the reload replaces or removes, with their values before the reload.
        new: the members the reload sets, with their new values (removed members are absent).
    """

    module: str
    cls: type
    old: Mapping[str, Any]
    new: Mapping[str, Any]

    @property
    def removed(self) -> List[str]:
        """Names of members the reload removes."""
        return [name for name in self.old if name not in self.new]


_lock = threading.Lock()
_before: List[Callable[[ClassChange], object]] = []
_after: List[Callable[[ClassChange], object]] = []
_modules: List[Callable[[types.ModuleType, Any], object]] = []


def _register(registry: list, callback):
    with _lock:
        registry.append(callback)
    return callback


def before_class_change(callback: Callable[[ClassChange], object]) -> Callable[[ClassChange], object]:
    """Registers ``callback(change)``, called before a class is patched; raising refuses the reload.

    Example:
        >>> from hotswap import _hooks
        >>> seen = []
        >>> cb = _hooks.before_class_change(lambda change: seen.append(change.cls))
        >>> _hooks.remove_hook(cb)
    """
    return _register(_before, callback)


def after_class_change(callback: Callable[[ClassChange], object]) -> Callable[[ClassChange], object]:
    """Registers ``callback(change)``, called once every write of the reload is applied."""
    return _register(_after, callback)


def after_module_reload(callback: Callable[[types.ModuleType, Any], object]):
    """Registers ``callback(module, report)``, called after every successful reload of a module."""
    return _register(_modules, callback)


def remove_hook(callback: Callable) -> None:
    """Unregisters ``callback`` from every hook list it is in."""
    with _lock:
        for registry in (_before, _after, _modules):
            while callback in registry:
                registry.remove(callback)


def _callbacks(registry: list) -> list:
    with _lock:
        return list(registry)


def run_before(change: ClassChange) -> None:
    """Runs the ``before_class_change`` callbacks; the first exception propagates (the engine fails the reload)."""
    for callback in _callbacks(_before):
        callback(change)


def run_after(change: ClassChange) -> None:
    for callback in _callbacks(_after):
        try:
            callback(change)
        except Exception:
            logger.exception("%s: after_class_change hook %r failed", change.module, callback)


def run_module(module: types.ModuleType, report: Any) -> None:
    for callback in _callbacks(_modules):
        try:
            callback(module, report)
        except Exception:
            logger.exception("%s: after_module_reload hook %r failed", module.__name__, callback)

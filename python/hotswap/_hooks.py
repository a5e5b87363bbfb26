"""Hooks the engine calls while it reloads: for integrations that keep state derived from user classes.

A framework that builds something from a class when the class is created (a validator, a table mapping, a
route) must redo it when hotswap patches the class in place, since the class is never created again. The
engine calls, in this order, for one reload:

1. ``before_class_change`` callbacks, for each class whose members are about to change, before any write of
   the reload is applied. A callback may raise to refuse the reload: the reload then fails (``ok=False``, the
   message names the callback's exception) and the module is left as it was. Raising ``NeedsRestart`` instead
   refuses only that class: it keeps all its old members, the rest of the reload is applied, and the report's
   ``needs_restart`` carries the message.
2. ``before_module_commit`` callbacks, with a ``ModuleChange``, once every write of the reload is applied and
   before it is recorded: the place to bring framework state derived from the module (a router's routes) up to
   date inside the reload's transaction. A callback may raise to refuse the reload: everything is rolled back and
   the report names the exception. It may return an ``undo`` callable, called if the reload is rolled back after
   all (a later callback refused it, or Ctrl-C arrived as it was being recorded).
3. ``after_class_change`` callbacks, for each such class, once the reload is committed.
4. ``after_module_reload`` callbacks, with the module and its report, after every successful reload.

Callbacks of steps 3 and 4 run when the reload can no longer be undone: one that raises is logged and does not
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
from typing import Any, Callable, List, Mapping, Optional, Tuple

logger = logging.getLogger("hotswap")

__all__ = [
    "ClassChange", "ModuleChange", "NeedsRestart", "after_class_change", "after_module_reload", "before_class_change",
    "before_module_commit", "remove_hook",
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


@dataclasses.dataclass(frozen=True)
class ModuleChange:
    """A reload of a module about to be committed: every write of it is applied, nothing is recorded yet.

    Attributes:
        module: the live module.
        patched, added, removed: names, as the report will give them.
        previous: the module-level names the reload bound to another object or unbound, with their values
            before it (a re-run ``app = Starlette(routes=[...])`` gives ``{"app": <the old app>}``).
    """

    module: types.ModuleType
    patched: Tuple[str, ...]
    added: Tuple[str, ...]
    removed: Tuple[str, ...]
    previous: Mapping[str, Any]


_Undo = Callable[[], object]
_lock = threading.Lock()
_commit: List[Callable[[ModuleChange], Optional[_Undo]]] = []
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


def before_module_commit(callback: Callable[[ModuleChange], Optional[_Undo]]) -> Callable[[ModuleChange], Any]:
    """Registers ``callback(change)``, called with every write of a reload applied, before it is committed.

    Raising refuses the reload (it is rolled back, the report names the exception); returning a callable asks for
    it to be called if the reload is rolled back after all.

    Example:
        >>> from hotswap import _hooks
        >>> cb = _hooks.before_module_commit(lambda change: None)
        >>> _hooks.remove_hook(cb)
    """
    return _register(_commit, callback)


def after_class_change(callback: Callable[[ClassChange], object]) -> Callable[[ClassChange], object]:
    """Registers ``callback(change)``, called once the reload is committed."""
    return _register(_after, callback)


def after_module_reload(callback: Callable[[types.ModuleType, Any], object]):
    """Registers ``callback(module, report)``, called after every successful reload of a module."""
    return _register(_modules, callback)


def remove_hook(callback: Callable) -> None:
    """Unregisters ``callback`` from every hook list it is in."""
    with _lock:
        for registry in (_before, _commit, _after, _modules):
            while callback in registry:
                registry.remove(callback)


def _callbacks(registry: list) -> list:
    with _lock:
        return list(registry)


def run_before(change: ClassChange) -> None:
    """Runs the ``before_class_change`` callbacks; the first exception propagates (the engine fails the reload)."""
    for callback in _callbacks(_before):
        callback(change)


def run_commit(change: Callable[[], ModuleChange]) -> List[_Undo]:
    """Runs the ``before_module_commit`` callbacks and returns their undo callables. If one raises, the undo
    callables of those before it are called and the exception propagates (the engine fails the reload).
    ``change`` makes the ``ModuleChange``, only when a callback is registered (every reload passes here)."""
    undos: List[_Undo] = []
    callbacks = _callbacks(_commit)
    if not callbacks:
        return undos
    made = change()
    for callback in callbacks:
        try:
            undo = callback(made)
        except BaseException:
            run_undo(undos)
            raise
        if undo is not None:
            undos.append(undo)
    return undos


def run_undo(undos: List[_Undo]) -> None:
    """Calls undo callables from ``run_commit``, newest first; one that raises is logged."""
    for undo in reversed(undos):
        try:
            undo()
        except Exception:
            logger.exception("undo of a before_module_commit hook %r failed", undo)


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

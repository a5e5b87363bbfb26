"""Framework adapters: what a framework computed from your code is brought up to date after a reload.

Mechanism: each adapter is one module of this package, named in ``ADAPTERS`` by the framework module that
activates it. ``install()`` loads an adapter at once when its framework is already in ``sys.modules``, and
otherwise the moment the framework finishes importing (``when_imported``: a ``sys.meta_path`` finder that
wraps only the loaders of the awaited module names, and hands the real loader back to the module before its
code runs). So no framework is ever imported by hotswap, and a program that uses none pays one dictionary
lookup per import. Adapters talk to the engine only through its hooks (``hotswap.on_reload``,
``currently_reloading`` and ``hotswap._hooks``); the engine never names a framework.

Adapters that reconcile what a framework serves (routes) do it inside the reload's transaction, through the
engine's ``before_module_commit`` hook: a framework that refuses the new routes fails the reload, and
everything is rolled back.

Trade-off: adapters keep framework knowledge out of the engine, at the price of wrapping a few framework
methods (those that register routes) so that what a reload registers is staged until it commits.

An adapter module defines ``activate(framework_module)``; it is called once per process.
"""

from __future__ import annotations

import functools
import importlib
import importlib.abc
import importlib.machinery
import logging
import sys
import threading
import types
import weakref
from typing import Any, Callable, Dict, List, Optional, Sequence

logger = logging.getLogger("hotswap")

__all__ = ["ADAPTERS", "StandIn", "activated", "file_saved", "install", "on_file_saved", "stand_in",
           "track_instances", "when_imported"]

#: Framework module -> adapter module of this package, activated when the framework is imported.
#: Order matters where adapters build on each other: Pydantic models are rebuilt before FastAPI's routes, and a
#: Starlette app bound anew hands its routes to the live one before FastAPI reconciles routers.
ADAPTERS: Dict[str, str] = {
    "pydantic": ".pydantic",
    "attr": ".attrs",
    "sqlalchemy": ".sqlalchemy",
    "django": ".django",
    "click": ".click",
    "typer": ".typer",
    "starlette": ".starlette",
    "fastapi": ".fastapi",
    "flask": ".flask",
    "jinja2": ".jinja2",
}

_lock = threading.RLock()
_waiting: Dict[str, List[Callable[[types.ModuleType], object]]] = {}
_activated: Dict[str, types.ModuleType] = {}
_finding = threading.local()


def activated() -> Sequence[str]:
    """The adapters activated so far in this process (module names of this package, e.g. ``"fastapi"``)."""
    with _lock:
        return tuple(_activated)


def _loaded(name: str) -> Optional[types.ModuleType]:
    """The module if it is imported and done running its code (not merely present while it initialises)."""
    module = sys.modules.get(name)
    if module is None:
        return None
    spec = getattr(module, "__spec__", None)
    if spec is not None and getattr(spec, "_initializing", False):
        return None
    return module


def when_imported(name: str, callback: Callable[[types.ModuleType], object]) -> None:
    """Calls ``callback(module)`` once ``name`` is imported: now if it already is, else right after its import.

    A callback that raises is logged; the import itself is never affected.

    Example:
        >>> from hotswap.frameworks import when_imported
        >>> when_imported("json", lambda module: print(module.__name__))
        json
    """
    module = _loaded(name)
    if module is None:
        with _lock:
            module = _loaded(name)
            if module is None:
                _waiting.setdefault(name, []).append(callback)
                _install_finder()
                return
    _call(callback, module)


def _call(callback: Callable[[types.ModuleType], object], module: types.ModuleType) -> None:
    try:
        callback(module)
    except Exception:  # noqa: BLE001 - an adapter's failure must never break the program's import
        logger.exception("hotswap: hook for %s failed", module.__name__)


def _imported(module: types.ModuleType) -> None:
    with _lock:
        callbacks = _waiting.pop(module.__name__, [])
        if not _waiting and _finder in sys.meta_path:  # nothing left to wait for: imports skip the finder again
            sys.meta_path.remove(_finder)
    for callback in callbacks:
        _call(callback, module)


class _HookedLoader:
    """Runs the real loader, then the callbacks waiting for the module. The module only ever sees the real one."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.loader, attr)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Optional[types.ModuleType]:
        # The import system calls spec.loader.exec_module next: the real loader is put back in exec_module.
        create = getattr(self.loader, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module: types.ModuleType) -> None:
        if getattr(module, "__spec__", None) is not None:
            module.__spec__.loader = self.loader
        if getattr(module, "__loader__", None) is self:
            module.__loader__ = self.loader
        self.loader.exec_module(module)
        _imported(module)


class _ImportHookFinder(importlib.abc.MetaPathFinder):
    """Finds nothing itself: for an awaited module name, wraps the spec the other finders return."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Optional[importlib.machinery.ModuleSpec]:
        if fullname not in _waiting or getattr(_finding, "active", False):
            return None
        _finding.active = True
        try:
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    break
            else:
                return None
        finally:
            _finding.active = False
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _HookedLoader(spec.loader)
        return spec


_finder = _ImportHookFinder()


def _install_finder() -> None:
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)


def _activate(adapter: str, framework: types.ModuleType) -> None:
    with _lock:
        if adapter in _activated:
            return
        module = importlib.import_module(adapter, __name__)
        _activated[adapter.lstrip(".")] = module
    module.activate(framework)
    logger.debug("hotswap: %s adapter active", adapter.lstrip("."))


def install() -> None:
    """Activates the adapter of every framework in ``ADAPTERS`` when (or as soon as) it is imported.

    Idempotent; called by ``AutoReloader`` and ``hotswap run``.

    Example:
        >>> import hotswap.frameworks
        >>> hotswap.frameworks.install()
    """
    with _lock:
        if getattr(install, "done", False):
            return
        install.done = True  # type: ignore[attr-defined]
    for framework, adapter in ADAPTERS.items():
        when_imported(framework, lambda module, adapter=adapter: _activate(adapter, module))


def track_instances(cls: type, registry: "weakref.WeakValueDictionary[int, Any]",
                    on_new: Optional[Callable[[Any], object]] = None) -> None:
    """Makes ``cls`` (and its subclasses) put each new instance into ``registry`` (by id, held weakly), and call
    ``on_new(instance)`` if given: how an adapter finds the apps, routers or environments a program made."""
    init = cls.__init__

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        try:
            registry[id(self)] = self
        except TypeError:  # pragma: no cover - an instance without weak references
            return
        if on_new is not None:
            on_new(self)

    cls.__init__ = __init__  # type: ignore[misc]


class StandIn:
    """Stands in for a framework object (an app, a router) while a reload registers routes on it: the
    framework's own method runs with this as ``self``, so it writes to the copies given here (a route list, a
    URL map) while every other attribute is the object's. The adapter makes the copies live at the commit."""

    def __init__(self, stands_for: Any, **copies: Any) -> None:
        self.stands_for = stands_for  # a name no framework object has: the framework's code never reads it
        self.__dict__.update(copies)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.stands_for, attr)


def stand_in(stages: Dict[int, StandIn], target: Any, make: Callable[[Any], StandIn]) -> StandIn:
    """The stand-in for ``target`` in ``stages`` (the current reload's, by id), made by ``make`` the first time."""
    stage = stages.get(id(target))
    if stage is None:
        stage = stages[id(target)] = make(target)
    return stage


_file_handlers: List[Callable[[str], bool]] = []


def on_file_saved(handler: Callable[[str], bool]) -> Callable[[str], bool]:
    """Registers ``handler(path)``, called for each saved file that is not a Python module (a template, a
    config file); it returns True when it dealt with the file (a template cache cleared)."""
    with _lock:
        _file_handlers.append(handler)
    return handler


def file_saved(path: str) -> bool:
    """Tells the adapters that ``path`` was saved; True when one of them dealt with it."""
    with _lock:
        handlers = list(_file_handlers)
    handled = False
    for handler in handlers:
        try:
            handled = bool(handler(path)) or handled
        except Exception:  # noqa: BLE001 - one adapter's failure must not stop the others
            logger.exception("hotswap: file handler %r failed for %s", handler, path)
    return handled

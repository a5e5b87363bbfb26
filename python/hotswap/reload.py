"""The patch engine's public face: ``reload(module)``, ``ReloadReport``, ``currently_reloading()``, ``on_reload``.

Mechanism: the module's current source is split into top-level statements (natively) and compared with the
source it is running (its baseline). Only new and changed statements run again, plus the unchanged ones that
read a name this reload rebinds. Changed functions and classes are not rebound: their new versions are built
in a scratch namespace and donate their code, defaults, closures and members to the live objects, in one
native step (``hotswap._native.apply``). Trade-off: module state survives and every stale reference runs the
new code, at the price of re-import semantics being approximated statement by statement (``mode="module"``
re-runs everything).
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import threading
import time
import types
from typing import Callable, Optional, Tuple, TypeVar, Union

from . import _engine, _native, _source
from . import _hooks as _engine_hooks
from ._source import running_source, track

logger = logging.getLogger("hotswap")

__all__ = ["ReloadReport", "currently_reloading", "on_reload", "reload", "running_source", "track"]

_source.install_import_hook()


@dataclasses.dataclass(frozen=True)
class ReloadReport:
    """What one reload of one module did.

    Attributes:
        module: the module's name.
        path: the source file that was read.
        ok: False when the new source could not be applied (the module is then exactly as before).
        error: for ``ok=False``, the reason: the formatted traceback (real file and line) of the user's code.
        patched: qualified names of live functions and classes updated in place.
        added: qualified names that did not exist before.
        removed: qualified names removed from the module (references to them keep the old behaviour).
        executed: how many top-level statements ran.
        needs_restart: why part of the edit could not be applied in place (a restart is needed), else None.
        duration_ms: wall time of the reload.
        notes: what the reload did that a reader of the source would not expect, in words: an unchanged
            statement that ran again because it acts on a changed definition, a class decorator applied
            again to the live class, references taken before an edit that keep the old version.
    """

    module: str
    path: str
    ok: bool
    error: Optional[str] = None
    patched: Tuple[str, ...] = ()
    added: Tuple[str, ...] = ()
    removed: Tuple[str, ...] = ()
    executed: int = 0
    needs_restart: Optional[str] = None
    duration_ms: float = 0.0
    notes: Tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        """Whether the reload changed anything."""
        return bool(self.patched or self.added or self.removed or self.executed or self.needs_restart)

    def summary(self) -> str:
        """One line for logs, e.g. ``app.models: patched 2, added 1 (0.41 ms)``."""
        if not self.ok:
            # The exception's type and whole message: the lines after the traceback's (indented) entries.
            lines = (self.error or "").strip().splitlines()
            start = max((i + 1 for i, line in enumerate(lines) if line[:1].isspace()), default=0)
            return f"{self.module}: reload failed, old code kept: {' / '.join(lines[start:] or lines[-1:])}"
        parts = [f"{label} {len(names)}" for label, names in
                 (("patched", self.patched), ("added", self.added), ("removed", self.removed)) if names]
        if self.executed:
            parts.append(f"ran {self.executed} statement{'s' if self.executed != 1 else ''}")
        if self.needs_restart:
            parts.append(f"needs restart: {self.needs_restart}")
        return f"{self.module}: {', '.join(parts) or 'no change'} ({self.duration_ms:.2f} ms)"


_state = threading.local()


def currently_reloading() -> bool:
    """True while hotswap is running a module's statements for a reload, on the thread doing it.

    A top-level statement that calls it runs again on every reload of its module, which is how a module
    notices that it is being reloaded.

    Example:
        >>> import hotswap
        >>> hotswap.currently_reloading()
        False
    """
    return getattr(_state, "depth", 0) > 0


_hooks: "list[Callable[[ReloadReport], object]]" = []
_hooks_lock = threading.Lock()
_F = TypeVar("_F", bound=Callable[[ReloadReport], object])


def on_reload(callback: _F) -> _F:
    """Calls ``callback(report)`` after every reload of any module (also usable as a decorator).

    A hook that raises is logged and does not stop the others.

    Example:
        >>> import hotswap
        >>> @hotswap.on_reload
        ... def log_it(report):
        ...     print(report.summary())
    """
    with _hooks_lock:
        _hooks.append(callback)
    return callback


def _run_hooks(report: ReloadReport) -> None:
    with _hooks_lock:
        hooks = list(_hooks)
    for hook in hooks:
        try:
            hook(report)
        except Exception:
            logger.exception("on_reload hook %r failed", hook)


# One reload at a time in the whole process: two threads reloading the same module must not interleave.
_reload_lock = threading.RLock()


def reload(
    module: Union[types.ModuleType, str], *, mode: str = "changed", source: Union[bytes, str, None] = None
) -> ReloadReport:
    """Applies the module's current source to the running program, in place.

    Only what changed runs again; changed functions and classes keep their identity, so references taken
    before the edit (``from m import f``, bound methods, callbacks in registries, instances) run the new code.
    A failure in the module's code never raises: the report has ``ok=False`` and the module is unchanged.

    Args:
        module: the module object or its name in ``sys.modules``.
        mode: ``"changed"`` runs new and changed statements (and those reading a name they rebind);
            ``"module"`` runs every top-level statement, as a re-import would, still patching in place.
        source: the new source, if the caller already read it; default, the module's file.

    Raises:
        TypeError: ``module`` is not a module or a name.
        ValueError: no such module, a built-in or extension module, a module without a source file, or a bad
            ``mode``.

    Example:
        >>> import hotswap, json.tool
        >>> hotswap.reload("json.tool").ok
        True
    """
    if mode not in ("changed", "module"):
        raise ValueError(f"mode must be 'changed' or 'module', not {mode!r}")
    if isinstance(module, str):
        found = sys.modules.get(module)
        if found is None:
            raise ValueError(f"no module named {module!r} is imported")
        module = found
    path = _source.module_path(module)
    start = time.perf_counter()
    with _reload_lock:
        report = _reload(module, path, mode, source, start)
    # One line per reload, at info level; a failure is in the report, which callers (the watcher) surface.
    logger.info("%s", report.summary())
    if report.ok:
        _engine_hooks.run_module(module, report)
    _run_hooks(report)
    return report


def _reload(
    module: types.ModuleType, path: str, mode: str, source: Union[bytes, str, None], start: float
) -> ReloadReport:
    name = module.__name__

    def failed(error: str) -> ReloadReport:
        return ReloadReport(name, path, False, error=error, duration_ms=(time.perf_counter() - start) * 1000)

    try:
        if source is None:
            source = _source.read(path)
    except OSError as exc:
        return failed(f"{path}: cannot read the source: {exc}")
    try:
        text = source if isinstance(source, str) else _source.decode(source)
    except (UnicodeDecodeError, SyntaxError) as exc:  # SyntaxError: a bad coding cookie
        return failed(f"{path}: cannot decode the source: {exc}")
    old = _source.baseline(module, path)
    try:
        new_stmts = _source.split(text, path, old)
    except SyntaxError as exc:
        return failed(_engine._format_user_error(exc, path))
    whole = mode == "module" or old is None
    old_stmts = old.stmts if old is not None else new_stmts
    plan = _native.plan(list(old_stmts), list(new_stmts), whole_module=whole)
    tx = _engine.Transaction(module, path, text, old_stmts, new_stmts, set(plan.rebound))
    _state.depth = getattr(_state, "depth", 0) + 1
    try:
        for step in plan.steps:
            stmt = new_stmts[step.index]
            old_stmt = old_stmts[step.old_index] if step.old_index is not None and old is not None else None
            if step.action == "run":
                tx.step_run(stmt, step.reason, old_stmt)
            elif step.action == "patch":
                tx.step_patch(stmt, step.reason, old_stmt)
            else:
                tx.step_move(stmt, old_stmt)
        if old is not None:
            tx.remove(plan.removed)
        tx.patch_closures()
    except _engine.ReloadFailed as exc:
        tx.rollback()
        return failed(str(exc))
    except BaseException:
        tx.rollback()
        raise
    finally:
        _state.depth -= 1
    try:
        tx.commit(record=lambda: _source.set_baseline(module, text, new_stmts))
    except Exception as exc:  # the native step undid its own writes; put the namespace back too
        tx.rollback()
        return failed(f"{path}: could not apply the reload, nothing was changed: {type(exc).__name__}: {exc}")
    return ReloadReport(
        module=name,
        path=path,
        ok=True,
        patched=tuple(dict.fromkeys(tx.patched)),
        added=tuple(dict.fromkeys(tx.added)),
        removed=tuple(dict.fromkeys(tx.removed)),
        executed=tx.executed,
        needs_restart="; ".join(tx.needs_restart) or None,
        duration_ms=(time.perf_counter() - start) * 1000,
        notes=tuple(tx.notes),
    )

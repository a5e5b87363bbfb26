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
import threading
from typing import Callable, Optional, Tuple, TypeVar

logger = logging.getLogger("hotswap")

__all__ = ["ReloadReport", "currently_reloading", "on_reload", "reload"]


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

    @property
    def changed(self) -> bool:
        """Whether the reload changed anything."""
        return bool(self.patched or self.added or self.removed or self.executed or self.needs_restart)

    def summary(self) -> str:
        """One line for logs, e.g. ``app.models: patched 2, added 1 (0.41 ms)``."""
        if not self.ok:
            first = (self.error or "").strip().splitlines()[-1:] or [""]
            return f"{self.module}: reload failed, old code kept: {first[0]}"
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

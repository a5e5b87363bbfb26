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

import _signal  # signal's functions without the enum conversions of signal.py (15 us of every main-thread reload)
import dataclasses
import logging
import os
import signal
import sys
import threading
import time
import types
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple, TypeVar, Union

from . import _crossmodule, _datafiles, _engine, _source
from . import _hooks as _engine_hooks
from ._source import running_source, track

logger = logging.getLogger("hotswap")

__all__ = ["ReloadReport", "currently_reloading", "data_files_read", "on_reload", "reload", "running_source", "track"]

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
        rebound: names of other modules (``"app.views.LIMIT"``) that held an object this reload replaced, bound
            with ``from <module> import ...``, and now hold the new one (also modules importing from those).
        dependents: the reloads of those modules' statements that read a re-bound name (one report each, in
            the order they ran); a failed one left its module as it was.
        error_type: for ``ok=False``, the exception's class name (``"SyntaxError"``, ``"app.errors.BadConfig"``),
            or None when hotswap itself refused the edit (``error_message`` says why).
        error_message: for ``ok=False``, the exception's whole message (without the traceback).
        error_file: for ``ok=False``, the file where it happened: the innermost frame of the reloaded file, else
            the innermost frame.
        error_line: the line in ``error_file``, when known.
        notes: what the reload did that a reader of the source would not expect, in words: an unchanged
            statement that ran again because it acts on a changed definition, a class decorator applied
            again to the live class, references taken before an edit that keep the old version.
        data_files: for a reload triggered by files the module read at import (``reload(m, data_files=...)``),
            those files (real paths); empty for a reload of the module's source.
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
    rebound: Tuple[str, ...] = ()
    dependents: Tuple["ReloadReport", ...] = ()
    error_type: Optional[str] = None
    error_message: Optional[str] = None
    error_file: Optional[str] = None
    error_line: Optional[int] = None

    def where(self) -> str:
        """For ``ok=False``: ``"file:line"`` where it failed (``error_file`` and ``error_line``), or the file."""
        where = self.error_file or self.path
        return f"{where}:{self.error_line}" if self.error_line else where

    def reason(self) -> str:
        """For ``ok=False``: the exception's type and whole message on one line (``"ValueError: a / b"``)."""
        message = " / ".join((self.error_message or self.error or "").strip().splitlines())
        return f"{self.error_type}: {message}" if self.error_type else message
    notes: Tuple[str, ...] = ()
    data_files: Tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        """Whether the reload changed anything."""
        return bool(self.patched or self.added or self.removed or self.executed or self.needs_restart
                    or self.rebound)

    def summary(self) -> str:
        """One line for logs, e.g. ``app.models: patched 2, added 1 (0.41 ms)``."""
        if not self.ok:
            return f"{self.module}: reload failed{self._trigger()}, old code kept: {self.reason()}"
        parts = [f"{label} {len(names)}" for label, names in
                 (("patched", self.patched), ("added", self.added), ("removed", self.removed)) if names]
        if self.executed:
            parts.append(f"ran {self.executed} statement{'s' if self.executed != 1 else ''}")
        if self.rebound:
            modules = {name.rsplit(".", 1)[0] for name in self.rebound}
            parts.append(f"rebound {len(self.rebound)} in {', '.join(sorted(modules))}")
        failed = [report.module for report in self.dependents if not report.ok]
        if failed:
            parts.append(f"failed in {', '.join(failed)} (kept its old imports)")
        if self.needs_restart:
            parts.append(f"needs restart: {self.needs_restart}")
        return f"{self.module}: {', '.join(parts) or 'no change'}{self._trigger()} ({self.duration_ms:.2f} ms)"

    def _trigger(self) -> str:
        return f" ({', '.join(map(os.path.basename, self.data_files))} saved)" if self.data_files else ""


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

# The reload in progress (the thread running it, its transaction), for a forked child: see `_after_fork_in_child`.
_active: Optional[Tuple[int, _engine.Transaction]] = None

#: How long ``os.fork()`` waits for a reload in progress on another thread to finish, in seconds, so that the child
#: starts with every module all old or all new. A reload blocked longer (a top-level statement waiting on the
#: network) does not block the fork: the child undoes its copy of that reload instead.
FORK_WAIT_S = 2.0


def reload(
    module: Union[types.ModuleType, str], *, mode: str = "changed", source: Union[bytes, str, None] = None,
    data_files: Optional[Sequence[Union[str, "os.PathLike[str]"]]] = None,
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
        data_files: files (a config, a template...) that the module's top-level statements read when it was
            imported after hotswap (or when a reload ran them) and that changed: instead of applying the module's
            source, re-runs, in the source the module runs, exactly the statements that read one of them (and
            those reading the names they rebind, as for any reload). All or nothing, like any reload: a file
            that makes a statement fail (a broken JSON) gives ``ok=False`` and the module keeps its values.
            ``report.data_files`` names them. See ``data_files_read``.

    Raises:
        TypeError: ``module`` is not a module or a name.
        ValueError: no such module, a built-in or extension module, a module without a source file, or a bad
            ``mode``.

    Example:
        >>> import hotswap, json.tool
        >>> hotswap.reload("json.tool").ok
        True
    """
    if data_files is not None:
        if source is not None:
            raise ValueError("reload() takes either source or data_files, not both")
        files = tuple(os.path.realpath(os.fspath(file)) for file in data_files)
        return _reload_and_report(module, mode, None, log_failure=True, data_files=files)
    return _reload_and_report(module, mode, source, log_failure=True)


def data_files_read(module: Union[types.ModuleType, str, None] = None) -> Dict[str, Tuple[str, ...]]:
    """The files that modules' top-level statements read while they ran, and which modules read each.

    Recorded for modules imported after ``import hotswap`` and for statements a reload runs (files opened for
    reading, by the module's statements or by anything they call; not the module's own source, not files opened
    later by functions called after the import). ``AutoReloader`` watches these files; saving one re-runs the
    statements that read it (``reload(module, data_files=[path])``).

    Args:
        module: only the files of this module (object or name); default, of every module.

    Returns:
        ``{real path of the file: (module names, ...)}``.

    Example:
        >>> import hotswap
        >>> isinstance(hotswap.data_files_read(), dict)
        True
    """
    if isinstance(module, str):
        module = sys.modules.get(module)
        if module is None:
            return {}
    found = _datafiles.files(None if module is None else [module])
    return {file: tuple(m.__name__ for m in modules) for file, modules in found.items()}


def _reload_and_report(
    module: Union[types.ModuleType, str], mode: str, source: Union[bytes, str, None], *, log_failure: bool,
    data_files: Optional[Tuple[str, ...]] = None, path: Optional[str] = None,
) -> ReloadReport:
    """``reload``; ``log_failure=False`` for a caller that reports failures itself (the watcher warns once);
    ``data_files``: re-run the statements that read them instead (see ``reload``); ``path``: the module's
    resolved source path (``_source.module_path``) when the caller knows it (the watcher, which matched the saved
    file to the module by it): resolving it again costs a system call per directory of the path, each of which
    lets the program's threads take the interpreter from the reload."""
    if mode not in ("changed", "module"):
        raise ValueError(f"mode must be 'changed' or 'module', not {mode!r}")
    if isinstance(module, str):
        found = sys.modules.get(module)
        if found is None:
            raise ValueError(f"no module named {module!r} is imported")
        module = found
    if path is None:
        path = _source.module_path(module)
    start = time.perf_counter()
    global _active
    with _reload_lock, _InterruptWatch() as interrupts:
        outer = _active
        try:
            before = _crossmodule.names(module)
            if data_files is not None:
                report = _reread(module, path, data_files, start, interrupts)
            else:
                report = _reload(module, path, mode, source, start, interrupts)
            if report.ok:
                rebound, dependents = _follow_imports(module, before, {module.__name__}, interrupts)
                if rebound or dependents:
                    report = dataclasses.replace(report, rebound=tuple(rebound), dependents=tuple(dependents))
        finally:
            _active = outer
    # One line per reload, at info level; a failure is in the report, which callers (the watcher) surface. The
    # summary is formatted only when the line is logged.
    log = logger.isEnabledFor(logging.INFO)
    for done in (*report.dependents, report):
        if log and (done.ok or log_failure or done is not report):
            logger.info("%s", done.summary())
        if done.ok:
            _engine_hooks.run_module(sys.modules.get(done.module, module), done)
        _run_hooks(done)
    return report


def _follow_imports(
    module: types.ModuleType, before: Dict[str, object], visited: Set[str], interrupts: _InterruptWatch
) -> Tuple[List[str], List[ReloadReport]]:
    """Rule 2 across modules (see ``_crossmodule``): re-binds ``from module import X`` where X was replaced and
    runs the readers, then follows on from each module changed so."""
    rebound: List[str] = []
    reports: List[ReloadReport] = []
    for other, names in _crossmodule.dependents(module, before):
        if other.__name__ in visited:
            continue
        visited.add(other.__name__)
        other_before = _crossmodule.names(other)
        report = _rebind(other, names, interrupts)
        if report.changed or not report.ok:
            reports.append(report)
        if report.ok:
            rebound.extend(f"{other.__name__}.{name}" for name in names)
            more, more_reports = _follow_imports(other, other_before, visited, interrupts)
            rebound.extend(more)
            reports.extend(more_reports)
    return rebound, reports


def _reread(module: types.ModuleType, path: str, data_files: Tuple[str, ...], start: float,
            interrupts: _InterruptWatch) -> ReloadReport:
    """Re-runs the statements of the running source that read ``data_files``, as a reload (all or nothing)."""
    running = _source.baseline(module, path)
    if running is None:  # records are kept by statement text, which needs the running source
        report = ReloadReport(module.__name__, path, True, duration_ms=(time.perf_counter() - start) * 1000)
    else:
        report = _reload(module, path, "changed", running.text, start, interrupts, reread=data_files)
    return dataclasses.replace(report, data_files=data_files)


def _rebind(module: types.ModuleType, names: Dict[str, object], interrupts: _InterruptWatch) -> ReloadReport:
    """Binds ``names`` in ``module`` and runs (or rebuilds) its statements reading them, all or nothing."""
    path = _source.module_path(module)
    running = _source.baseline(module, path)
    namespace = module.__dict__
    missing = _crossmodule.REMOVED
    previous = {name: namespace.get(name, missing) for name in names}

    def put_back() -> None:
        for name, value in previous.items():
            if namespace.get(name, missing) is names[name]:
                if value is missing:
                    namespace.pop(name, None)
                else:
                    namespace[name] = value

    for name, value in names.items():
        if value is missing:
            namespace.pop(name, None)
        else:
            namespace[name] = value
    try:
        if running is None:  # cannot happen for a module _crossmodule chose, which needs its source
            return ReloadReport(module.__name__, path, True)
        report = _reload(module, path, "changed", running.text, time.perf_counter(), interrupts, rebound=tuple(names))
    except BaseException:
        put_back()
        raise
    if not report.ok:
        put_back()
    return report


class _InterruptWatch:
    """Tells a real Ctrl-C apart from a ``raise KeyboardInterrupt`` in the module's code, on the main thread.

    While a reload runs there, SIGINT goes through a handler that notes it and then calls the program's own
    handler (which raises KeyboardInterrupt by default). A reload that fails with an interrupt that was really
    delivered is rolled back and the interrupt goes on to the program; a module whose code raises
    KeyboardInterrupt itself is a failed reload like any other exception.
    """

    def __init__(self) -> None:
        self.interrupted = False
        self._previous: Optional[Callable[..., object]] = None

    def __enter__(self) -> _InterruptWatch:
        if threading.current_thread() is threading.main_thread():
            previous = _signal.getsignal(signal.SIGINT)
            if callable(previous):  # SIG_IGN or SIG_DFL: no KeyboardInterrupt can come from a signal
                self._previous = previous
                _signal.signal(signal.SIGINT, self._handler)
        return self

    def _handler(self, signum: int, frame: Optional[types.FrameType]) -> None:
        self.interrupted = True
        if self._previous is not None:
            self._previous(signum, frame)

    def __exit__(self, *exc_info: object) -> None:
        # Put the program's handler back, unless the reload installed one of its own (a top-level statement).
        if self._previous is not None and _signal.getsignal(signal.SIGINT) == self._handler:
            _signal.signal(signal.SIGINT, self._previous)


def _reload(
    module: types.ModuleType, path: str, mode: str, source: Union[bytes, str, None], start: float,
    interrupts: _InterruptWatch, rebound: Tuple[str, ...] = (), reread: Tuple[str, ...] = (),
) -> ReloadReport:
    name = module.__name__

    def failed(error: str, exc: Optional[BaseException] = None) -> ReloadReport:
        return ReloadReport(name, path, False, error=error, duration_ms=(time.perf_counter() - start) * 1000,
                            **_error_fields(exc, path, error))

    try:
        if source is None:
            source = _source.read(path)
    except OSError as exc:
        return failed(f"{path}: cannot read the source: {exc}", exc)
    try:
        text = source if isinstance(source, str) else _source.decode(source)
    except (UnicodeDecodeError, SyntaxError) as exc:  # SyntaxError: a bad coding cookie
        return failed(f"{path}: cannot decode the source: {exc}", exc)
    try:
        old = _source.baseline(module, path)
        marked = None
        if reread:  # the statements that read these files run as readers of a name rebound from outside
            recorded = old.stmts if old is not None and old.text == text else _source.split(text, path)
            marked = _datafiles.mark(recorded, _datafiles.readers(module, reread), _DATA_FILE)
            rebound = (*rebound, _DATA_FILE)
        new_stmts, plan = _source.plan(text, path, old, whole_module=mode == "module", rebound=rebound,
                                       statements=marked)
        if marked is None:
            recorded = new_stmts
        old_stmts = old.stmts if old is not None else new_stmts
    except SyntaxError as exc:
        return failed(_engine._format_user_error(exc, path), exc)
    except MemoryError as exc:  # nothing was changed yet
        return failed(f"{path}: not enough memory to reload it, nothing was changed: MemoryError: {exc}", exc)
    code_path = _source.code_filename(module, path)
    tx = _engine.Transaction(module, code_path, text, old_stmts, new_stmts, set(plan.rebound),
                             {step.index: step.members for step in plan.steps if step.members is not None})
    global _active
    _active = (threading.get_ident(), tx)  # `reload` puts back the outer value
    _state.depth = getattr(_state, "depth", 0) + 1
    reads = _datafiles.start(module, code_path)  # files the statements that run read
    steps = plan.steps
    try:
        steps = tx.steps(plan.steps)  # with the unchanged statements that finish a class with changed code
        for step in steps:
            stmt = new_stmts[step.index]
            old_stmt = old_stmts[step.old_index] if step.old_index is not None else None
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
        if interrupts.interrupted:  # a real Ctrl-C while a statement ran: it is the program's
            cause = exc.__context__
            raise cause if isinstance(cause, KeyboardInterrupt) else KeyboardInterrupt() from None
        return failed(str(exc), exc)
    except BaseException:
        tx.rollback()
        raise
    finally:
        _state.depth -= 1
        _datafiles.stop(reads)
    undos: List[Callable[[], object]] = []

    def record() -> None:
        # Every write is applied: integrations bring what they derived from the module up to date, in the
        # transaction (a hook that raises fails the reload), then the new source becomes the baseline.
        try:
            undos.extend(_engine_hooks.run_commit(lambda: _module_change(module, tx)))
        except Exception as exc:
            raise _engine.ReloadFailed(f"{path}: the reload was refused by a framework hook, nothing was changed: "
                                       f"{type(exc).__name__}: {exc}") from None
        _source.set_baseline(module, text, recorded, path)

    try:
        tx.commit(record=record)
    except _engine.ReloadFailed as exc:  # the native step or a hook undid its own writes; put the rest back too
        _engine_hooks.run_undo(undos)
        tx.rollback()
        return failed(str(exc), exc)
    except BaseException:  # Ctrl-C as the last batch returned: every batch was recorded, so all of it is undone
        _engine_hooks.run_undo(undos)
        tx.rollback()
        _source.restore_baseline(module, old)
        raise
    tx.finish()
    _datafiles.commit(reads, recorded, [new_stmts[step.index] for step in steps if step.action != "move"])
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


#: The name that statements reading a saved data file are marked as reading (no Python name can be it).
_DATA_FILE = "<data file>"


def _module_change(module: types.ModuleType, tx: _engine.Transaction) -> _engine_hooks.ModuleChange:
    """What the commit hooks are told: the names so far, and the module-level bindings the reload changed."""
    namespace, before = module.__dict__, tx.snapshot or {}
    previous = {name: value for name, value in before.items() if namespace.get(name, _MISSING) is not value}
    return _engine_hooks.ModuleChange(module, tuple(dict.fromkeys(tx.patched)), tuple(dict.fromkeys(tx.added)),
                                      tuple(dict.fromkeys(tx.removed)), previous)


_MISSING = object()


def _error_fields(exc: Optional[BaseException], path: str, text: str) -> Dict[str, Any]:
    """The structured fields of a failed report, from the exception itself (never from the formatted text)."""
    if isinstance(exc, _engine.ReloadFailed):
        if exc.__context__ is None:  # hotswap refused the edit; its message says why
            return {"error_message": str(exc), "error_file": path}
        exc = exc.__context__
    if exc is None:
        return {"error_message": text, "error_file": path}
    cls = type(exc)
    fields: Dict[str, Any] = {
        "error_type": cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}",
        "error_message": str(exc),
        "error_file": path,
    }
    if isinstance(exc, SyntaxError):
        fields["error_message"] = exc.msg
        fields["error_file"] = exc.filename or path
        fields["error_line"] = exc.lineno
        return fields
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append((tb.tb_frame.f_code.co_filename, tb.tb_lineno))
        tb = tb.tb_next
    ours = [frame for frame in frames if frame[0] == path]
    user = [frame for frame in frames if not frame[0].startswith(_PACKAGE_DIR)]  # hotswap's own frames never
    if ours or user:
        fields["error_file"], fields["error_line"] = (ours or user)[-1]
    return fields


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


# -- fork ---------------------------------------------------------------------------------------------------------
# A forked child has only the thread that called fork(). A lock held by another thread at that moment would stay
# held forever in the child, and a reload that thread was running would stay half-applied there. So fork() waits
# (up to FORK_WAIT_S) for a reload in progress; the child gets fresh locks and, if a reload of another thread was
# still running, undoes the child's copy of it. The fork handlers are registered once, at import.

_fork_waited = False


def _before_fork() -> None:
    global _fork_waited
    _fork_waited = _reload_lock.acquire(timeout=FORK_WAIT_S)


def _after_fork_in_parent() -> None:
    global _fork_waited
    if _fork_waited:
        _fork_waited = False
        _reload_lock.release()


def _after_fork_in_child() -> None:
    global _reload_lock, _hooks_lock, _fork_waited, _active
    _reload_lock = threading.RLock()
    _hooks_lock = threading.Lock()
    _fork_waited = False
    active, _active = _active, None
    if active is not None and active[0] != threading.get_ident():
        # The thread running this reload did not come along: put its module back as it was.
        thread_id, tx = active
        try:
            tx.rollback()
        except Exception:
            logger.exception("%s: could not undo a reload interrupted by fork", tx.module.__name__)
    elif active is not None:
        _active = active  # the forking thread itself is reloading (a top-level statement forked): it goes on


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                        after_in_child=_after_fork_in_child)


# Framework adapters (hotswap.frameworks) activate when their framework is imported; they use only the public
# hooks above. Installed last, so an adapter activated right now finds this module complete.
from . import frameworks as _frameworks  # noqa: E402

_frameworks.install()

"""``AutoReloader``: watch source trees and reload the modules whose files are saved.

Mechanism: a native watcher (``hotswap._native.Watcher``) watches every directory under ``path`` non-recursively
with the OS's notification API (inotify, FSEvents, ...), skipping ignored trees (``.git``, virtual environments,
caches, ``node_modules``...), and coalesces events into batches that end after a few quiet milliseconds; a write
that has not been closed yet holds the batch. A daemon thread on the Python side maps each changed file to the
loaded modules that came from it (through ``sys.modules``: nothing is imported because it was saved), skips files
whose content is what the module already runs, and reloads the rest with ``hotswap.reload`` in dependency order,
either at once on that thread (``apply="thread"``) or when the program calls ``apply_pending()``
(``apply="manual"``).

Trade-off: the default quiet period (``DEFAULT_DEBOUNCE_MS``) is short so a save is live within milliseconds; a
"save all" whose files are written further apart than that is applied as several batches, each in dependency
order. Reloading on the watcher thread means the program's other threads may run while a module is patched
(the engine's apply step is atomic per module); ``apply="manual"`` lets the program choose the moment instead.
"""

from __future__ import annotations

import atexit
import importlib
import logging
import os
import re
import sys
import threading
import time
import traceback
import weakref
from collections import deque
from types import ModuleType
from typing import Callable, Deque, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from . import _native
from .reload import ReloadReport

__all__ = ["DEFAULT_DEBOUNCE_MS", "DEFAULT_IGNORED_DIRS", "AutoReloader"]

logger = logging.getLogger("hotswap")

#: Quiet period that ends a batch, in milliseconds. Editors' multi-event saves (vim's dozen events, JetBrains'
#: temp file and renames) arrive within about a millisecond of each other on a local disk, and an in-place
#: rewrite is held by the native side until its writer closes the file, so a few milliseconds absorb a save
#: while keeping the save-to-live time under 10 ms.
DEFAULT_DEBOUNCE_MS = 5

#: Directory names never watched. Kept in step with `DEFAULT_IGNORED_DIRS` in src/watch.rs (checked by a test).
#: Also never watched: ``.venv*``, directories holding ``pyvenv.cfg`` or ``CACHEDIR.TAG``.
DEFAULT_IGNORED_DIRS = (
    ".git",
    ".hg",
    ".svn",
    "__pycache__",
    "node_modules",
    "site-packages",
    "dist-packages",
    ".tox",
    ".nox",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".hypothesis",
    "venv",
)

#: A reload still running after this many seconds is reported (once) as probably blocked by a statement.
SLOW_RELOAD_WARNING_S = 5.0

#: How long an emptied file whose module was not empty waits for the rest of its write before it is applied.
EMPTY_GRACE_S = 1.0

#: How often the idle watcher thread looks at ``len(sys.modules)`` to capture newly imported modules' baselines.
MODULES_CHECK_S = 1.0

_PathLike = Union[str, "os.PathLike[str]"]
_CLEAR_SCREEN = "\x1b[2J\x1b[H"

_reload_mod = importlib.import_module(__package__ + ".reload")


class AutoReloader:
    """Watches ``path`` and reloads each loaded module whose file is saved, on its own thread or on request.

    Watching starts at once. Files under ``path`` that no loaded module came from are ignored. A save that does
    not change what a module runs (``touch``, an editor's "save" without edits) does nothing; a broken save
    (syntax error, exception at import) is logged once as a warning with file and line, and the old code keeps
    running until the next good save. A deleted file leaves its module as it is. It watches until ``stop()`` (or
    the end of a ``with`` block, or interpreter exit); its thread is a daemon and never delays exit.

    Args:
        path: a directory, or a list of them (str or ``os.PathLike``).
        include: glob patterns of the files to watch, matched against the file name or the path relative to
            its root (``fnmatch`` rules).
        exclude: glob patterns of files and directories to skip, in addition to the defaults
            (``DEFAULT_IGNORED_DIRS``, virtual environments, editors' temporary and backup files).
        mode: passed to ``hotswap.reload`` (``"changed"`` re-runs only changed statements).
        apply: ``"thread"`` reloads on the watcher thread; ``"manual"`` queues reloads until ``apply_pending()``.
        debounce_ms: quiet period, in milliseconds, that ends a batch of file events.
        force_polling: poll the tree (every ``_native.Watcher.poll_interval_ms``, 200) instead of using the OS's
            notifications. Polling is also
            used, with a warning, when notifications are unavailable.
        clear: clear the terminal before each batch of reloads.
        on_reload: called with each ``ReloadReport`` of this reloader (after ``hotswap.on_reload`` hooks).

    Attributes:
        reports: the last 100 reports of this reloader, oldest first (a ``collections.deque``).
        roots: the watched directories, as real paths.

    Example:
        >>> import tempfile
        >>> from hotswap import AutoReloader
        >>> with AutoReloader(tempfile.mkdtemp()) as reloader:
        ...     reloader.wait_for_reload(timeout=0.01) is None
        True
    """

    def __init__(
        self,
        path: Union[_PathLike, Sequence[_PathLike]],
        *,
        include: Iterable[str] = ("*.py",),
        exclude: Iterable[str] = (),
        mode: str = "changed",
        apply: str = "thread",
        debounce_ms: float = DEFAULT_DEBOUNCE_MS,
        force_polling: bool = False,
        clear: bool = False,
        on_reload: Optional[Callable[[ReloadReport], object]] = None,
    ) -> None:
        if apply not in ("thread", "manual"):
            raise ValueError(f"apply must be 'thread' or 'manual', not {apply!r}")
        paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
        if not paths:
            raise ValueError("AutoReloader needs at least one path to watch")
        self.roots: Tuple[str, ...] = tuple(os.path.realpath(os.fspath(p)) for p in paths)
        self.mode = mode
        self.apply = apply
        self._clear = clear
        self._callback = on_reload
        self._lock = threading.Condition(threading.Lock())
        self.reports: Deque[ReloadReport] = deque(maxlen=100)
        self._unread: Deque[ReloadReport] = deque(maxlen=1000)
        self._pending: Dict[str, Tuple[ModuleType, str]] = {}
        self._deferred: Dict[str, float] = {}
        self._failed: Dict[str, bytes] = {}
        self._stopping = False
        self._modules = _ModuleMap(self.roots)
        # Baselines first: a save that happens from now on must compare against what the module runs now.
        self._modules.refresh()
        self._watch_args = dict(
            include=list(include),
            exclude=list(exclude),
            debounce_ms=max(0, round(debounce_ms)),
            force_polling=force_polling,
        )
        self._watcher = _native.Watcher(list(self.roots), **self._watch_args)
        if self._watcher.fallback_reason and not force_polling:
            logger.warning(
                "hotswap: polling %s every %d ms: %s",
                ", ".join(self.roots),
                self._watcher.poll_interval_ms,
                self._watcher.fallback_reason,
            )
        elif force_polling:
            logger.info(
                "hotswap: polling %s every %d ms (force_polling=True)",
                ", ".join(self.roots),
                self._watcher.poll_interval_ms,
            )
        self._thread = threading.Thread(target=self._run, name="hotswap-autoreload", daemon=True)
        self._thread.start()
        _live.add(self)

    # -- public API ---------------------------------------------------------------------------------------------

    @property
    def backend(self) -> str:
        """``"native"`` (OS notifications) or ``"poll"``."""
        return self._watcher.backend

    @property
    def running(self) -> bool:
        """Whether the reloader is still watching."""
        return not self._stopping and self._thread.is_alive()

    def wait_for_reload(self, timeout: Optional[float] = None) -> Optional[ReloadReport]:
        """Returns the next reload report not yet returned by this method, waiting up to ``timeout`` seconds.

        Reports are queued as reloads complete, so a reload that finished before the call is returned at once.

        Args:
            timeout: seconds to wait; None waits until a reload completes or the reloader stops.

        Returns:
            The report, or None at timeout (or when the reloader stopped with nothing queued).

        Example:
            >>> import tempfile
            >>> from hotswap import AutoReloader
            >>> with AutoReloader(tempfile.mkdtemp()) as reloader:
            ...     print(reloader.wait_for_reload(timeout=0.01))
            None
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while not self._unread:
                if self._stopping:
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                # Wake at least every 100 ms so Ctrl-C reaches a main thread waiting here.
                self._lock.wait(0.1 if remaining is None else min(remaining, 0.1))
            return self._unread.popleft()

    def apply_pending(self) -> List[ReloadReport]:
        """Reloads the modules queued since the last call (``apply="manual"``), in dependency order.

        Call it where the program is at a safe point (between requests, at the top of a loop). Files are read
        again now, so each module gets its latest content. With ``apply="thread"`` nothing is queued.

        Returns:
            One report per module reloaded.

        Example:
            >>> import tempfile
            >>> from hotswap import AutoReloader
            >>> with AutoReloader(tempfile.mkdtemp(), apply="manual") as reloader:
            ...     reloader.apply_pending()
            []
        """
        with self._lock:
            pending, self._pending = self._pending, {}
        changes = []
        for module, path in pending.values():
            content = _read(path)
            if content is not None and self._wants(module, path, content):
                changes.append((module, path, content))
        return self._apply(changes)

    def stop(self) -> None:
        """Stops watching. Returns promptly, leaves no thread or file descriptor behind; may be called again.

        Example:
            >>> import tempfile
            >>> from hotswap import AutoReloader
            >>> reloader = AutoReloader(tempfile.mkdtemp())
            >>> reloader.stop(); reloader.stop()
            >>> reloader.running
            False
        """
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        self._watcher.stop()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        _live.discard(self)

    def __enter__(self) -> AutoReloader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<AutoReloader {', '.join(self.roots)} apply={self.apply} backend={self.backend} {state}>"

    # -- the watcher thread -------------------------------------------------------------------------------------

    def _run(self, catch_up: bool = False) -> None:
        if catch_up:
            self._catch_up()
        last_check = time.monotonic()
        while not self._stopping:
            timeout = MODULES_CHECK_S
            if self._deferred:
                timeout = max(0.0, min(min(self._deferred.values()) - time.monotonic(), timeout))
            try:
                batch = self._watcher.wait(timeout)
            except Exception:  # pragma: no cover - the native wait raises only for signals (main thread only)
                logger.exception("hotswap: file watching failed")
                return
            if self._stopping:
                return
            paths: List[str] = []
            if batch is not None:
                files, notes = batch
                for note in notes:
                    logger.warning("hotswap: %s", note)
                # A deleted file leaves its module as it is; a path deleted then recreated exists.
                paths = [p for p, exists in files if exists]
            elif not self._watcher.running:
                return
            now = time.monotonic()
            paths.extend(p for p, deadline in list(self._deferred.items()) if deadline <= now and p not in paths)
            if now - last_check >= MODULES_CHECK_S:
                last_check = now
                self._modules.refresh_if_imported()
            if paths:
                try:
                    self._handle(paths)
                except Exception:  # pragma: no cover - a bug here must not end watching
                    logger.exception("hotswap: handling changed files failed: %s", paths)

    def _handle(self, paths: List[str]) -> None:
        changes: List[Tuple[ModuleType, str, bytes]] = []
        now = time.monotonic()
        for path in paths:
            expired = self._deferred.pop(path, None)
            modules = self._modules.lookup(path)
            if not modules:
                continue
            content = _read(path)
            if content is None:
                continue
            for module in modules:
                baseline = _running_source(module)
                if not content.strip() and baseline and baseline.strip() and (expired is None or expired > now):
                    # Truncated and not (yet) written again: wait a bounded time for the rest of the write.
                    self._deferred[path] = expired if expired is not None else now + EMPTY_GRACE_S
                    continue
                if self._wants(module, path, content, baseline):
                    changes.append((module, path, content))
        if not changes:
            return
        if self.apply == "manual":
            with self._lock:
                for module, path, _ in changes:
                    self._pending[module.__name__] = (module, path)
            logger.debug("hotswap: %d module(s) pending until apply_pending()", len(changes))
            return
        self._apply(changes)

    def _wants(self, module: ModuleType, path: str, content: bytes, baseline: Optional[bytes] = None) -> bool:
        """Whether ``content`` should be applied to ``module``: not what it runs, not a broken save seen before."""
        if baseline is None:
            baseline = _running_source(module)
        if baseline is not None and _as_bytes(baseline) == content:
            self._failed.pop(path, None)
            return False
        return self._failed.get(path) != content

    def _apply(self, changes: List[Tuple[ModuleType, str, bytes]]) -> List[ReloadReport]:
        if not changes:
            return []
        if len(changes) > 1:
            changes = dependency_order(changes)
        if self._clear:
            sys.stdout.write(_CLEAR_SCREEN)
            sys.stdout.flush()
        reports = []
        for module, path, content in changes:
            # A top-level statement that blocks (a network call, an endless loop) keeps this thread, never the
            # program; say so while it lasts rather than stay silent.
            slow = threading.Timer(SLOW_RELOAD_WARNING_S, logger.warning, args=(
                "hotswap: reloading %s has taken more than %.0f s: a top-level statement of %s may be blocking; the "
                "program keeps running, further saves wait for it", module.__name__, SLOW_RELOAD_WARNING_S, path))
            slow.daemon = True
            slow.start()
            try:
                report = _reload_mod.reload(module, mode=self.mode, source=content)
            except Exception:  # the engine reports user-code failures itself; this is a bug in hotswap
                report = ReloadReport(module=module.__name__, path=path, ok=False, error=traceback.format_exc())
            except KeyboardInterrupt:
                # Rolled back already. On the main thread (apply_pending) it is the program's; raised by the code
                # on the reloader's own thread, it is that reload's failure, and watching goes on.
                if threading.current_thread() is threading.main_thread():
                    raise
                report = ReloadReport(module=module.__name__, path=path, ok=False, error=traceback.format_exc())
            finally:
                slow.cancel()
            reports.append(report)
            self._record(report, path, content)
        return reports

    def _record(self, report: ReloadReport, path: str, content: bytes) -> None:
        if report.ok:
            self._failed.pop(path, None)
        else:
            self._failed[path] = content
            where, reason = _locate(report.error or "", path)
            logger.warning(
                "hotswap: %s: %s; %s keeps running its old code until the next good save",
                where,
                reason,
                report.module,
            )
        with self._lock:
            self.reports.append(report)
            self._unread.append(report)
            self._lock.notify_all()
        if self._callback is not None:
            try:
                self._callback(report)
            except Exception:
                logger.exception("hotswap: on_reload callback %r failed", self._callback)


    # -- fork -------------------------------------------------------------------------------------------------------
    #
    # A forked child (gunicorn --preload, multiprocessing's fork, os.fork) has only the thread that forked: the
    # parent's watcher threads are not there. Each child starts a watcher of its own rather than having the parent
    # forward its events: a reload patches the memory of the process that runs it, the child's modules are its own
    # copies, the parent neither knows its children nor outlives them reliably, and a watcher per process needs no
    # channel between processes. A child's reloader does what its parent's did, with its own thread and lock.

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Condition(threading.Lock())  # may have been held by a thread that is not here
        self._watcher.stop()  # forgets the parent's threads without touching them
        try:
            self._watcher = _native.Watcher(list(self.roots), **self._watch_args)
        except Exception:
            logger.exception("cannot watch %s again in forked process %d", ", ".join(self.roots), os.getpid())
            self._stopping = True
            _live.discard(self)
            return
        self._thread = threading.Thread(target=self._run, args=(True,), name="hotswap-autoreload", daemon=True)
        self._thread.start()

    def _catch_up(self) -> None:
        """Checks every watched module's file once: a save made while the process forked (before this process's
        watcher existed), or a reload the fork interrupted, is applied now."""
        self._modules.refresh()
        paths = list(self._modules.paths())
        if paths:
            try:
                self._handle(paths)
            except Exception:  # pragma: no cover - a bug here must not end watching
                logger.exception("checking the watched files after a fork failed")


class _ModuleMap:
    """Maps real file paths under the roots to the loaded modules that came from them, from ``sys.modules``."""

    def __init__(self, roots: Sequence[str]) -> None:
        self._prefixes = tuple(r.rstrip(os.sep) + os.sep for r in roots)
        self._by_path: Dict[str, List[ModuleType]] = {}
        self._realpaths: Dict[str, Optional[str]] = {}
        self._seen = -1

    def refresh(self, track_new: bool = True) -> None:
        """Rebuilds the map; with ``track_new``, captures the baseline of modules not seen before.

        A module found only because its file just changed is not tracked (its file already holds the new
        content, which would become its baseline): the reload sets its baseline instead.
        """
        by_path: Dict[str, List[ModuleType]] = {}
        known = {id(m) for mods in self._by_path.values() for m in mods}
        track = getattr(_reload_mod, "track", None) if track_new else None
        for module in list(sys.modules.values()):
            file = _module_file(module)
            if file is None:
                continue
            real = self._realpaths.get(file, "")
            if real == "":
                real = os.path.realpath(file)
                real = real if real.startswith(self._prefixes) else None
                self._realpaths[file] = real
            if real is None:
                continue
            by_path.setdefault(real, []).append(module)
            if track is not None and id(module) not in known:
                try:
                    track(module)
                except Exception:
                    logger.debug("hotswap: cannot record the baseline of %s", module.__name__, exc_info=True)
        self._by_path = by_path
        self._seen = len(sys.modules)

    def refresh_if_imported(self) -> None:
        if len(sys.modules) != self._seen:
            self.refresh()

    def paths(self) -> List[str]:
        """The real paths of every module file known under the roots."""
        return list(self._by_path)

    def lookup(self, path: str) -> List[ModuleType]:
        """Modules loaded from ``path``, refreshing the map once when the path is unknown."""
        modules = self._by_path.get(path)
        if modules is None:
            self.refresh(track_new=False)
            modules = self._by_path.get(path, [])
        return [m for m in modules if sys.modules.get(m.__name__) is m]


def _module_file(module: object) -> Optional[str]:
    spec = getattr(module, "__spec__", None)
    origin = getattr(spec, "origin", None) if spec is not None else None
    file = origin if isinstance(origin, str) and getattr(spec, "has_location", False) else None
    if file is None:
        file = getattr(module, "__file__", None)
    if not isinstance(file, str) or not file.endswith(".py"):
        return None
    return file


_IMPORT_RE = re.compile(
    rb"^[ \t]*(?:from[ \t]+(\.*[\w.]*)[ \t]+import[ \t]+\(?([\w., \t]*)|import[ \t]+([\w., \t]+))", re.MULTILINE
)


def imported_names(module_name: str, package: Optional[str], content: bytes) -> set:
    """Dotted names a module's source may import, from a cheap line scan (``import x``, ``from .y import z``).

    Over-approximates (imports inside functions or strings count), which only constrains the order more.

    Example:
        >>> sorted(imported_names("app.views", "app", b"from .models import User\\nimport os.path"))
        ['app', 'app.models', 'app.models.User', 'os', 'os.path']
    """
    names = set()
    for match in _IMPORT_RE.finditer(content):
        source, targets, plain = match.groups()
        if plain is not None:
            for part in plain.decode("ascii", "replace").split(","):
                name = part.split()[0] if part.split() else ""
                names.update(_prefixes(name))
            continue
        base = source.decode("ascii", "replace")
        dots = len(base) - len(base.lstrip("."))
        if dots:
            parts = (package or "").split(".")
            if dots > 1:
                parts = parts[: len(parts) - (dots - 1)]
            base = ".".join(p for p in parts + [base[dots:]] if p)
        names.update(_prefixes(base))
        for part in targets.decode("ascii", "replace").split(","):
            name = part.split()[0] if part.split() else ""
            if name and name != "*":
                names.add(f"{base}.{name}" if base else name)
    names.discard(module_name)
    return names


def _prefixes(dotted: str) -> List[str]:
    parts = [p for p in dotted.split(".") if p]
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def dependency_order(changes: List[Tuple[ModuleType, str, bytes]]) -> List[Tuple[ModuleType, str, bytes]]:
    """Orders a batch so a module is reloaded after the batch's modules it imports (stable; cycles keep order).

    Example:
        >>> import types
        >>> a, b = types.ModuleType("a"), types.ModuleType("b")
        >>> [m.__name__ for m, _, _ in dependency_order([(a, "a.py", b"import b"), (b, "b.py", b"")])]
        ['b', 'a']
    """
    names = [m.__name__ for m, _, _ in changes]
    index = {name: i for i, name in enumerate(names)}
    deps: List[set] = []
    for module, _, content in changes:
        package = getattr(module, "__package__", None)
        if package is None and hasattr(module, "__path__"):
            package = module.__name__
        imported = imported_names(module.__name__, package, content)
        deps.append({index[n] for n in imported if n in index and index[n] != index[module.__name__]})
    done: List[int] = []
    placed: set = set()
    while len(done) < len(changes):
        ready = [i for i in range(len(changes)) if i not in placed and deps[i] <= placed]
        if not ready:  # a cycle: take the first remaining one, as saved
            ready = [min(i for i in range(len(changes)) if i not in placed)]
        for i in ready[:1]:
            placed.add(i)
            done.append(i)
    return [changes[i] for i in done]


def _running_source(module: ModuleType) -> Optional[bytes]:
    try:
        return _reload_mod.running_source(module)
    except Exception:  # an odd module the engine cannot describe: treat its baseline as unknown
        return None


def _read(path: str) -> Optional[bytes]:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def _as_bytes(source: Union[bytes, str]) -> bytes:
    return source.encode("utf-8") if isinstance(source, str) else source


_FILE_LINE_RE = re.compile(r'File "([^"]+)", line (\d+)')


def _locate(error: str, path: str) -> Tuple[str, str]:
    """``("file:line", reason)`` from a formatted traceback, preferring the innermost frame in ``path``."""
    lines = error.strip().splitlines()
    reason = lines[-1].strip() if lines else "reload failed"
    matches = _FILE_LINE_RE.findall(error)
    real = os.path.realpath(path)
    ours = [m for m in matches if os.path.realpath(m[0]) == real]
    file, line = (ours or matches or [(path, "?")])[-1]
    return f"{file}:{line}", reason


_live: weakref.WeakSet[AutoReloader] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    # No reload may start while the interpreter shuts down.
    for reloader in list(_live):
        reloader.stop()


def _restart_after_fork() -> None:
    for reloader in list(_live):
        reloader._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_restart_after_fork)

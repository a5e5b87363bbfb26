"""``AutoReloader``: watch source trees and reload the modules whose files are saved.

Mechanism: a native watcher (``hotswap._native.Watcher``) watches every directory under ``path`` non-recursively
with the OS's notification API (inotify, FSEvents, ...), skipping ignored trees (``.git``, virtual environments,
caches, ``node_modules``...). It decides from the events when a save is complete (on inotify: its writer closed
the file, or a rename landed it; a file still open for writing is never read, however slow its writer), reads the
file once, confirms that no write came between, and hands over the bytes. A daemon thread on the Python side maps
each saved file to the loaded modules that came from it (through ``sys.modules``: nothing is imported because it
was saved), skips files whose content is what the module already runs (and empty files, which it reports), and
reloads the rest with ``hotswap.reload(module, source=bytes)`` in dependency order, either at once on that thread
(``apply="thread"``) or when the program calls ``apply_pending()`` (``apply="manual"``), which checks the path
again and applies only bytes it read after that check.

Trade-off: a save is applied as soon as it is complete, with no fixed quiet period, so it is live within a couple
of milliseconds; files saved together are grouped only while one of them is still being written (or for
``debounce_ms``), and a "save all" whose files are written further apart than that is applied as several
batches, each in dependency order. Without close events (polling, macOS, Windows) a save is taken as complete
after a few quiet milliseconds. Reloading on the watcher thread means the program's other threads may run while a
module is patched (the engine's apply step is atomic per module); ``apply="manual"`` lets the program choose the
moment instead.
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
from typing import Any, Callable, ContextManager, Deque, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from . import _datafiles, _native, _source
from .reload import ReloadReport

__all__ = ["DEFAULT_DEBOUNCE_MS", "DEFAULT_IGNORED_DIRS", "AutoReloader"]

logger = logging.getLogger("hotswap")

#: Extra quiet period, in milliseconds, before complete saves are applied. None by default: on inotify a save is
#: complete when its writer closes the file or a rename lands it (vim's and JetBrains' renames, VS Code's
#: truncate-and-write are each one save), which the native side sees directly, so waiting adds only latency.
#: Raise it to group files that a tool writes further apart (backends without close events always wait 5 ms).
DEFAULT_DEBOUNCE_MS = 0

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

#: Files whose presence marks a directory that is never watched. Kept in step with `IGNORED_DIR_MARKERS` in
#: src/watch.rs.
IGNORED_DIR_MARKERS = ("pyvenv.cfg", "CACHEDIR.TAG")

#: A reload still running after this many seconds is reported (once) as probably blocked by a statement.
SLOW_RELOAD_WARNING_S = 5.0

#: How often the idle watcher thread looks at ``len(sys.modules)`` to capture newly imported modules' baselines.
MODULES_CHECK_S = 1.0

_PathLike = Union[str, "os.PathLike[str]"]
_CLEAR_SCREEN = "\x1b[2J\x1b[H"

_reload_mod = importlib.import_module(__package__ + ".reload")


class AutoReloader:
    """Watches ``path`` and reloads each loaded module whose file is saved, on its own thread or on request.

    Watching starts at once. Files under ``path`` that no loaded module came from are ignored, except the files
    that those modules read while their top-level code ran (a config, a template read with ``open``; see
    ``hotswap.data_files_read``), wherever they are: saving one re-runs the statements that read it. A save that does
    not change what a module runs (``touch``, an editor's "save" without edits) does nothing; a broken save
    (syntax error, exception at import) is logged once as a warning with file and line, and the old code keeps
    running until the next good save. An emptied file is never applied (it is logged once as a warning), and a
    deleted file leaves its module as it is. A directory that cannot be watched is logged as a warning and the
    rest is watched. It watches until ``stop()`` (or the end of a ``with`` block, or interpreter exit); its thread
    is a daemon and never delays exit.

    Args:
        path: a directory or a file, or a list of them (str or ``os.PathLike``).
        include: glob patterns of the files to watch, matched against the file name or the path relative to
            its root (``fnmatch`` rules).
        exclude: glob patterns of files and directories to skip, in addition to the defaults
            (``DEFAULT_IGNORED_DIRS``, virtual environments, editors' temporary and backup files).
        mode: passed to ``hotswap.reload`` (``"changed"`` re-runs only changed statements).
        apply: ``"thread"`` reloads on the watcher thread; ``"manual"`` queues reloads until ``apply_pending()``.
        debounce_ms: extra quiet period, in milliseconds, before complete saves are applied (0: none).
        force_polling: poll the tree (every ``_native.Watcher.poll_interval_ms``, 200) instead of using the OS's
            notifications. Polling is also
            used, with a warning, when notifications are unavailable.
        clear: clear the terminal before each batch of reloads.
        on_reload: called with each ``ReloadReport`` of this reloader (after ``hotswap.on_reload`` hooks).
        on_other_file: called on the watcher thread with the real path of each saved file that matches
            ``include`` but is not a Python source (a template, a config file), once per save.

    Attributes:
        reports: the last 100 reports of this reloader, oldest first (a ``collections.deque``).
        roots: the watched directories and files, as real paths.

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
        on_other_file: Optional[Callable[[str], object]] = None,
    ) -> None:
        if apply not in ("thread", "manual"):
            raise ValueError(f"apply must be 'thread' or 'manual', not {apply!r}")
        self.roots: Tuple[str, ...] = tuple(os.path.realpath(p) for p in _as_paths(path))
        for root in self.roots:
            if os.path.dirname(root) == root:  # checked natively too; before the baselines of every module below
                raise ValueError(f"cannot watch {root}: that tree is the whole file system; pass your project's "
                                 "directory")
        self.mode = mode
        self.apply = apply
        self._clear = clear
        self._callback = on_reload
        self._other_file_callback = on_other_file
        self._lock = threading.Condition(threading.Lock())
        self.reports: Deque[ReloadReport] = deque(maxlen=100)
        self._unread: Deque[ReloadReport] = deque(maxlen=1000)
        self._pending: Dict[str, Tuple[ModuleType, str, bytes]] = {}
        self._pending_data: Dict[str, bytes] = {}  # data files saved, for apply_pending()
        self._data_files: Dict[str, List[ModuleType]] = {}  # watched data files -> modules that read them
        self._empty: Dict[str, bool] = {}
        self._stopping = False
        self._slow = _SlowReloadWatch()
        self._modules = _ModuleMap(self.roots)
        # Baselines first: a save that happens from now on must compare against what the module runs now.
        self._modules.refresh()
        self._watch_args: Dict[str, Any] = dict(
            include=list(include),
            exclude=list(exclude),
            debounce_ms=max(0, round(debounce_ms)),
            force_polling=force_polling,
        )
        self._watcher = _native.Watcher(list(self.roots), **self._watch_args)
        for warning in self._watcher.warnings:
            logger.warning("%s", warning)
        if self._watcher.fallback_reason and not force_polling:
            logger.warning(
                "polling %s every %d ms: %s",
                ", ".join(self.roots),
                self._watcher.poll_interval_ms,
                self._watcher.fallback_reason,
            )
        elif force_polling:
            logger.info(
                "polling %s every %d ms (force_polling=True)",
                ", ".join(self.roots),
                self._watcher.poll_interval_ms,
            )
        self._start_data_files()
        self._thread = threading.Thread(target=self._run, name="hotswap-autoreload", daemon=True)
        self._thread.start()
        _live.add(self)

    # -- public API ---------------------------------------------------------------------------------------------

    @property
    def backend(self) -> str:
        """``"native"`` (OS notifications) or ``"poll"``."""
        return self._watcher.backend

    @property
    def pending(self) -> List[str]:
        """Names of the modules saved and queued for ``apply_pending()`` (``apply="manual"``), oldest first (then
        those with a data file saved)."""
        with self._lock:
            names = list(self._pending)
            for path in self._data_files.keys() & self._pending_data.keys():
                names.extend(m.__name__ for m in self._data_files[path] if m.__name__ not in names)
            return names

    @property
    def data_files(self) -> List[str]:
        """The files that modules under ``path`` read while their top-level code ran (see
        ``hotswap.data_files_read``), watched by this reloader: saving one re-runs the statements that read it."""
        with self._lock:
            return sorted(self._data_files)

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

        Call it where the program is at a safe point (between requests, at the top of a loop). Each file is
        checked again now (still a regular file under the watched paths, not a symlink leading out of them) and
        read once after that check; those bytes are applied only if they are the latest complete save, so a file
        being written again stays queued until that save completes. With ``apply="thread"`` nothing is queued.

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
            data, self._pending_data = self._pending_data, {}
        changes = []
        for name, (module, path, saved) in pending.items():
            checked = self._watcher.read(path)
            if checked is None:
                logger.warning(
                    "%s is no longer a regular file under %s: not applied; %s keeps running its current code",
                    path, ", ".join(self.roots), name)
                continue
            _, content = checked
            if content != saved:
                # Changed since that save completed: a newer save is being written or on its way; it replaces this.
                logger.debug("%s changed since its last complete save: kept pending", path)
                with self._lock:
                    self._pending.setdefault(name, (module, path, saved))
                continue
            changes.append((module, path, content))
        reports = self._apply(changes)
        for path, content in data.items():
            reports.extend(self._apply_data(path, content))
        return reports

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
        with self._lock:
            data_watcher, data_thread = self._data_watcher, self._data_thread
        if data_watcher is not None:
            data_watcher.stop()
        self._slow.close()
        for thread in (self._thread, data_thread):
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout=5)
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
            try:
                batch = self._watcher.wait(MODULES_CHECK_S)
            except Exception:  # pragma: no cover - the native wait raises only for signals (main thread only)
                logger.exception("file watching failed")
                return
            if self._stopping:
                return
            saved: List[Tuple[str, bytes]] = []
            if batch is not None:
                files, notes = batch
                for note in notes:
                    logger.warning("%s", note)
                # A deleted file leaves its module as it is; a path deleted then recreated exists.
                saved = [(path, content) for path, exists, content in files if exists and content is not None]
            elif not self._watcher.running:
                return
            now = time.monotonic()
            if now - last_check >= MODULES_CHECK_S:
                last_check = now
                self._modules.refresh_if_imported()
                try:
                    self._refresh_data_files()
                except Exception:  # pragma: no cover - a bug here must not end watching
                    logger.exception("updating the watched data files failed")
            if saved:
                try:
                    self._handle(saved)
                except Exception:  # pragma: no cover - a bug here must not end watching
                    logger.exception("handling saved files failed: %s", [path for path, _ in saved])

    def _other_file(self, path: str) -> None:
        try:
            self._other_file_callback(path)  # type: ignore[misc]
        except Exception:
            logger.exception("on_other_file callback failed for %s", path)

    def _handle(self, saved: List[Tuple[str, bytes]]) -> None:
        """Maps complete saves (path, the bytes the watcher read and confirmed) to modules; applies or queues them."""
        changes: List[Tuple[ModuleType, str, bytes]] = []
        for path, content in saved:
            modules = self._modules.lookup(path)
            if not modules:
                if path in self._data_files:
                    continue  # a file modules read at import: its own watcher re-runs their statements
                if self._other_file_callback is not None and not path.endswith(".py"):
                    self._other_file(path)
                else:
                    logger.debug("saved %s: skipped, no loaded module came from it", path)
                continue
            for module in modules:
                baseline = _running_source(module, path)
                if (not content or content.isspace()) and baseline and not _as_bytes(baseline).isspace():
                    # Never applied: an emptied file is almost always a save caught between truncate and write,
                    # or a mistake; report it once and keep running the module's code.
                    if not self._empty.get(path):
                        self._empty[path] = True
                        logger.warning(
                            "%s is empty: not applied; %s keeps running its current code until the file "
                            "has content again", path, module.__name__)
                    continue
                self._empty.pop(path, None)
                if self._wants(module, path, content, baseline):
                    logger.debug("saved %s: reloading %s", path, module.__name__)
                    changes.append((module, path, content))
                else:
                    logger.debug("saved %s: skipped %s, %s", path, module.__name__, "a broken save already reported"
                                 if _failed_saves.get(path) == content else "it is what the module already runs")
                    if self.apply == "manual":
                        with self._lock:  # saved back to what runs: nothing left to apply
                            self._pending.pop(module.__name__, None)
        if not changes:
            return
        if self.apply == "manual":
            with self._lock:
                for module, path, content in changes:
                    self._pending[module.__name__] = (module, path, content)
            logger.debug("%d module(s) pending until apply_pending()", len(changes))
            return
        self._apply(changes)

    @staticmethod
    def _wants(module: ModuleType, path: str, content: bytes, baseline: Optional[bytes] = None) -> bool:
        """Whether ``content`` should be applied to ``module``: not what it runs, not a broken save seen before
        (by any AutoReloader of the process)."""
        if baseline is None:
            baseline = _running_source(module, path)
        if baseline is not None and _as_bytes(baseline) == content:
            _failed_saves.pop(path, None)
            return False
        return _failed_saves.get(path) != content

    def _apply(self, changes: List[Tuple[ModuleType, str, bytes]]) -> List[ReloadReport]:
        if not changes:
            return []
        if len(changes) > 1:
            changes = dependency_order(changes)
        if self._clear:
            sys.stdout.write(_CLEAR_SCREEN)
            sys.stdout.flush()
        reports = []
        retry = False
        while changes:
            reloaded = []
            for module, path, content in changes:
                # Held across the check and the reload: another AutoReloader watching the same file (overlapping
                # paths) may have applied this very save, or found it broken, a moment ago; one report per change.
                with _engine_lock():
                    if not self._wants(module, path, content):
                        logger.debug("%s: already applied (or reported broken) by another reloader", path)
                        continue
                    report = self._reload(module, path, content)
                    if report.ok:
                        _failed_saves.pop(path, None)
                        reloaded.append(module.__name__)
                    else:
                        _failed_saves[path] = content
                if retry and not report.ok:
                    continue  # failed again: reported already, when it was saved
                reports.append(report)
                self._record(report, path, content)
            # Files saved together but applied in separate batches (written further apart than one reload takes):
            # a save that failed because a module it imports had not been applied yet is tried once more after it.
            changes, retry = self._failed_dependents(reloaded), True
        return reports

    def _failed_dependents(self, reloaded: List[str]) -> List[Tuple[ModuleType, str, bytes]]:
        """The failed saves (under this reloader's roots) that import one of the modules just reloaded."""
        if not reloaded or not _failed_saves:
            return []
        retry = []
        for path, content in list(_failed_saves.items()):
            for module in self._modules.known(path):
                if module.__name__ not in reloaded and imported_names(module.__name__, _package(module), content) \
                        & set(reloaded):
                    _failed_saves.pop(path, None)
                    retry.append((module, path, content))
        return dependency_order(retry) if len(retry) > 1 else retry

    def _reload(self, module: ModuleType, path: str, content: bytes) -> ReloadReport:
        # A top-level statement that blocks (a network call, an endless loop) keeps this thread, never the
        # program; say so while it lasts rather than stay silent.
        self._slow.begin(module.__name__, path)
        try:
            # It logs successes; a failure is logged once, by `_record`, with its file and line.
            return _reload_mod._reload_and_report(module, self.mode, content, log_failure=False, path=path)
        except Exception:  # the engine reports user-code failures itself; this is a bug in hotswap
            return ReloadReport(module=module.__name__, path=path, ok=False, error=traceback.format_exc())
        except KeyboardInterrupt:
            # Rolled back already. On the main thread (apply_pending) it is the program's; raised by the code
            # on the reloader's own thread, it is that reload's failure, and watching goes on.
            if threading.current_thread() is threading.main_thread():
                raise
            return ReloadReport(module=module.__name__, path=path, ok=False, error=traceback.format_exc())
        finally:
            self._slow.end()

    def _record(self, report: ReloadReport, path: str, content: bytes) -> None:
        if not report.ok:
            where = report.where()
            logger.warning(
                "%s: %s; %s keeps running its old code until the next good save",
                where,
                report.reason(),
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
                logger.exception("on_reload callback %r failed", self._callback)


    # -- data files -------------------------------------------------------------------------------------------------
    #
    # Files that modules read while their top-level code ran (``hotswap._datafiles``) are watched by a second native
    # watcher whose roots are those files themselves (inside the roots or not), on a thread of its own, so the
    # module watcher's roots and patterns stay as the user gave them. It is rebuilt when the recorded files change
    # (a module imported later, a reload whose statements read other files).

    def _start_data_files(self) -> None:
        self._data_watcher: Optional[_native.Watcher] = None
        self._data_thread: Optional[threading.Thread] = None
        self._data_files = {}
        self._data_generation: Tuple[int, int] = (-1, -1)
        self._data_files_seen: set = set()  # files this reloader has checked since it started watching them
        self._refresh_data_files()  # watching starts at once, as for the modules

    def _refresh_data_files(self) -> None:
        """Watches the files that the modules under the roots read (called at start, then by the watcher thread
        every ``MODULES_CHECK_S``); cheap when nothing was imported or recorded since."""
        _datafiles.resolve()
        generation = (_datafiles.generation, self._modules.seen)  # recorded files, modules under the roots
        if generation == self._data_generation:
            return
        self._data_generation = generation
        modules = [m for path in self._modules.paths() for m in self._modules.known(path)]
        found = {file: mods for file, mods in _datafiles.files(modules).items() if os.path.isfile(file)}
        if found.keys() == self._data_files.keys():
            with self._lock:
                self._data_files = found
            return
        try:
            watcher = _native.Watcher(sorted(found), include=["*"], force_polling=self._watch_args["force_polling"]) \
                if found else None
        except (OSError, ValueError, RuntimeError) as exc:
            logger.warning("cannot watch the files modules read at import (%s): %s", ", ".join(sorted(found)), exc)
            return
        with self._lock:
            if self._stopping:  # stop() ran meanwhile: it has stopped the watcher it saw, this one is never used
                if watcher is not None:
                    watcher.stop()
                return
            old, self._data_watcher, self._data_files = self._data_watcher, watcher, found
            watched_before = set(self._data_files_seen)
            self._data_files_seen.update(found)
            if watcher is not None and (self._data_thread is None or not self._data_thread.is_alive()):
                self._data_thread = threading.Thread(target=self._run_data, name="hotswap-autoreload-data",
                                                     daemon=True)
                self._data_thread.start()
        if old is not None:
            old.stop()  # its wait returns None: the data thread goes on with the new one
        logger.debug("watching %d file(s) read at import: %s", len(found), ", ".join(sorted(found)))
        # A file saved after its module read it and before it was watched here: applied now.
        for path in sorted(found.keys() - watched_before):
            checked = watcher.read(path) if watcher is not None else None
            if checked is not None:
                self._on_data_saved(*checked)

    def _run_data(self) -> None:
        while not self._stopping:
            watcher = self._data_watcher
            if watcher is None:
                return  # started again when there are files to watch
            try:
                batch = watcher.wait(MODULES_CHECK_S)
            except Exception:  # pragma: no cover - the native wait raises only for signals (main thread only)
                logger.exception("watching data files failed")
                return
            if batch is None or self._stopping:
                continue
            files, notes = batch
            for note in notes:
                logger.warning("%s", note)
            for path, exists, content in files:
                if exists and content is not None:
                    try:
                        self._on_data_saved(path, content)
                    except Exception:  # pragma: no cover - a bug here must not end watching
                        logger.exception("handling the saved file %s failed", path)

    def _on_data_saved(self, path: str, content: bytes) -> None:
        if self.apply == "manual":
            with self._lock:
                if _datafiles.changed(path, content, note=False):
                    self._pending_data[path] = content
                else:  # saved back to what the modules read: nothing left to apply
                    self._pending_data.pop(path, None)
            return
        self._apply_data(path, content)

    def _apply_data(self, path: str, content: bytes) -> List[ReloadReport]:
        """Re-runs, in each module that read ``path`` at import, the statements that read it."""
        reports = []
        with _engine_lock():  # the check and the reloads: another reloader may have applied this very save
            if not _datafiles.changed(path, content):
                logger.debug("saved %s: skipped, its content is what the modules read", path)
                return reports
            for module in self._data_files.get(path, ()):
                if sys.modules.get(module.__name__) is not module:
                    continue
                try:
                    report = _reload_mod._reload_and_report(module, self.mode, None, log_failure=False,
                                                            data_files=(path,))
                except Exception:  # the engine reports user-code failures itself; this is a bug in hotswap
                    report = ReloadReport(module=module.__name__, path=path, ok=False, error=traceback.format_exc(),
                                          data_files=(path,))
                reports.append(report)
        if self._clear and reports:
            sys.stdout.write(_CLEAR_SCREEN)
            sys.stdout.flush()
        for report in reports:
            self._record(report, path, content)
        return reports

    # -- fork -------------------------------------------------------------------------------------------------------
    #
    # A forked child (gunicorn --preload, multiprocessing's fork, os.fork) has only the thread that forked: the
    # parent's watcher threads are not there. Each child starts a watcher of its own rather than having the parent
    # forward its events: a reload patches the memory of the process that runs it, the child's modules are its own
    # copies, the parent neither knows its children nor outlives them reliably, and a watcher per process needs no
    # channel between processes. A child's reloader does what its parent's did, with its own thread and lock.

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Condition(threading.Lock())  # may have been held by a thread that is not here
        self._slow = _SlowReloadWatch()  # its thread stayed in the parent
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
        if self._data_watcher is not None:
            self._data_watcher.stop()  # forgets the parent's threads
        self._data_watcher = None
        self._data_thread = None
        self._data_files, self._data_files_seen = {}, set()  # checked again by the catch-up
        self._data_generation = (-1, -1)

    def _catch_up(self) -> None:
        """Checks every watched module's file once: a save made while the process forked (before this process's
        watcher existed), or a reload the fork interrupted, is applied now."""
        self._modules.refresh()
        saved = [checked for checked in map(self._watcher.read, self._modules.paths()) if checked is not None]
        if saved:
            try:
                self._handle(saved)
            except Exception:  # pragma: no cover - a bug here must not end watching
                logger.exception("checking the watched files after a fork failed")
        try:
            self._refresh_data_files()  # and the files modules read at import, each checked once
        except Exception:  # pragma: no cover
            logger.exception("checking the watched data files after a fork failed")


class _SlowReloadWatch:
    """Warns once about a reload that has run for more than ``SLOW_RELOAD_WARNING_S``, while it runs.

    One daemon thread per reloader, started by its first reload, looks at the reload in progress every fifth of
    that time; a reload only notes when it starts and ends. (A timer thread started for each reload cost more than
    the reload of a small module: starting a thread waits for it to run.)
    """

    def __init__(self) -> None:
        self._current: Optional[Tuple[float, str, str]] = None  # (started, module name, path)
        self._closed = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def begin(self, name: str, path: str) -> None:
        self._current = (time.monotonic(), name, path)
        if self._thread is None and not self._closed.is_set():
            self._thread = threading.Thread(target=self._run, name="hotswap-autoreload-slow", daemon=True)
            self._thread.start()

    def end(self) -> None:
        self._current = None

    def close(self) -> None:
        self._closed.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def _run(self) -> None:
        warned = None
        while not self._closed.wait(SLOW_RELOAD_WARNING_S / 5):
            current = self._current
            if current is None or current is warned or time.monotonic() - current[0] < SLOW_RELOAD_WARNING_S:
                continue
            warned = current
            _, name, path = current
            logger.warning("reloading %s has taken more than %.0f s: a top-level statement of %s may be blocking; "
                           "the program keeps running, further saves wait for it", name, SLOW_RELOAD_WARNING_S, path)


class _ModuleMap:
    """Maps real file paths under the roots (directories, or files watched on their own) to the loaded modules
    that came from them, from ``sys.modules``."""

    def __init__(self, roots: Sequence[str]) -> None:
        self._files = frozenset(r for r in roots if os.path.isfile(r))
        self._prefixes = tuple(r.rstrip(os.sep) + os.sep for r in roots if r not in self._files)
        self._by_path: Dict[str, List[ModuleType]] = {}
        self._realpaths: Dict[str, Optional[str]] = {}
        self._ignored: Dict[str, bool] = {}
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
                inside = real in self._files or (real.startswith(self._prefixes) and not self._in_ignored_dir(real))
                real = real if inside else None
                self._realpaths[file] = real
            if real is None:
                continue
            by_path.setdefault(real, []).append(module)
            if track is not None and id(module) not in known:
                try:
                    track(module)
                except Exception:
                    logger.debug("cannot record the baseline of %s", module.__name__, exc_info=True)
        self._by_path = by_path
        self._seen = len(sys.modules)

    def _in_ignored_dir(self, real: str) -> bool:
        """Whether a file lies in a directory the native watcher never watches (a virtual environment inside a
        root, a cache): its module can never be reloaded, so its baseline is not worth reading (seconds for a
        virtual environment's packages)."""
        root = next(p for p in self._prefixes if real.startswith(p))
        path = root.rstrip(os.sep)
        for part in real[len(root):].split(os.sep)[:-1]:
            path = os.path.join(path, part)
            ignored = self._ignored.get(path)
            if ignored is None:
                ignored = part in DEFAULT_IGNORED_DIRS or part.startswith(".venv") or any(
                    os.path.exists(os.path.join(path, marker)) for marker in IGNORED_DIR_MARKERS)
                self._ignored[path] = ignored
            if ignored:
                return True
        return False

    @property
    def seen(self) -> int:
        """How many modules ``sys.modules`` held at the last refresh."""
        return self._seen

    def refresh_if_imported(self) -> None:
        if len(sys.modules) != self._seen:
            self.refresh()

    def paths(self) -> List[str]:
        """The real paths of every module file known under the roots."""
        return list(self._by_path)

    def known(self, path: str) -> List[ModuleType]:
        """Modules known to come from ``path``, without refreshing."""
        return [m for m in self._by_path.get(path, ()) if sys.modules.get(m.__name__) is m]

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
        imported = imported_names(module.__name__, _package(module), content)
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


def _package(module: ModuleType) -> Optional[str]:
    package = getattr(module, "__package__", None)
    if package is None and hasattr(module, "__path__"):
        package = module.__name__
    return package


def _running_source(module: ModuleType, path: str) -> Optional[bytes]:
    """What ``module`` runs, as bytes; ``path``: its real source path, by which ``_ModuleMap`` found it (so not
    resolved again: each directory of the path would cost a system call, which lets the program's threads take the
    interpreter from this one)."""
    try:
        found = _source.baseline(module, path)
    except Exception:  # an odd module the engine cannot describe: treat its baseline as unknown
        return None
    return None if found is None else found.text.encode("utf-8")


def _engine_lock() -> ContextManager[object]:
    """The engine's one-reload-at-a-time lock (re-entrant), held across a check and the reload it decides."""
    return _reload_mod._reload_lock


def _as_paths(path: object) -> List[str]:
    """``path`` as a list of str paths; TypeError for anything that is not a str, a PathLike or a list of them."""
    items = [path] if isinstance(path, (str, os.PathLike)) else path
    if isinstance(items, (bytes, bytearray)) or not isinstance(items, Iterable):
        raise TypeError(f"AutoReloader path must be a str or os.PathLike, or a list of them, not {type(path).__name__}")
    paths = []
    for item in items:
        fspath = os.fspath(item) if isinstance(item, (str, os.PathLike)) else None
        if not isinstance(fspath, str):
            raise TypeError(
                f"AutoReloader path must be a str or os.PathLike, or a list of them; got {type(item).__name__} "
                f"{item!r}")
        paths.append(fspath)
    if not paths:
        raise ValueError("AutoReloader needs at least one path to watch")
    return paths


def _as_bytes(source: Union[bytes, str]) -> bytes:
    return source.encode("utf-8") if isinstance(source, str) else source


#: Saves that failed to apply, by real path: the content is not tried again (by any reloader) until it changes.
_failed_saves: Dict[str, bytes] = {}

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

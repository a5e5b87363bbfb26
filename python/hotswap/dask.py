"""``hotswap.dask``: one save patches every worker of a running Dask cluster, in place, its data kept.

Mechanism: ``attach(client, path=...)`` watches ``path`` on the client's side with an ``AutoReloader``. Each save
that applies there is sent to every worker as source text, through the channel Dask already has
(``Client.run``), and applied on each worker with ``hotswap.reload(module, source=text)``: the functions and
classes the worker holds (in tasks, in scattered or persisted objects) run the new code, and what it
keeps in memory stays. Workers need no shared file system and no copy of the edited tree. Each worker's reports
come back to the client (``handle.reports``, one logged line per save). A worker plugin (registered with the
scheduler) carries the current source of every module changed since ``attach``, so a worker that joins later (or
is restarted) imports those modules from the sent source rather than from its own, older copy.

Trade-off: a worker only ever runs sent source for a module it has loaded, or could import by name (its own copy
of the module is then found as usual and only its source is replaced); a module no worker can import is reported
as skipped, never created. The engine's rules hold on each worker: a task running while a save lands finishes
with the code it started with, the next task runs the new code. Saves that fail on the client are not sent.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import logging
import os
import sys
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Deque, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from distributed.diagnostics.plugin import WorkerPlugin

from .reload import ReloadReport, reload, running_source, track
from .watcher import AutoReloader

__all__ = ["ClusterReport", "DaskReloader", "WorkerReload", "attach", "restart_workers"]

logger = logging.getLogger("hotswap")

#: The name of the worker plugin that brings workers which join later up to date.
PLUGIN_NAME = "hotswap-sources"

#: Modules that are the program itself: never sent (a worker's ``__main__`` is the worker's, and functions defined
#: in the client's ``__main__`` travel with each task anyway).
_MAIN_NAMES = ("__main__", "__mp_main__")

_PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class WorkerReload:
    """What one worker did with one sent module.

    Attributes:
        status: ``"applied"`` (patched in place), ``"on import"`` (not loaded there: the sent source is what it
            will import), ``"needs restart"`` (applied but part of it cannot be in place), ``"failed"`` (nothing
            changed there), or ``"skipped"`` (the worker cannot import that module).
        reason: why, for every status but ``"applied"`` and ``"on import"``.
        report: the worker's ``ReloadReport``, when it reloaded the module.
    """

    status: str
    reason: str = ""
    report: Optional[ReloadReport] = None

    @property
    def ok(self) -> bool:
        """Whether the worker now runs the sent source (in place, or when it first imports the module)."""
        return self.status in ("applied", "on import")


@dataclass(frozen=True)
class ClusterReport:
    """One save, applied on the client, then sent to the workers.

    Attributes:
        module: the module's name.
        local: the client's ``ReloadReport``.
        workers: what each worker did, by worker address (empty when nothing was sent).
        not_sent: why the save was not sent to the workers (it failed on the client; the client could not reach
            the cluster), else None.
        duration_ms: from the client's reload to the last worker's answer.
    """

    module: str
    local: ReloadReport
    workers: Dict[str, WorkerReload] = field(default_factory=dict)
    not_sent: Optional[str] = None
    duration_ms: float = 0.0

    def _with(self, *statuses: str) -> Dict[str, str]:
        return {addr: w.reason for addr, w in self.workers.items() if w.status in statuses}

    @property
    def applied(self) -> List[str]:
        """Addresses of the workers that run the new source (or will import it)."""
        return [addr for addr, w in self.workers.items() if w.ok]

    @property
    def failed(self) -> Dict[str, str]:
        """Workers whose reload failed (they keep their old code), with the reason."""
        return self._with("failed")

    @property
    def needs_restart(self) -> Dict[str, str]:
        """Workers where part of the edit could not be applied in place, with the reason."""
        return self._with("needs restart")

    @property
    def skipped(self) -> Dict[str, str]:
        """Workers that cannot import the module, with the reason."""
        return self._with("skipped")

    @property
    def ok(self) -> bool:
        """Whether the save was sent and every worker runs it in place."""
        return self.not_sent is None and all(w.ok for w in self.workers.values())

    def summary(self) -> str:
        """One line, e.g. ``app.pricing: applied on 2 of 2 dask workers (8.1 ms)``."""
        if self.not_sent is not None:
            return f"{self.module}: not sent to the dask workers: {self.not_sent}"
        on_import = sum(1 for w in self.workers.values() if w.status == "on import")
        parts = [f"applied on {len(self.applied)} of {len(self.workers)} dask workers"
                 + (f" ({on_import} will import it so)" if on_import else "")]
        for label, found in (("failed", self.failed), ("needs restart", self.needs_restart),
                             ("skipped", self.skipped)):
            parts.extend(f"{label} on {addr}: {reason}" for addr, reason in sorted(found.items()))
        if self.needs_restart:
            parts.append("hotswap.dask.restart_workers(client) restarts them")
        return f"{self.module}: {'; '.join(parts)} ({self.duration_ms:.1f} ms)"


class DaskReloader:
    """Sends each save under ``path`` that applies on the client to every worker of ``client``'s cluster.

    Made by ``attach``; see there. Stops with ``detach()`` (or at the end of a ``with`` block).

    Attributes:
        reports: the last 100 ``ClusterReport``s, oldest first.
        sources: the current source of every module sent since ``attach``, by name (what a worker that joins
            later gets).
        reloader: the client-side ``AutoReloader``.
    """

    def __init__(self, client: Any, path: Union[_PathLike, Sequence[_PathLike]], **reloader_args: Any) -> None:
        if getattr(client, "asynchronous", False):
            raise TypeError("hotswap.dask.attach needs a synchronous Client (asynchronous=False)")
        self.client = client
        self.mode: str = reloader_args.get("mode", "changed")
        self.sources: Dict[str, str] = {}
        self.reports: Deque[ClusterReport] = deque(maxlen=100)
        self._unread: Deque[ClusterReport] = deque(maxlen=1000)
        self._lock = threading.Condition(threading.Lock())
        self._detached = False
        self._names: Tuple[str, ...] = ()
        self._plugin_lock = threading.Lock()
        self.reloader = AutoReloader(path, apply="thread", on_reload=self._on_local_reload, **reloader_args)
        try:
            # Now, on every worker: hotswap's import hook (baselines of modules imported from here on), and the
            # baselines of the watched modules already loaded there, read before any save can reach them.
            self._names = _watched_names(self.reloader.roots)
            self._register_plugin()
        except BaseException:
            self.reloader.stop()
            raise

    def wait_for_reload(self, timeout: Optional[float] = None) -> Optional[ClusterReport]:
        """Returns the next ``ClusterReport`` not yet returned, waiting up to ``timeout`` seconds (None: forever).

        Returns None at the timeout, or when detached with nothing queued.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while not self._unread:
                remaining = None if deadline is None else deadline - time.monotonic()
                if self._detached or (remaining is not None and remaining <= 0):
                    return None
                self._lock.wait(0.1 if remaining is None else min(remaining, 0.1))
            return self._unread.popleft()

    def detach(self) -> None:
        """Stops watching and sending. Workers keep the code they were sent; modules they import from now on, and
        workers that join later, come from the workers' own files. May be called again."""
        with self._lock:
            if self._detached:
                return
            self._detached = True
            self._lock.notify_all()
        self.reloader.stop()
        try:
            with self._plugin_lock:
                running = self.client.status == "running"
                if running:
                    self.client.unregister_worker_plugin(PLUGIN_NAME)
            if running:
                # Modules not imported yet on a worker are imported from its own files again from now on.
                self.client.run(_forget_sent, on_error="ignore")
        except Exception:
            logger.debug("could not unregister the %s worker plugin", PLUGIN_NAME, exc_info=True)

    def __enter__(self) -> DaskReloader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.detach()

    def __repr__(self) -> str:
        state = "detached" if self._detached else "attached"
        return f"<DaskReloader {', '.join(self.reloader.roots)} {state}, {len(self.sources)} module(s) sent>"

    # -- on the reloader's thread --------------------------------------------------------------------------------

    def _on_local_reload(self, local: ReloadReport) -> None:
        start = time.perf_counter()
        module = sys.modules.get(local.module)
        text = None
        if local.module in _MAIN_NAMES:
            not_sent: Optional[str] = ("it is this program's __main__ (functions defined there travel with each "
                                       "task)")
        elif not local.ok:
            not_sent = f"it failed here ({local.reason()}); the workers keep their code"
        else:
            source = running_source(module) if module is not None else None
            text = source.decode("utf-8") if source is not None else None
            not_sent = None if text is not None else "the source it runs here is unknown"
        workers: Dict[str, WorkerReload] = {}
        if text is not None and self._detached:
            text, not_sent = None, "detached"
        if text is not None:
            try:
                workers = self._send(local.module, text)
            except Exception as exc:  # the cluster is gone or the client closed: say so, keep watching
                not_sent = f"the cluster could not be reached ({type(exc).__name__}: {exc})"
        report = ClusterReport(local.module, local, workers, not_sent, (time.perf_counter() - start) * 1000
                               + local.duration_ms)
        if report.ok:
            logger.info("%s", report.summary())
        elif not_sent is None or local.ok:
            logger.warning("%s", report.summary())
        else:  # a broken save: the reloader has warned with its file and line already
            logger.info("%s", report.summary())
        if text is not None and not_sent is None:
            # Before the report: once it is out, a worker that joins gets this source too. After the run: the
            # workers that got it find it running (the plugin's setup does nothing there); a worker that joined
            # meanwhile gets it from the plugin.
            self.sources[local.module] = text
            try:
                self._register_plugin()
            except Exception as exc:
                logger.warning("could not update the %s worker plugin (%s: %s): workers that join later may not get "
                               "%s", PLUGIN_NAME, type(exc).__name__, exc, local.module)
        with self._lock:
            self.reports.append(report)
            self._unread.append(report)
            self._lock.notify_all()

    def _send(self, name: str, text: str) -> Dict[str, WorkerReload]:
        answers = self.client.run(_apply_sent, [(name, text)], self.mode, on_error="return")
        workers: Dict[str, WorkerReload] = {}
        for addr, answer in answers.items():
            if isinstance(answer, BaseException):
                workers[addr] = WorkerReload("failed", f"{type(answer).__name__}: {answer}")
            else:
                workers[addr] = answer[0]
        return workers

    def _register_plugin(self) -> None:
        with self._plugin_lock:  # never again after detach() unregistered it
            if self._detached:
                return
            plugin = SentSources(dict(self.sources), self.mode, self._names)
            register = getattr(self.client, "register_plugin", None) or self.client.register_worker_plugin
            register(plugin, name=PLUGIN_NAME)


def attach(
    client: Any,
    path: Union[_PathLike, Sequence[_PathLike]],
    *,
    include: Iterable[str] = ("*.py",),
    exclude: Iterable[str] = (),
    mode: str = "changed",
    debounce_ms: float = 0,
    force_polling: bool = False,
) -> DaskReloader:
    """Watches ``path`` and patches every save into this process and every worker of ``client``'s cluster.

    Each save of a module this process has imported is applied here first (as ``AutoReloader`` does); when it
    applies, its source is sent to every worker and applied there in place (``hotswap.reload(m, source=text)``):
    data the workers hold stays, their processes keep running, tasks already running finish with the code they
    started with. A worker that joins later imports changed modules from the sent source. A save that fails here
    is not sent; a worker where it fails keeps its old code and says why; a worker where it needs a restart says
    so, and nothing is restarted (``restart_workers(client)`` does that). One line per save is logged to the
    ``hotswap`` logger (``app.pricing: applied on 2 of 2 dask workers (8.1 ms)``).

    Args:
        client: a synchronous ``distributed.Client``.
        path: the directories (or files) to watch, as for ``AutoReloader``.
        include, exclude, mode, debounce_ms, force_polling: as for ``AutoReloader`` (``mode`` is used on the
            workers too).

    Returns:
        A ``DaskReloader``: ``reports``, ``wait_for_reload(timeout)``, ``detach()``; a context manager.

    Example:
        >>> import hotswap.dask
        >>> from distributed import Client
        >>> client = Client(n_workers=2)                               # doctest: +SKIP
        >>> with hotswap.dask.attach(client, path="src/") as handle:  # doctest: +SKIP
        ...     ...  # edit and save src/app/pricing.py
        ...     print(handle.wait_for_reload(timeout=10).summary())
        app.pricing: applied on 2 of 2 dask workers (8.1 ms)
    """
    return DaskReloader(client, path, include=include, exclude=exclude, mode=mode, debounce_ms=debounce_ms,
                        force_polling=force_polling)


def restart_workers(client: Any, timeout_s: Optional[float] = None) -> None:
    """Restarts every worker of ``client``'s cluster (``client.restart()``), for an edit that needs it.

    Everything the workers hold in memory is lost, as with ``client.restart()``. With a ``DaskReloader``
    attached, the restarted workers import the changed modules from the sources it sent.

    Args:
        client: a synchronous ``distributed.Client`` whose workers have nannies.
        timeout_s: how long to wait for the workers to come back (Dask's default when None).
    """
    start = time.perf_counter()
    if timeout_s is None:
        client.restart(wait_for_workers=True)
    else:
        client.restart(timeout=timeout_s, wait_for_workers=True)
    logger.info("restarted the dask workers (%.0f ms)", (time.perf_counter() - start) * 1000)


def _watched_names(roots: Sequence[str]) -> Tuple[str, ...]:
    """Names of the modules loaded here from ``.py`` files under ``roots``."""
    prefixes = tuple(root.rstrip(os.sep) + os.sep for root in roots)
    names = []
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if isinstance(file, str) and file.endswith(".py") and name not in _MAIN_NAMES:
            real = os.path.realpath(file)
            if real in roots or real.startswith(prefixes):
                names.append(name)
    return tuple(names)


# -- on the workers -------------------------------------------------------------------------------------------------


class SentSources(WorkerPlugin):
    """The worker plugin: brings a worker that joins (or is restarted) up to date with the sent sources.

    Its setup installs the import finder that serves sent sources, records the baselines of the watched modules
    the worker has loaded, and applies every sent source that the worker does not run yet.
    """

    idempotent = False

    def __init__(self, sources: Dict[str, str], mode: str, names: Tuple[str, ...] = ()) -> None:
        self.sources = sources
        self.mode = mode
        self.names = names

    def setup(self, worker: Any) -> None:
        _finder()
        # A worker may have imported them before hotswap, with no byte-code cache to prove what they run (spawned
        # workers start with -B when the parent does): record their files now, before a save compares with them.
        for name in self.names:
            module = sys.modules.get(name)
            if module is not None:
                try:
                    track(module)
                except (TypeError, ValueError):
                    pass
        for result in _apply_sent(list(self.sources.items()), self.mode, only_new=True):
            if not result.ok:
                logger.warning("hotswap.dask on %s: %s: %s", getattr(worker, "address", "this worker"), result.status,
                               result.reason)


def _apply_sent(sources: List[Tuple[str, str]], mode: str, only_new: bool = False) -> List[WorkerReload]:
    """Applies sent ``(module name, source)`` pairs here, on a worker; one ``WorkerReload`` each.

    A loaded module is reloaded with the source in place. A module not loaded that the worker can import by name
    (its own file, found on its ``sys.path``) will be imported from the sent source when first imported. Any other
    name is skipped: no module is ever created from a name the worker cannot import.
    """
    finder = _finder()
    results = []
    for name, text in sources:
        if only_new and _attempted.get(name) == text:
            continue  # this worker got it already (the plugin registered again for a later save): reported then
        _attempted[name] = text
        module = sys.modules.get(name)
        if module is None:
            results.append(finder.add(name, text))
            continue
        try:
            if running_source(module) == text.encode("utf-8"):
                finder.sources[name] = text
                results.append(WorkerReload("applied"))
                continue
            report = reload(module, mode=mode, source=text)
        except Exception as exc:  # a built-in or extension module of that name here, say
            results.append(WorkerReload("failed", f"{type(exc).__name__}: {exc}"))
            continue
        if not report.ok:
            results.append(WorkerReload("failed", f"{report.where()}: {report.reason()}", report))
            continue
        finder.sources[name] = text
        if report.needs_restart:
            results.append(WorkerReload("needs restart", report.needs_restart, report))
        else:
            results.append(WorkerReload("applied", "", report))
    return results


#: On a worker: the last source sent for each module, applied or not.
_attempted: Dict[str, str] = {}


class _SentSourceFinder:
    """A ``sys.meta_path`` entry on a worker: a module with a sent source is found as usual (the worker's own copy,
    so only names it can import), and executed from the sent source instead of its file."""

    def __init__(self) -> None:
        self.sources: Dict[str, str] = {}

    def add(self, name: str, text: str) -> WorkerReload:
        try:
            spec = importlib.util.find_spec(name)  # imports the parent package, as importing ``name`` would
        except Exception as exc:
            return WorkerReload("skipped", f"cannot import {name} here ({type(exc).__name__}: {exc})")
        if spec is None or not (spec.origin or "").endswith(".py"):
            return WorkerReload("skipped", f"cannot import {name} here (no such Python module on its sys.path)")
        self.sources[name] = text
        return WorkerReload("on import")

    def find_spec(self, name: str, path: Optional[Sequence[str]] = None, target: Optional[ModuleType] = None):
        text = self.sources.get(name)
        if text is None or name in sys.modules:
            return None  # a reload by other means (importlib.reload, Client.upload_file) finds the file as usual
        finders = sys.meta_path
        start = finders.index(self) + 1 if self in finders else len(finders)
        for finder in finders[start:]:
            find_spec = getattr(finder, "find_spec", None)
            spec = find_spec(name, path, target) if find_spec is not None else None
            if spec is None:
                continue
            if spec.origin and spec.origin.endswith(".py"):
                spec.loader = _SentSourceLoader(name, spec.origin, text)
            return spec
        return None

    def invalidate_caches(self) -> None:
        pass


def _forget_sent() -> None:
    """On a worker, at ``detach()``: modules imported from now on come from the worker's own files."""
    _finder().sources.clear()
    _attempted.clear()


class _SentSourceLoader(importlib.machinery.SourceFileLoader):
    """Loads a module found at its usual place from a sent source (no byte-code cache is read or written)."""

    def __init__(self, fullname: str, path: str, text: str) -> None:
        super().__init__(fullname, path)
        self.text = text

    def get_source(self, fullname: str) -> str:
        return self.text

    def get_code(self, fullname: str) -> Any:
        return compile(self.text, self.path, "exec", dont_inherit=True)

    def exec_module(self, module: ModuleType) -> None:
        super().exec_module(module)
        try:
            track(module, source=self.text)  # what it runs is the sent source, not its file
        except Exception:
            logger.debug("cannot record the baseline of %s:\n%s", module.__name__, traceback.format_exc())


_finder_lock = threading.Lock()


def _finder() -> _SentSourceFinder:
    with _finder_lock:
        for finder in sys.meta_path:
            if isinstance(finder, _SentSourceFinder):
                return finder
        finder = _SentSourceFinder()
        sys.meta_path.insert(0, finder)
        return finder

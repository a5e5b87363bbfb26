"""Type stubs and documentation for hotswap's native core (Rust, PyO3)."""

from types import CodeType, FunctionType
from typing import Any, ClassVar, Iterable, List, Optional, Sequence, Tuple

__version__: str
LOG_ENV: str
"""Name of the environment variable that filters Rust-side logging (``HOTSWAP_LOG``)."""

class HotswapError(Exception):
    """Base class of hotswap's own errors."""

class Stmt:
    """One top-level statement of a module (or, in ``members``, of a class body)."""

    kind: str
    """``"def"``, ``"class"`` or ``"other"``."""
    name: Optional[str]
    text: str
    """Exact source text, decorators included."""
    lineno: int
    """First line (of the first decorator, if any), 1-based."""
    end_lineno: int
    def_lineno: int
    """Line of the ``def``/``class`` keyword."""
    def_text: str
    """The statement from its ``def``/``class`` line on, without decorators."""
    decorators: list[str]
    binds: list[str]
    """Names the statement binds in the namespace it runs in."""
    reads: list[str]
    """Names the statement reads while it runs (function bodies excluded; class bodies included)."""
    calls_reloading: bool
    defaults: list[Tuple[str, str, list[str]]]
    """For a def: (parameter, default expression text, names that expression reads)."""
    nested_scopes: bool
    """Whether the statement creates function objects of its own when it, or the function it defines, runs."""
    members: list["Stmt"]
    def __init__(
        self, *, kind: str, name: Optional[str], text: str, lineno: int, end_lineno: int, def_lineno: int,
        def_text: str, decorators: Sequence[str], binds: Sequence[str], reads: Sequence[str],
        calls_reloading: bool, defaults: Sequence[Tuple[str, str, Sequence[str]]], nested_scopes: bool,
        members: Sequence["Stmt"],
    ) -> None: ...

def split_statements(source: str, path: str = "<unknown>") -> list[Stmt]:
    """Splits module source into top-level statements; SyntaxError where rustpython-parser rejects it."""

def split_statements_incremental(old: str, old_stmts: Sequence[Stmt], new: str, path: str = "<unknown>") -> list[Stmt]:
    """Like ``split_statements(new)``, reusing the statements of ``old`` that lie in text both share."""

class Step:
    index: int
    """Index into the new statements."""
    old_index: Optional[int]
    action: str
    """``"run"``, ``"patch"`` or ``"move"``."""
    reason: str

class Plan:
    steps: list[Step]
    removed: list[str]
    """Definitions the old source had and the new one binds nowhere."""
    rebound: list[str]
    """Names this reload binds to new objects."""

def plan(old: Sequence[Stmt], new: Sequence[Stmt], *, whole_module: bool = False) -> Plan:
    """Decides which statements run, which definitions are patched in place and which only moved."""

def apply(ops: Iterable[tuple]) -> int:
    """Applies a batch of writes holding the GIL, all or none; returns how many were applied.

    Ops: ``("func", function, code, closure, defaults, kwdefaults, annotations, doc, type_params | None)``,
    ``("setattr", obj, name, value)``, ``("delattr", obj, name)`` (classes through ``type.__setattr__``),
    ``("setitem", dict, key, value)``, ``("delitem", dict, key)``, ``("cell", cell, value)``.
    """

def find_functions(codes: Sequence[CodeType]) -> list[list[FunctionType]]:
    """For each code object, the live functions running it (one sweep of ``gc.get_objects()``)."""

# --- file watching (src/watch.rs) ----------------------------------------------------------------------------

class Watcher:
    """Watches directory trees from native threads and hands out batches of changed files.

    Each directory under the roots is watched non-recursively with the OS's notification API (notify's native
    backend), except ignored trees (``default_ignored_dirs``, ``.venv*``, directories holding ``pyvenv.cfg`` or
    ``CACHEDIR.TAG``), which are never walked or watched; new directories are watched as they appear. Symlinked
    directories are not followed, and a file whose real path is outside the roots is never reported. Editors'
    temporary files (``*~``, ``4913``, ``*.swp``, ``*.___jb_*___``, ``.#*``) are never reported.

    Events are coalesced into a batch that ends when no event came for ``debounce_ms``, or ``max_batch_ms`` after
    its first event. A file modified and not yet closed by its writer (close-after-write, inotify only) holds the
    batch, for at most 1 s from its first event, so a truncated or half-written file is not reported.

    When the native backend cannot start (ENOSYS, inotify instance or watch limits), or with ``force_polling``,
    notify's PollWatcher polls every 200 ms, hashing file contents (its mtimes have whole-second resolution);
    ``backend`` and ``fallback_reason`` say so. The notify and batcher threads never run Python code.

    Example:
        >>> import tempfile
        >>> from hotswap._native import Watcher
        >>> w = Watcher([tempfile.mkdtemp()])
        >>> w.wait(0.01) is None
        True
        >>> w.stop()
    """

    default_ignored_dirs: ClassVar[List[str]]
    """Directory names never watched; equal to ``hotswap.watcher.DEFAULT_IGNORED_DIRS``."""

    backend: str
    """``"native"`` (inotify, FSEvents, ...) or ``"poll"``."""

    fallback_reason: Optional[str]
    """Why the polling backend is used (``"force_polling=True"``, or the native backend's error), else None."""

    watched_dirs: int
    """How many directories were watched at start."""

    running: bool
    """Whether the batcher thread is running (False after ``stop()``)."""

    def __init__(
        self,
        roots: Sequence[str],
        *,
        include: Sequence[str] = ("*.py",),
        exclude: Sequence[str] = (),
        debounce_ms: int = 5,
        max_batch_ms: int = 100,
        force_polling: bool = False,
        simulate_native_error: bool = False,
    ) -> None:
        """Starts watching at once (the initial walk runs with the GIL released).

        Args:
            roots: existing directories; watched through their real paths.
            include: ``fnmatch`` patterns a file's name or root-relative path must match to be reported.
            exclude: patterns of files and directories to skip (in addition to the defaults).
            debounce_ms: quiet period that ends a batch.
            max_batch_ms: longest a batch of settled files is held under a continuous stream of events.
            force_polling: use notify's PollWatcher.
            simulate_native_error: for tests: behave as if the native backend failed to start.

        Raises:
            FileNotFoundError: a root does not exist.
            ValueError: no root, or a root is not a directory.
            RuntimeError: no backend could start.
        """

    def wait(self, timeout_s: Optional[float] = None) -> Optional[Tuple[List[Tuple[str, bool]], List[str]]]:
        """Blocks (GIL released, signals checked every 50 ms) for the next batch.

        Returns:
            ``(files, notes)``: ``files`` lists ``(real path, exists)`` in first-seen order, each path once, with
            ``exists`` decided from the file's state when the batch ended (a batch may hold a delete and a
            create of the same path); ``notes`` are backend problems to log. None at timeout or once stopped.

        Raises:
            KeyboardInterrupt: (or whatever a signal handler raises) when called on the main thread.
        """

    def stop(self) -> None:
        """Stops watching and joins the batcher thread; the backend's file descriptors are closed on return.

        Idempotent; a blocked ``wait`` returns None.
        """

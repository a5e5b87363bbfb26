"""Type stubs and documentation for hotswap's native core (Rust, PyO3)."""

import os
from types import CellType, CodeType, FunctionType
from typing import Any, Callable, ClassVar, Iterable, List, Optional, Sequence, Tuple, Union

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
    members: list["Stmt"]
    def __init__(
        self, *, kind: str, name: Optional[str], text: str, lineno: int, end_lineno: int, def_lineno: int,
        def_text: str, decorators: Sequence[str], binds: Sequence[str], reads: Sequence[str],
        calls_reloading: bool, defaults: Sequence[Tuple[str, str, Sequence[str]]],
        members: Sequence["Stmt"],
    ) -> None: ...

def split_statements(source: str, path: str = "<unknown>") -> list[Stmt]:
    """Splits module source into top-level statements; SyntaxError where rustpython-parser rejects it, MemoryError
    when the memory a parse of that size needs (``stmts::PARSE_BYTES_PER_SOURCE_BYTE`` times the source) cannot be
    reserved, instead of an abort inside the parser."""

class Step:
    index: int
    """Index into the new statements."""
    old_index: Optional[int]
    action: str
    """``"run"``, ``"patch"`` or ``"move"``."""
    reason: str
    members: Optional[MemberPlan]
    """For a class that is patched: how its body changed (with no old body, every member is new)."""

class MemberPlan:
    """How a class body changed: its statements keyed and diffed like a module's (definitions by name, other
    statements by text, in order)."""

    unchanged: list[str]
    """Names bound only by unchanged statements of the body that read nothing rebound: their values survive."""
    changed: list[str]
    """Names bound by new or changed statements of the body."""
    old_bound: list[str]
    """Names the old body bound (one bound before and not now is removed from the class)."""
    statements: list[Tuple[str, int, Optional[int]]]
    """(name, index of the new body's statement binding it last, index of the old statement it matches)."""
    nested: list[Tuple[str, "MemberPlan"]]
    """The plans of the nested classes the new body defines (one the old body did not define: all new)."""

class Plan:
    steps: list[Step]
    removed: list[str]
    """Definitions the old source had and the new one binds nowhere."""
    rebound: list[str]
    """Names this reload binds to new objects."""

def plan(
    source: str, path: str, old: Optional[Tuple[str, Sequence[Stmt]]] = None, *,
    statements: Optional[Sequence[Stmt]] = None, whole_module: bool = False, rebound: Sequence[str] = (),
) -> Tuple[Tuple[Stmt, ...], Plan]:
    """Splits ``source`` and plans the reload to it in one call: returns the new statements and the plan, which
    decides which statements run, which definitions are patched in place (with each patched class body's
    ``MemberPlan``) and which only moved.

    ``old``: the source the module runs and its statements; only the lines that differ from it are parsed (the
    statements before and after them are reused). None: not known; every statement acts as with
    ``whole_module``, no step has an ``old_index`` and every class body counts as new.
    ``statements``: ``source`` already split (CPython's ``ast``, for syntax the native parser rejects); it is
    not parsed again. ``rebound``: names bound to new objects from outside before the reload (another module's
    reload replaced what ``from m import X`` gave): the statements reading them run, or are rebuilt, too.
    SyntaxError and MemoryError as from ``split_statements``.
    """

class PatchFunction:
    """Op: gives ``func`` a new code object, closure, defaults, keyword defaults, annotations, doc and (3.12+,
    unless None) type parameters, through ``PyFunction_SetClosure`` and the ``__code__`` setter.

    The constructor checks what could crash the interpreter later: ``func`` must be a Python function, ``code``
    a code object, ``closure`` None or a tuple of cells (cells only) as long as ``code.co_freevars``; defaults
    None or a tuple, kwdefaults and annotations None or a dict (TypeError / ValueError otherwise).
    """

    func: FunctionType
    code: CodeType
    closure: Optional[Tuple[CellType, ...]]
    defaults: Optional[tuple]
    kwdefaults: Optional[dict]
    annotations: Optional[dict]
    doc: object
    type_params: Optional[tuple]
    def __init__(self, func: FunctionType, code: CodeType, closure: Optional[Tuple[CellType, ...]],
                 defaults: Optional[tuple], kwdefaults: Optional[dict], annotations: Optional[dict], doc: object,
                 type_params: Optional[tuple] = None) -> None: ...

class SetAttr:
    """Op: ``obj.name = value``; on a class through ``type.__setattr__`` (skipping a metaclass ``__setattr__``)."""

    obj: object
    name: str
    value: object
    def __init__(self, obj: object, name: str, value: object) -> None: ...

class DelAttr:
    """Op: ``del obj.name`` (classes through ``type.__delattr__``)."""

    obj: object
    name: str
    def __init__(self, obj: object, name: str) -> None: ...

class SetItem:
    """Op: ``mapping[key] = value`` on a dict (a module's namespace)."""

    mapping: dict
    key: object
    value: object
    def __init__(self, mapping: dict, key: object, value: object) -> None: ...

class DelItem:
    """Op: ``del mapping[key]`` if present."""

    mapping: dict
    key: object
    def __init__(self, mapping: dict, key: object) -> None: ...

class SetCell:
    """Op: sets a cell's contents; ``SetCell(cell)`` empties it. ``cell`` must be a cell (TypeError otherwise)."""

    cell: CellType
    value: Optional[object]
    def __init__(self, cell: CellType, *value: object) -> None: ...

Op = Union[PatchFunction, SetAttr, DelAttr, SetItem, DelItem, SetCell]
"""What ``apply`` takes."""

def apply(ops: Iterable[Op], *, undo: Optional[List[List[Op]]] = None) -> int:
    """Applies a batch of ops holding the GIL, all or none (a failure undoes the applied ones and raises);
    returns how many were applied.

    With ``undo``, appends to that list, before returning, the list of ops that put everything back (in the order
    to apply them): hold the list in your undo log before the call, and no signal or other thread can fall between
    the writes and their record. Replaced objects are released only when it returns. Raises TypeError for
    anything but the op classes above, MemoryError when the batch's bookkeeping cannot be allocated (nothing is
    applied then).
    """

# --- finding functions by code (src/funcindex.rs) -----------------------------------------------------------

def find_functions(codes: Sequence[CodeType]) -> list[list[FunctionType]]:
    """For each code object, the live functions running it, from a code -> functions index whose cost does not
    grow with the heap: on CPython 3.12+ kept by a function watcher; on 3.9-3.11 by a ``gc.callbacks`` entry that
    files nested functions (weakly) as they leave the youngest generation, which a query also searches. The
    index starts on the first call (one heap sweep then). A comprehension's or generator expression's code gets
    ``[]`` (its functions never outlive their call); on 3.9-3.11 a code not nested in a function is swept for."""

def find_defined_function(name: str, filename: str, lines: Sequence[int]) -> FunctionType | None:
    """The module-level function ``name`` of ``filename`` whose code starts at one of ``lines``, wherever it is
    referenced from (e.g. an overwritten ``def _`` kept by a singledispatch registry), or None. 3.12+ walks the
    indexed functions' codes; earlier versions sweep the heap once."""

def function_index_mode() -> str:
    """``"off"`` before the first query, then ``"watcher"`` (3.12+) or ``"gc"`` (3.9-3.11, or 3.12+ when every
    function watcher slot is taken)."""

# --- file watching (src/watch.rs) ----------------------------------------------------------------------------

class Watcher:
    """Watches directory trees (and single files) from native threads and hands out batches of complete saves.

    Each directory under the roots is watched non-recursively with the OS's notification API (notify's native
    backend), except ignored trees (``default_ignored_dirs``, ``.venv*``, directories holding ``pyvenv.cfg`` or
    ``CACHEDIR.TAG``), which are never walked or watched; new directories are watched as they appear. Symlinked
    directories are not followed, and a file whose real path is outside the roots is never reported. Editors'
    temporary files (``*~``, ``4913``, ``*.swp``, ``*.___jb_*___``, ``.#*``) are never reported.

    On inotify a save is complete when its writer closes the file (close-after-write) or a rename lands it; a file
    modified or created and not yet closed is never read, however long its writer takes. A complete file is read
    at once (checked first: a regular file whose real path is under the roots); then a marker file is created and
    removed in a private directory (under the system's temporary directory, watched by the same inotify
    instance), and the bytes are kept only once that marker's event has come back with no write to the file
    before it, which proves they are the whole save and not the start of the next one. There is no timer: however
    late the events come, the bytes wait for them. If that directory cannot be made, saves are taken as complete
    after 5 quiet milliseconds, as without close events, and ``warnings`` says so. Ready files are flushed at
    once, or after ``debounce_ms`` of quiet when it is set; a file still being written holds the others for at
    most ``max_batch_ms`` (files saved together arrive together). Backends without close events (polling,
    FSEvents, Windows) end a batch after ``max(debounce_ms, 5)`` quiet milliseconds, or ``max_batch_ms`` after
    its first event, and read the files then.

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

    poll_interval_ms: ClassVar[int]
    """Polling interval of the fallback backend (200)."""

    default_ignored_dirs: ClassVar[List[str]]
    """Directory names never watched; equal to ``hotswap.watcher.DEFAULT_IGNORED_DIRS``."""

    backend: str
    """``"native"`` (inotify, FSEvents, ...) or ``"poll"``."""

    fallback_reason: Optional[str]
    """Why the polling backend is used (``"force_polling=True"``, or the native backend's error), else None."""

    watched_dirs: int
    """How many directories were watched at start."""

    warnings: List[str]
    """Directories that could not be watched at start (permission denied, ...), one line each, to log."""

    running: bool
    """Whether the batcher thread is running (False after ``stop()``)."""

    def __init__(
        self,
        roots: Sequence[str],
        *,
        include: Sequence[str] = ("*.py",),
        exclude: Sequence[str] = (),
        debounce_ms: int = 0,
        max_batch_ms: int = 100,
        force_polling: bool = False,
        simulate_native_error: bool = False,
        simulate_unreadable: Sequence[str] = (),
        simulate_event_gate: bool = False,
    ) -> None:
        """Starts watching at once (the initial walk runs with the GIL released).

        Args:
            roots: existing directories or regular files (a file: its directory is watched, only it is
                reported); watched through their real paths.
            include: ``fnmatch`` patterns a file's name or root-relative path must match to be reported.
            exclude: patterns of files and directories to skip (in addition to the defaults).
            debounce_ms: quiet period before a batch of complete files is flushed (0: at once).
            max_batch_ms: longest complete files wait for others still being written (or, without close
                events, for a continuous stream of events to pause).
            force_polling: use notify's PollWatcher.
            simulate_native_error: for tests: behave as if the native backend failed to start.
            simulate_unreadable: for tests: directories to treat as if the OS refused to watch them.
            simulate_event_gate: for tests: pass the backend's events through a gate that ``_hold_events``,
                ``_release_events`` and ``_pass_events_until_close`` control (a starved event thread, on demand).

        Raises:
            FileNotFoundError: a root does not exist.
            ValueError: no root, a root that is neither a directory nor a regular file, or the file system's root.
            RuntimeError: no backend could start.
        """

    def wait(
        self, timeout_s: Optional[float] = None
    ) -> Optional[Tuple[List[Tuple[str, bool, Optional[bytes]]], List[str]]]:
        """Blocks (GIL released; on the main thread, signals checked every 50 ms) for the next batch.

        Returns:
            ``(files, notes)``: ``files`` lists ``(path, exists, content)`` in first-seen order, each path once:
            a complete save is ``(real path, True, bytes read)``; a file deleted (or renamed away, or unreadable)
            is ``(path, False, None)``. Files whose real path leads outside the roots are left out. ``notes`` are
            backend problems to log. None at timeout or once stopped.

        Raises:
            KeyboardInterrupt: (or whatever a signal handler raises) when called on the main thread.
        """

    def read(self, path: str) -> Optional[Tuple[str, bytes]]:
        """Reads ``path`` now: ``(real path, bytes)`` if it is a regular file whose real path is under the roots,
        else None. The check and the read use one descriptor, so what is returned is what was checked."""

    def _hold_events(self) -> None:
        """Test hook (``simulate_event_gate=True``): holds the backend's events from now on, as a notify thread
        that gets no CPU would. ValueError without the gate."""

    def _release_events(self) -> None:
        """Test hook: lets every event through, held ones first."""

    def _pass_events_until_close(self, timeout_s: float) -> bool:
        """Test hook: lets events through up to and including the next close-after-write, then holds again.
        True once that close reached the batcher, False if none came within ``timeout_s``."""

    def stop(self) -> None:
        """Stops watching and joins the batcher thread; the backend's file descriptors are closed on return.

        Idempotent; a blocked ``wait`` returns None. In a forked child (whose process never had the watcher's
        threads) it only forgets them; ``wait`` there returns None at once and ``running`` is False.
        """

# --- import scanning (src/imports.rs) ------------------------------------------------------------------------

class ImportSite:
    """One imported name at one place of one file, as the native scanner found it (frozen).

    ``hotswap.scan_imports`` turns these into ``hotswap.imports.ImportRecord`` (adding the classification).
    """

    module: str
    """Absolute dotted module: ``a.b`` for ``import a.b`` and for ``from a.b import c``. Relative imports are resolved
    against the file's package (from ``__init__.py`` files); one that climbs above the top keeps its dots."""
    name: str | None
    """``c`` for ``from a.b import c`` (``*`` for a star import); None for ``import a.b``."""
    lineno: int
    """1-based line of the import statement."""
    level: int
    """Leading dots of a relative import; 0 for an absolute one."""
    type_checking_only: bool
    """The import is inside ``if TYPE_CHECKING:`` (or ``if <x>.TYPE_CHECKING:``, or the ``else`` of
    ``if not TYPE_CHECKING:``)."""
    file: str
    """The file it was found in."""

def scan_import_sites(
    paths: Sequence[str | os.PathLike[str]],
) -> tuple[list[ImportSite], list[tuple[str, str]]]:
    """Lists the imports of every ``.py`` file under ``paths`` (files, or directories walked recursively).

    Imports at any depth count: inside ``try``, ``with``, ``for``, ``while``, ``match``, function and class bodies.
    Hidden directories, ``__pycache__``, ``node_modules``, ``site-packages`` and virtual environments (a directory
    holding ``pyvenv.cfg``) are skipped. Files are parsed with rustpython-parser on up to
    ``available_parallelism`` threads with the GIL released, and cached by content hash for the process's life
    (so a rescan only parses edited files).

    Returns:
        ``(sites, failed)``: the sites sorted by file then position, and ``(file, reason)`` for each file that could
        not be read or that rustpython-parser rejects (for example 3.12 nested same-quote f-strings); the caller
        decides what to do with those (``scan_imports`` retries them with CPython's ``ast``). Never raises for a
        bad file.

    Example:
        >>> import tempfile, os
        >>> from hotswap._native import scan_import_sites
        >>> d = tempfile.mkdtemp()
        >>> _ = open(os.path.join(d, "m.py"), "w").write("try:\\n    import json\\nexcept ImportError:\\n    pass\\n")
        >>> sites, failed = scan_import_sites([d])
        >>> [(s.module, s.lineno) for s in sites], failed
        ([('json', 2)], [])
    """

def scan_source_imports(source: str, path: str = "<unknown>", package: str = "") -> list[ImportSite]:
    """The imports of one module's source text (no file access, no cache).

    Args:
        source: the module's source.
        path: the file name to record in each site.
        package: the dotted package relative imports are resolved against (``""``: none).

    Raises:
        SyntaxError: rustpython-parser rejects the source; the message starts with ``line N:``.

    Example:
        >>> from hotswap._native import scan_source_imports
        >>> [(s.module, s.name) for s in scan_source_imports("from .models import User\\n", package="app")]
        [('app.models', 'User')]
    """

# --- the fork-based template (src/template.rs; the supervisor is hotswap/template.py) ------------------------

class TemplateError(HotswapError):
    """The template process failed to start, could not fork, or crashed. The message says which; a crashed template
    is restarted on the next ``exec``."""

class ChildExitedError(HotswapError):
    """An isolated call's process ended (``os._exit``, ``sys.exit``, a signal, a crash) without reporting a result.

    ``hotswap.template`` sets ``returncode`` on instances it raises: the exit code, or ``-N`` for signal N.
    """

    returncode: int | None

class IsolatedCallError(HotswapError):
    """An isolated call raised an exception that could not be re-created in the caller (its class is not
    importable there, or it does not unpickle). The message names the original type; ``child_traceback`` holds
    the child's formatted traceback."""

    child_traceback: str

def audit_gate(event: str, args: Tuple[Any, ...]) -> None:
    """The process's audit hook: hands only the ``open`` and ``exec`` events to the handler (native: runs no
    bytecode for any other event)."""

def set_audit_handler(handler: Callable[[str, Tuple[Any, ...]], None]) -> None:
    """Sets the handler ``audit_gate`` calls (once per process)."""

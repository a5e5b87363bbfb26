"""Files a module reads while its top-level code runs (a config, a JSON or TOML file, a template read at import).

Mechanism: an audit hook (``sys.addaudithook``) sees CPython's ``open`` event for every file opened. It acts only
inside a *window*: while a module imported after ``import hotswap`` runs its top-level code (opened by the ``exec``
event of that module's code, closed once the import system marks the module initialised), and while a reload runs
a module's statements. Inside a window, a file opened for reading on the window's thread is attributed to the
module's top-level statement that was running: the outermost frame of that module on the stack (past any
functions the statement called, in any library) gives the line. When the window closes the lines are resolved to
the statements' text, so the record follows the statement when lines above it change. Saving such a file re-runs
exactly those statements (``hotswap.reload(module, data_files=[path])``), plus what they rebind's readers.

Trade-off: an audit hook can never be removed, so outside windows it is one Python call per audit event that
returns after a comparison or two; files opened by code that the import system does not run as a module body
(modules imported before hotswap, ``__main__`` run by ``runpy``) are not seen.
"""

from __future__ import annotations

import functools
import hashlib
import os
import stat
import sys
import threading
import types
from typing import Dict, List, NamedTuple, Optional, Sequence, Set, Tuple

from . import _native

#: Module sources found by the import hook and not executed yet: code filename (the spec's origin) -> module name.
_expected: Dict[str, str] = {}

#: Open windows, by thread id, innermost last.
_windows: Dict[int, List["_Window"]] = {}

#: Records of closed import windows not yet resolved to statements (resolving needs the module's baseline).
_unresolved: List["_Window"] = []

#: Per module name: data file (real path) -> keys of the statements that read it. A key is (statement text,
#: member text or None): the member of a class body that read it, when a class statement did.
_readers: Dict[str, Dict[str, Set[Tuple[str, Optional[str]]]]] = {}

#: Digest of each data file's content when it was last read by a window or applied, to ignore saves that change
#: nothing (a ``touch``) and to apply one save once with several watchers.
_digests: Dict[str, bytes] = {}

#: Bumped whenever the set of recorded files changes (watchers rebuild their watch list on it).
generation = 0

_lock = threading.RLock()  # re-entrant: a file this module reads raises the audit event it handles
_IMPORTLIB = ("<frozen importlib._bootstrap", os.path.dirname(os.path.abspath(__import__("importlib").__file__)))
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


class _Window:
    __slots__ = ("module", "globals", "path", "spec", "records", "stats")

    def __init__(self, module: types.ModuleType, path: str, spec: object = None) -> None:
        self.module = module
        self.globals = module.__dict__
        self.path = path  # the module's source file, as its code objects name it
        self.spec = spec  # import windows: closed once ``spec._initializing`` is False
        # (lines of the module's frames on the stack, outermost first; real path of the file read)
        self.records: List[Tuple[Tuple[int, ...], str]] = []
        self.stats: Dict[str, Tuple[int, int, int]] = {}  # each file's (mtime, size, inode) when first opened


# --- the audit hook ---------------------------------------------------------------------------------------------


def _audit(event: str, args: tuple) -> None:
    # Called for every audit event of the process, forever: keep the common path to two comparisons. An exception
    # here would abort the operation audited (the program's own open()), so none may leave.
    try:
        if event == "open":
            if _windows:
                _on_open(args)
        elif event == "exec" and _expected:
            _on_exec(args)
    except Exception:  # noqa: BLE001 - recording is best effort; the program's open() must not fail for it
        pass


def _on_exec(args: tuple) -> None:
    code = args[0] if args else None
    if not isinstance(code, types.CodeType) or code.co_name != "<module>":
        return
    name = _expected.pop(code.co_filename, None)
    module = sys.modules.get(name) if name is not None else None
    if module is None or getattr(module, "__file__", None) != code.co_filename:
        return
    spec = getattr(module, "__spec__", None)
    if spec is None or not getattr(spec, "_initializing", False):
        return
    with _lock:
        _windows.setdefault(threading.get_ident(), []).append(_Window(module, code.co_filename, spec))


def _on_open(args: tuple) -> None:
    thread = threading.get_ident()
    windows = _windows.get(thread)
    if not windows:
        return
    _close_finished_imports(thread, windows)
    if not windows or len(args) < 3:
        return
    file, mode, flags = args[0], args[1], args[2]
    if isinstance(file, int) or file is None:
        return
    if isinstance(mode, str):
        if any(c in mode for c in "wax+"):
            return
    elif isinstance(flags, int) and flags & _WRITE_FLAGS:
        return
    by_globals = {id(w.globals): w for w in windows}
    try:
        frame: Optional[types.FrameType] = sys._getframe(2)  # the caller of open()
    except ValueError:
        return
    window = None
    lines: List[int] = []
    while frame is not None:
        code = frame.f_code
        if code.co_filename.startswith(_IMPORTLIB):
            break  # the import system's own reads (a nested import's source and cache), or the module above it
        found = by_globals.get(id(frame.f_globals))
        if found is not None and code.co_filename == found.path and (window is None or window is found):
            window = found  # the outermost frame of the module is its top-level statement; one inside, a member
            lines.append(frame.f_lineno)
        frame = frame.f_back  # on past a library the statement called, to the module's frames above it
    if window is None or not lines:
        return
    try:
        real = os.path.realpath(os.fsdecode(file))
    except (TypeError, ValueError):
        return
    if real == os.path.realpath(window.path) or real.endswith((".pyc", ".py")):
        return
    try:
        info = os.stat(real)
    except OSError:
        return
    if not stat.S_ISREG(info.st_mode):
        return
    window.records.append((tuple(reversed(lines)), real))
    window.stats.setdefault(real, _stat_key(info))


def _close_finished_imports(thread: int, windows: List[_Window]) -> None:
    """Closes the import windows of this thread whose module finished running (the import system then sets the
    spec's ``_initializing`` to False); their records wait in ``_unresolved``."""
    global generation
    with _lock:  # resolve() closes other threads' windows too
        while windows and windows[-1].spec is not None and not getattr(windows[-1].spec, "_initializing", False):
            done = windows.pop()
            if done.records:
                _unresolved.append(done)
                generation += 1
        if not windows and _windows.get(thread) is windows:
            del _windows[thread]


def expect(origin: str, name: str) -> None:
    """Called by the import hook for a user module about to be imported: its top-level code opens a window."""
    _expected[origin] = name


def install() -> None:
    """Installs the audit hook once per process."""
    global _installed
    if not _installed:
        _installed = True
        # The hook is native: it runs no bytecode for the events this module ignores (the native apply step's
        # writes raise one each), so no thread switch can fall between two writes of one function.
        _native.set_audit_handler(_audit)
        sys.addaudithook(_native.audit_gate)


_installed = False


# --- reload windows ---------------------------------------------------------------------------------------------


def start(module: types.ModuleType, path: str) -> _Window:
    """Opens a window for statements a reload of ``module`` runs (``path``: its source file)."""
    window = _Window(module, path)
    with _lock:
        _windows.setdefault(threading.get_ident(), []).append(window)
    return window


def stop(window: _Window) -> None:
    """Closes a reload window (its records are kept only by ``commit``)."""
    with _lock:
        windows = _windows.get(threading.get_ident(), [])
        if window in windows:
            windows.remove(window)
        if not windows:
            _windows.pop(threading.get_ident(), None)


def commit(window: _Window, stmts: Sequence[_native.Stmt], ran: Sequence[_native.Stmt]) -> None:
    """A reload succeeded: the statements that ran read what the window saw; statements gone lose their records."""
    global generation
    resolve()
    name = window.module.__name__
    with _lock:
        readers = _readers.get(name)
        if not readers and not window.records:
            return
        texts = {stmt.text for stmt in stmts}
        ran_texts = {stmt.text for stmt in ran}
        before = set(readers or ())
        kept: Dict[str, Set[Tuple[str, Optional[str]]]] = {}
        for file, keys in (readers or {}).items():
            left = {key for key in keys if key[0] in texts and key[0] not in ran_texts}
            if left:
                kept[file] = left
        for file, key in _keys(window.records, stmts):
            kept.setdefault(file, set()).add(key)
        _note_digests(window.stats)
        if kept:
            _readers[name] = kept
        else:
            _readers.pop(name, None)
        if set(kept) != before:
            generation += 1


# --- queries ----------------------------------------------------------------------------------------------------


def resolve() -> None:
    """Turns the lines recorded by finished imports into statements of the source each module was imported from."""
    from . import _source  # noqa: PLC0415 - _source imports this module

    global generation
    with _lock:
        for thread, windows in list(_windows.items()):
            _close_finished_imports(thread, windows)
        pending, _unresolved[:] = list(_unresolved), []
    for window in pending:
        module = window.module
        try:
            path = _source.module_path(module)
            running = _source.baseline(module, path)
        except (TypeError, ValueError):
            continue
        if running is None:
            continue
        with _lock:
            readers = _readers.setdefault(module.__name__, {})
            before = set(readers)
            for file, key in _keys(window.records, running.stmts):
                readers.setdefault(file, set()).add(key)
            _note_digests(window.stats)
            if set(readers) != before:
                generation += 1


def files(modules: Optional[Sequence[types.ModuleType]] = None) -> Dict[str, List[types.ModuleType]]:
    """The recorded data files (real paths) and the loaded modules that read them at import or reload, for
    ``modules`` (default: every module)."""
    resolve()
    names = None if modules is None else {m.__name__: m for m in modules}
    found: Dict[str, List[types.ModuleType]] = {}
    with _lock:
        for name, readers in _readers.items():
            module = sys.modules.get(name) if names is None else names.get(name)
            if module is None:
                continue
            for file in readers:
                found.setdefault(file, []).append(module)
    return found


def every_file() -> Set[str]:
    """Every data file (real path) recorded in this process, whatever became of the module that read it: a module
    whose import failed (often because of that very file: a broken config) counts too."""
    with _lock:
        found = {file for readers in _readers.values() for file in readers}
        found.update(file for window in _unresolved for _, file in window.records)
        found.update(file for windows in _windows.values() for window in windows for _, file in window.records)
    return found


def readers(module: types.ModuleType, data_files: Sequence[str]) -> Set[Tuple[str, Optional[str]]]:
    """Keys of the statements of ``module`` that read any of ``data_files`` (real paths)."""
    resolve()
    with _lock:
        recorded = _readers.get(module.__name__, {})
        return set().union(*(recorded.get(file, ()) for file in data_files))


def changed(path: str, content: bytes, *, note: bool = True) -> bool:
    """Whether ``content`` differs from what ``path`` held when last read or applied; with ``note``, notes it as
    seen (a save is then applied once, by whichever watcher sees it first)."""
    digest = hashlib.blake2b(content, digest_size=16).digest()
    with _lock:
        if _digests.get(path) == digest:
            return False
        if note:
            _digests[path] = digest
        return True


def mark(stmts: Sequence[_native.Stmt], keys: Set[Tuple[str, Optional[str]]], name: str) -> List[_native.Stmt]:
    """``stmts`` where the statements (and class members) named by ``keys`` also read the pseudo-name ``name``, so
    the planner re-runs them (or rebuilds the member) as readers of a rebound name."""
    members: Dict[str, Set[str]] = {}
    for text, member in keys:
        members.setdefault(text, set())
        if member is not None:
            members[text].add(member)
    marked = []
    for stmt in stmts:
        wanted = members.get(stmt.text)
        if wanted is None:
            marked.append(stmt)
        elif wanted and stmt.kind == "class":
            marked.append(_with_read(stmt, name, [_with_read(m, name) if m.text in wanted else m
                                                  for m in stmt.members]))
        else:
            marked.append(_with_read(stmt, name))
    return marked


def _with_read(stmt: _native.Stmt, name: str, members: Optional[List[_native.Stmt]] = None) -> _native.Stmt:
    return _native.Stmt(
        kind=stmt.kind, name=stmt.name, text=stmt.text, lineno=stmt.lineno, end_lineno=stmt.end_lineno,
        def_lineno=stmt.def_lineno, def_text=stmt.def_text, decorators=list(stmt.decorators),
        binds=list(stmt.binds), reads=[*stmt.reads, name], calls_reloading=stmt.calls_reloading,
        defaults=[(param, text, [*reads, name]) for param, text, reads in stmt.defaults],  # evaluated anew
        members=list(stmt.members) if members is None else members,
    )


class _Key(NamedTuple):
    file: str
    key: Tuple[str, Optional[str]]


def _keys(records: Sequence[Tuple[Tuple[int, ...], str]], stmts: Sequence[_native.Stmt]) -> List[_Key]:
    """(file, statement key) for each (lines, file) record: the top-level statement holding the outermost line,
    and for a class, the member of its body holding one of the lines."""
    found = []
    for lines, file in records:
        stmt = _holding(stmts, lines[0])
        if stmt is None:
            continue
        member = None
        if stmt.kind == "class":
            member = next((m for m in map(functools.partial(_holding, stmt.members), lines) if m is not None), None)
        found.append(_Key(file, (stmt.text, member.text if member is not None else None)))
    return found


def _holding(stmts: Sequence[_native.Stmt], line: int) -> Optional[_native.Stmt]:
    for stmt in stmts:
        if stmt.lineno <= line <= stmt.end_lineno:
            return stmt
    return None


def _note_digests(stats: Dict[str, Tuple[int, int, int]]) -> None:
    """Notes the digest of what the statements read, from the file as it is now if it has not changed since they
    opened it; else forgets it, so that the change is applied when it is seen."""
    for file, opened in stats.items():
        try:
            with open(file, "rb") as handle:
                info = os.fstat(handle.fileno())
                content = handle.read()
        except OSError:
            _digests.pop(file, None)
            continue
        if _stat_key(info) == opened:
            _digests[file] = hashlib.blake2b(content, digest_size=16).digest()
        else:
            _digests.pop(file, None)


def _stat_key(info: os.stat_result) -> Tuple[int, int, int]:
    return (info.st_mtime_ns, info.st_size, info.st_ino)


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.RLock()
    _windows.clear()  # the threads that held them are not in the child


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

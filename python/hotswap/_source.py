"""Module sources: the baseline each module runs, reading and decoding new source, and splitting it.

A module's baseline is the source it is running. It is recorded when the module is imported after hotswap
(an import hook reads the file the import system is about to load), or when hotswap first sees the module;
after each successful reload it becomes the reloaded source. For a module first seen at reload time, the
byte-compiled cache tells whether the file on disk is still the one that was imported; if it cannot tell,
the baseline is unknown and the reload re-runs the whole module (still patching definitions in place).

Splitting is native (rustpython-parser). Where that parser rejects source CPython accepts (3.12 f-strings,
for one), CPython's own ``ast`` splits it instead: a reload never fails for the parser's sake.
"""

from __future__ import annotations

import ast
import importlib.util
import marshal
import os
import re
import sys
import sysconfig
import threading
from types import ModuleType
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, cast

from . import _datafiles, _native


class Baseline(NamedTuple):
    text: str
    stmts: Tuple[_native.Stmt, ...]


# By module name and source path: a module of the same name loaded from another file has no baseline here.
_baselines: Dict[Tuple[str, str], Baseline] = {}
_imported_sources: Dict[str, bytes] = {}  # by resolved file path, filled by the import hook
_lock = threading.Lock()


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # the parent's may have been held by a thread that a forked child does not have


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def module_path(module: ModuleType) -> str:
    """The resolved source path of a module, or raises ValueError/TypeError as ``reload()`` documents."""
    if not isinstance(module, ModuleType):
        raise TypeError(f"expected a module or a module name, got {type(module).__name__}")
    spec = getattr(module, "__spec__", None)
    origin = getattr(spec, "origin", None) or getattr(module, "__file__", None)
    if getattr(spec, "origin", None) == "frozen":
        # Its code was compiled into the interpreter (os, codecs... from 3.11): whatever file it names is not what runs.
        raise ValueError(f"module {module.__name__!r} is frozen (compiled into the interpreter) and cannot be reloaded")
    if not origin or origin == "built-in":
        raise ValueError(f"module {module.__name__!r} is built in and has no source file to reload")
    if not origin.endswith(".py"):
        raise ValueError(f"module {module.__name__!r} is not Python source ({os.path.basename(origin)}); "
                         "extension modules cannot be reloaded in place")
    return os.path.realpath(origin)


def code_filename(module: ModuleType, path: str) -> str:
    """The file name the module's code objects carry (what its import compiled them with): its spec's origin as
    the import system wrote it, which may differ from the resolved ``path`` (a symlinked directory, a relative or
    unnormalised ``sys.path`` entry such as ``./`` on 3.9 and 3.10). Code a reload compiles takes the same name,
    so the module's old and new functions are recognised as its own."""
    spec = getattr(module, "__spec__", None)
    origin = getattr(spec, "origin", None) or getattr(module, "__file__", None)
    if isinstance(origin, str) and origin != path and os.path.realpath(origin) == path:
        return origin
    return path


def read(path: str) -> bytes:
    with open(path, "rb") as file:
        return file.read()


def decode(data: bytes) -> str:
    """Decodes source bytes as the import system does (BOM, coding cookie, UTF-8 default)."""
    return importlib.util.decode_source(data)


def split(text: str, path: str) -> Tuple[_native.Stmt, ...]:
    """Top-level statements of ``text``; raises SyntaxError (CPython's) for source CPython rejects."""
    _refuse_nul(text, path)
    try:
        return tuple(_native.split_statements(text, path))
    except SyntaxError:
        return _fallback_split(text, path)


def plan(text: str, path: str, previous: Optional[Baseline], *, whole_module: bool, rebound: Sequence[str] = (),
         statements: Optional[Sequence[_native.Stmt]] = None) -> Tuple[Tuple[_native.Stmt, ...], _native.Plan]:
    """Splits ``text`` and plans the reload to it from ``previous`` (the source the module runs, split; None:
    not known) in one native call: the new statements and the plan. Only the lines that differ from
    ``previous`` are parsed. ``statements``: ``text`` already split (and marked, see ``_datafiles.mark``): only
    planned. Raises SyntaxError (CPython's) for source CPython rejects."""
    _refuse_nul(text, path)
    old = (previous.text, previous.stmts) if previous is not None else None
    if statements is not None:
        return _native.plan(text, path, old, statements=list(statements), whole_module=whole_module,
                            rebound=list(rebound))
    try:
        return _native.plan(text, path, old, whole_module=whole_module, rebound=list(rebound))
    except SyntaxError:
        return _native.plan(text, path, old, statements=_fallback_split(text, path), whole_module=whole_module,
                            rebound=list(rebound))


def _refuse_nul(text: str, path: str) -> None:
    nul = text.find("\0")
    if nul >= 0:  # CPython refuses such source (a ValueError from compile() before 3.12): a failed reload
        line = text.count("\n", 0, nul) + 1
        start = text.rfind("\n", 0, nul) + 1
        raise SyntaxError("source code cannot contain null bytes", (path, line, nul - start + 1, None))


def _fallback_split(text: str, path: str) -> Tuple[_native.Stmt, ...]:
    """CPython's ``ast`` splits source the native parser rejects; raises CPython's SyntaxError."""
    tree = cast(ast.Module, compile(text, path, "exec", ast.PyCF_ONLY_AST, dont_inherit=True))
    lines = source_lines(text)
    return tuple(_describe(node, text, lines) for node in tree.body)


def baseline(module: ModuleType, path: str) -> Optional[Baseline]:
    """The source ``module`` runs, or None when it cannot be known (see the module docstring)."""
    with _lock:
        known = _baselines.get((module.__name__, path))
        if known is not None:
            return known
        data = _imported_sources.pop(path, None)
    if data is None:
        data = _unchanged_since_import(module, path)
        if data is None:
            return None
    try:
        text = decode(data)
        found = Baseline(text, split(text, path))
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return None
    with _lock:
        return _baselines.setdefault((module.__name__, path), found)


def recorded_baseline(module: ModuleType) -> Optional[Baseline]:
    """The baseline recorded for ``module`` so far, without reading any file (None if none is)."""
    try:
        key = (module.__name__, module_path(module))
    except (TypeError, ValueError):
        return None
    with _lock:
        return _baselines.get(key)


def set_baseline(module: ModuleType, text: str, stmts: Sequence[_native.Stmt], path: Optional[str] = None) -> None:
    """Records what ``module`` runs now; ``path``: its ``module_path``, when the caller has it already."""
    key = (module.__name__, module_path(module) if path is None else path)
    with _lock:
        _baselines[key] = Baseline(text, tuple(stmts))


def restore_baseline(module: ModuleType, previous: Optional[Baseline]) -> None:
    """Puts back what ``baseline`` returned before a reload that was then undone."""
    key = (module.__name__, module_path(module))
    with _lock:
        if previous is None:
            _baselines.pop(key, None)
        else:
            _baselines[key] = previous


def _unchanged_since_import(module: ModuleType, path: str) -> Optional[bytes]:
    """The file's bytes if its byte-code cache proves it is what the module was compiled from.

    The cache header alone (mtime and size) cannot tell a same-size edit saved within the same second, so the
    cached code object is compared with a compile of the file: equal code means the same statements.
    """
    cached = getattr(module, "__cached__", None)
    if not cached:
        return None
    try:
        data = read(path)
        with open(cached, "rb") as file:
            pyc = file.read()
    except OSError:
        return None
    # pyc layout (PEP 552): magic, flags, then either source mtime + size or a source hash, then the code.
    if len(pyc) < 16 or pyc[:4] != importlib.util.MAGIC_NUMBER:
        return None
    try:
        cached_code = marshal.loads(pyc[16:])
        disk_code = compile(data, path, "exec", dont_inherit=True)
    except (ValueError, EOFError, TypeError, SyntaxError):
        return None
    return data if cached_code == disk_code else None


def track(module: ModuleType, source: Optional[str] = None) -> None:
    """Records ``module``'s baseline now (from disk) if none is recorded yet.

    With ``source``, records that text instead, replacing any baseline: for a module that was just executed from
    source text that is not its file's (``hotswap.dask`` imports on a worker the source its client sent).
    """
    path = module_path(module)
    if source is not None:
        stmts = split(source, path)
        with _lock:
            _imported_sources.pop(path, None)
            _baselines[(module.__name__, path)] = Baseline(source, stmts)
        return
    with _lock:
        if (module.__name__, path) in _baselines:
            return
    if baseline(module, path) is None:
        try:
            text = decode(read(path))
            set_baseline(module, text, split(text, path))
        except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
            pass


def running_source(module: ModuleType) -> Optional[bytes]:
    """The source ``module`` is running (its baseline) as UTF-8 bytes, or None if unknown."""
    found = baseline(module, module_path(module))
    return None if found is None else found.text.encode("utf-8")


# --- the import hook ------------------------------------------------------------------------------------------

_LIBRARY_DIRS = tuple(
    os.path.realpath(p) + os.sep
    for p in {sysconfig.get_paths().get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    if p
)


class BaselineFinder:
    """A ``sys.meta_path`` entry that finds nothing itself: it notes the source of user modules being imported.

    It asks the finders after it for the spec (so pytest's assertion rewriter and editable installs work as
    before) and records the bytes of a ``.py`` origin outside the standard library and site-packages.
    """

    def find_spec(self, name: str, path: Optional[Sequence[str]] = None, target: Optional[ModuleType] = None):
        finders = sys.meta_path
        try:
            start = finders.index(self) + 1
        except ValueError:
            return None
        for finder in finders[start:]:
            find_spec = getattr(finder, "find_spec", None)
            if find_spec is None:
                continue
            spec = find_spec(name, path, target)
            if spec is None:
                continue
            origin = spec.origin
            if origin and origin.endswith(".py"):
                real = os.path.realpath(origin)
                if not real.startswith(_LIBRARY_DIRS):
                    try:
                        data = read(real)
                    except OSError:
                        pass
                    else:
                        with _lock:
                            _imported_sources[real] = data
                        _datafiles.expect(origin, name)  # files its top-level code reads are recorded
            return spec
        return None

    def invalidate_caches(self) -> None:
        pass


def install_import_hook() -> None:
    _datafiles.install()
    if not any(isinstance(finder, BaselineFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, BaselineFinder())


# --- CPython-ast fallback splitter (mirrors src/stmts.rs) ------------------------------------------------------

def _segment(text: str, lines: List[str], node: ast.AST, start_line: int, start_col: int) -> str:
    # ast column offsets count UTF-8 bytes.
    end_line, end_col = node.end_lineno, node.end_col_offset  # type: ignore[attr-defined]
    if start_line == end_line:
        return lines[start_line - 1].encode()[start_col:end_col].decode("utf-8")
    parts = [lines[start_line - 1].encode()[start_col:].decode("utf-8")]
    parts.extend(lines[start_line:end_line - 1])
    parts.append(lines[end_line - 1].encode()[:end_col].decode("utf-8"))
    return "".join(parts)


class _Scan(ast.NodeVisitor):
    """What a statement binds and reads while it runs (function bodies don't run; class bodies do)."""

    def __init__(self) -> None:
        self.binds: set = set()
        self.reads: set = set()
        self.calls_reloading = False

    def visit_Name(self, node: ast.Name) -> None:
        (self.reads if isinstance(node.ctx, ast.Load) else self.binds).add(node.id)
        if isinstance(node.ctx, ast.Del):  # `del X` needs the binding it removes
            self.reads.add(node.id)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        if isinstance(node.target, ast.Name):  # `X += 1` reads the `X` it rebinds
            self.reads.add(node.target.id)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if (isinstance(func, ast.Name) and func.id == "currently_reloading") or (
                isinstance(func, ast.Attribute) and func.attr == "currently_reloading"):
            self.calls_reloading = True
        self.generic_visit(node)

    def signature(self, args: ast.arguments, returns: Optional[ast.expr]) -> None:
        for default in list(args.defaults) + [d for d in args.kw_defaults if d is not None]:
            self.visit(default)
        for arg in args.posonlyargs + args.args + args.kwonlyargs + [a for a in (args.vararg, args.kwarg) if a]:
            if arg.annotation is not None:
                self.visit(arg.annotation)
        if returns is not None:
            self.visit(returns)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self.signature(node.args, None)

    def _comprehension(self, node) -> None:
        for gen in node.generators:
            self.visit(gen.iter)
            for cond in gen.ifs:
                self.visit(cond)
        for elt in ("elt", "key", "value"):
            if hasattr(node, elt):
                self.visit(getattr(node, elt))

    visit_ListComp = visit_SetComp = visit_GeneratorExp = visit_DictComp = _comprehension

    def visit_alias(self, node: ast.alias) -> None:
        self.binds.add(node.asname or node.name.split(".")[0])

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            self.binds.add(node.name)
        self.generic_visit(node)

    def _def(self, node) -> None:
        self.binds.add(node.name)
        for deco in node.decorator_list:
            self.visit(deco)
        self.signature(node.args, node.returns)

    visit_FunctionDef = visit_AsyncFunctionDef = _def

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.binds.add(node.name)
        for expr in node.decorator_list + node.bases + [k.value for k in node.keywords]:
            self.visit(expr)
        body = _Scan()
        for stmt in node.body:
            body.visit(stmt)
        self.reads |= body.reads
        self.calls_reloading |= body.calls_reloading

    def generic_visit(self, node: ast.AST) -> None:
        # Match-statement captures bind names (MatchAs, MatchStar, MatchMapping.rest).
        name = getattr(node, "name", None) if type(node).__name__ in ("MatchAs", "MatchStar") else None
        rest = getattr(node, "rest", None) if type(node).__name__ == "MatchMapping" else None
        for bound in (name, rest):
            if isinstance(bound, str):
                self.binds.add(bound)
        super().generic_visit(node)


def source_lines(text: str) -> List[str]:
    """``text`` split into lines as the tokenizer counts them (at \\n, \\r\\n and \\r only), ends kept.

    ``str.splitlines`` also splits at form feeds and other separators, which would shift every line number after
    them (several standard library modules have form feeds between sections)."""
    return re.findall(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$", text)


def _describe(node: ast.stmt, text: str, lines: Optional[List[str]] = None) -> _native.Stmt:
    lines = lines if lines is not None else source_lines(text)
    decorators = list(getattr(node, "decorator_list", ()))
    start_line = decorators[0].lineno if decorators else node.lineno
    start_col = lines[start_line - 1].index("@") if decorators else node.col_offset
    full = _segment(text, lines, node, start_line, start_col)
    scan = _Scan()
    kind, name, members, defaults = "other", None, [], []
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        kind, name = "def", node.name
        scan._def(node)
        args = node.args
        positional = args.posonlyargs + args.args
        for arg, default in zip(positional[len(positional) - len(args.defaults):], args.defaults):
            defaults.append((arg.arg, _expr_text(text, lines, default), sorted(_reads(default))))
        for arg, default in zip(args.kwonlyargs, args.kw_defaults):
            if default is not None:
                defaults.append((arg.arg, _expr_text(text, lines, default), sorted(_reads(default))))
    elif isinstance(node, ast.ClassDef):
        kind, name = "class", node.name
        scan.visit_ClassDef(node)
        members = [_describe(member, text, lines) for member in node.body]
    else:
        scan.visit(node)
    # As the native splitter: from the keyword line's start when there are decorators, else from the statement.
    def_text = _segment(text, lines, node, node.lineno, 0 if decorators else node.col_offset)
    return _native.Stmt(
        kind=kind, name=name, text=full, lineno=start_line, end_lineno=node.end_lineno or node.lineno,
        def_lineno=node.lineno, def_text=def_text,
        decorators=[_expr_text(text, lines, d) for d in decorators],
        binds=sorted(scan.binds), reads=sorted(scan.reads), calls_reloading=scan.calls_reloading,
        defaults=defaults, members=members,
    )


def _expr_text(text: str, lines: List[str], node: ast.AST) -> str:
    # `ast.get_source_segment` splits the whole source on every call; the lines are split once per module.
    return _segment(text, lines, node, node.lineno, node.col_offset)


def _reads(node: ast.AST) -> set:
    scan = _Scan()
    scan.visit(node)
    return scan.reads

"""``scan_imports(path)``: which modules a project imports, and which of them are third-party.

Mechanism: the native scanner (``hotswap._native.scan_import_sites``, rustpython-parser, parallel, cached by file
content hash) lists every import statement of every ``.py`` file, nested ones included, with relative imports
resolved and ``if TYPE_CHECKING:`` blocks marked. A file it rejects (3.12+ syntax such as nested same-quote
f-strings) is parsed again here with CPython's ``ast``; a file neither parser accepts is reported in
``ImportScan.skipped`` and never stops the scan. Classification is policy and lives here: an import is
first-party when ``importlib.util.find_spec`` of its top-level name finds it inside the scanned tree (by origin,
not by name), standard library when the interpreter lists it as such, third-party when found anywhere else, and
missing when not found at all. Trade-off: only top-level names are looked up, so nothing is imported to classify
(looking up ``a.b`` would import ``a``); dynamic imports (``importlib.import_module(x)``) are not seen.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.machinery
import importlib.util
import os
import sys
import sysconfig
from collections.abc import Iterable, Sequence

from . import _native

__all__ = ["ImportRecord", "ImportScan", "resolve_target", "scan_imports"]

#: Values of ``ImportRecord.kind``.
KINDS = ("stdlib", "first_party", "third_party", "missing")


@dataclasses.dataclass(frozen=True)
class ImportRecord:
    """One imported name at one place.

    Attributes:
        module: the absolute dotted module (``a.b`` for ``import a.b`` and ``from a.b import c``).
        name: ``c`` for ``from a.b import c`` (``*`` for a star import), None for ``import a.b``.
        lineno: 1-based line of the statement.
        kind: "stdlib", "first_party", "third_party" or "missing" (not importable here).
        type_checking_only: the import runs only under ``if TYPE_CHECKING:``; it is never preloaded.
        file: the file it is in.
        level: leading dots of a relative import (0 when absolute).
    """

    module: str
    name: str | None
    lineno: int
    kind: str
    type_checking_only: bool
    file: str
    level: int = 0


@dataclasses.dataclass(frozen=True)
class ImportScan:
    """The imports of a project.

    Attributes:
        roots: the scanned directories or files (absolute); imports found inside them are first-party.
        imports: every import site, sorted by file and line.
        skipped: ``(file, reason)`` for each file that could not be read or parsed by either parser.
    """

    roots: tuple[str, ...]
    imports: tuple[ImportRecord, ...]
    skipped: tuple[tuple[str, str], ...] = ()

    def modules(self, kind: str, *, include_type_checking: bool = False) -> frozenset[str]:
        """The distinct modules of one kind, e.g. ``scan.modules("third_party")``."""
        return frozenset(
            record.module
            for record in self.imports
            if record.kind == kind and (include_type_checking or not record.type_checking_only)
        )

    @property
    def third_party(self) -> tuple[str, ...]:
        """The third-party modules a template preloads, sorted: imports outside ``if TYPE_CHECKING:`` only."""
        return tuple(sorted(self.modules("third_party")))


def _stdlib_names() -> frozenset[str]:
    names = set(sys.builtin_module_names)
    names.update(getattr(sys, "stdlib_module_names", ()))  # 3.10+
    names.add("__future__")
    return frozenset(names)


_STDLIB = _stdlib_names()
_STDLIB_DIRS = tuple(
    os.path.realpath(p) for p in {sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"]} if p
)


def _within(path: str, roots: Sequence[str]) -> bool:
    path = os.path.realpath(path)
    for root in roots:
        if path == root or path.startswith(root.rstrip(os.sep) + os.sep):
            return True
    return False


def _spec_locations(spec: importlib.machinery.ModuleSpec) -> list[str]:
    locations = list(spec.submodule_search_locations or ())
    if spec.origin and spec.origin not in ("built-in", "frozen", "namespace"):
        locations.append(spec.origin)
    return locations


def _find_top(top: str) -> importlib.machinery.ModuleSpec | None:
    try:
        return importlib.util.find_spec(top)
    except (ImportError, ValueError):  # ValueError: a module in sys.modules whose __spec__ is None
        return None


def classify(module: str, roots: Sequence[str], _cache: dict[str, str] | None = None) -> str:
    """Classifies a dotted module name as "stdlib", "first_party", "third_party" or "missing".

    Only the top-level name is looked up, with ``importlib.util.find_spec``, which imports nothing.

    Example:
        >>> classify("json", roots=["/nonexistent"])
        'stdlib'
    """
    if module.startswith("."):
        return "first_party"  # a relative import we could not anchor: it is inside the project anyway
    top = module.partition(".")[0]
    if _cache is not None and top in _cache:
        return _cache[top]
    spec = _find_top(top)
    real_roots = [os.path.realpath(r) for r in roots]
    if spec is not None and any(_within(loc, real_roots) for loc in _spec_locations(spec)):
        kind = "first_party"
    elif top in _STDLIB:
        kind = "stdlib"
    elif spec is None:
        kind = "missing"
    elif spec.origin in ("built-in", "frozen") or any(
        _within(loc, _STDLIB_DIRS) and "site-packages" not in loc and "dist-packages" not in loc
        for loc in _spec_locations(spec)
    ):
        kind = "stdlib"  # 3.9 has no sys.stdlib_module_names
    else:
        kind = "third_party"
    if _cache is not None:
        _cache[top] = kind
    return kind


def resolve_target(target: str | os.PathLike[str]) -> str:
    """The file or directory to scan for ``target``: an existing path, or an importable module or package name.

    A dotted name is resolved part by part on the file system (``PathFinder``), so no package is imported.

    Example:
        >>> import os
        >>> os.path.basename(resolve_target("json"))
        'json'
    """
    path = os.fspath(target)
    if os.path.exists(path):
        return os.path.abspath(path)
    parts = path.split(".")
    spec = _find_top(parts[0])
    for part in parts[1:]:
        if spec is None or not spec.submodule_search_locations:
            spec = None
            break
        spec = importlib.machinery.PathFinder.find_spec(
            f"{spec.name}.{part}", list(spec.submodule_search_locations)
        )
    if spec is None:
        raise FileNotFoundError(f"{path!r} is neither a file, a directory nor an importable module")
    if spec.submodule_search_locations:
        return os.path.abspath(next(iter(spec.submodule_search_locations)))
    if spec.origin and os.path.exists(spec.origin):
        return os.path.abspath(spec.origin)
    raise FileNotFoundError(f"module {path!r} has no source on disk (origin {spec.origin!r})")


def _package_of(file: str) -> list[str]:
    parts: list[str] = []
    directory = os.path.dirname(os.path.abspath(file))
    while os.path.isfile(os.path.join(directory, "__init__.py")):
        parts.append(os.path.basename(directory))
        parent = os.path.dirname(directory)
        if parent == directory:
            break
        directory = parent
    parts.reverse()
    return parts


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _cpython_sites(file: str) -> list[tuple[str, str | None, int, int, bool]]:
    """The CPython-``ast`` twin of the native walk (``src/imports.rs`` ``walk``): keep the two in step."""
    with open(file, "rb") as f:
        tree = ast.parse(f.read(), filename=file)
    package = _package_of(file)
    out: list[tuple[str, str | None, int, int, bool]] = []

    def resolve(level: int, module: str | None) -> str:
        if level == 0:
            return module or ""
        keep = len(package) - (level - 1)
        if keep <= 0:
            return "." * level + (module or "")
        return ".".join(package[:keep] + ([module] if module else []))

    def walk(body: Iterable[ast.stmt], tc: bool) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                out.extend((alias.name, None, node.lineno, 0, tc) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                module = resolve(node.level or 0, node.module)
                out.extend((module, alias.name, node.lineno, node.level or 0, tc) for alias in node.names)
            elif isinstance(node, ast.If):
                negated = isinstance(node.test, ast.UnaryOp) and isinstance(node.test.op, ast.Not)
                if _is_type_checking(node.test):
                    walk(node.body, True)
                    walk(node.orelse, tc)
                elif negated and _is_type_checking(node.test.operand):  # type: ignore[attr-defined]
                    walk(node.body, tc)
                    walk(node.orelse, True)
                else:
                    walk(node.body, tc)
                    walk(node.orelse, tc)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.With, ast.AsyncWith)):
                walk(node.body, tc)
            elif isinstance(node, (ast.For, ast.AsyncFor, ast.While)):
                walk(node.body, tc)
                walk(node.orelse, tc)
            elif isinstance(node, ast.Try) or type(node).__name__ == "TryStar":
                walk(node.body, tc)  # type: ignore[attr-defined]
                for handler in node.handlers:  # type: ignore[attr-defined]
                    walk(handler.body, tc)
                walk(node.orelse, tc)  # type: ignore[attr-defined]
                walk(node.finalbody, tc)  # type: ignore[attr-defined]
            elif type(node).__name__ == "Match":
                for case in node.cases:  # type: ignore[attr-defined]
                    walk(case.body, tc)

    walk(tree.body, False)
    return out


def scan_imports(
    path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    first_party: Sequence[str | os.PathLike[str]] = (),
) -> ImportScan:
    """Lists and classifies every import of a package, directory or file (or of several).

    Args:
        path: a directory, a ``.py`` file, an importable module or package name, or a list of them.
        first_party: more directories whose modules count as first-party (the scanned paths always do).

    Returns:
        An ``ImportScan``; files that neither parser accepts are listed in ``skipped``, never raised.

    Example:
        >>> import hotswap, os, tempfile
        >>> d = tempfile.mkdtemp()
        >>> with open(os.path.join(d, "m.py"), "w") as f:
        ...     _ = f.write("import json\\nif False:\\n    import not_installed_anywhere\\n")
        >>> [(r.module, r.lineno, r.kind) for r in hotswap.scan_imports(d).imports]
        [('json', 1, 'stdlib'), ('not_installed_anywhere', 3, 'missing')]
    """
    targets = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    roots = tuple(resolve_target(t) for t in targets)
    sites, failed = _native.scan_import_sites(list(roots))
    raw: list[tuple[str, str | None, int, int, bool, str]] = [
        (s.module, s.name, s.lineno, s.level, s.type_checking_only, s.file) for s in sites
    ]
    skipped: list[tuple[str, str]] = []
    for file, reason in failed:
        if reason.startswith("cannot read"):
            skipped.append((file, reason))
            continue
        try:
            found = _cpython_sites(file)
        except (SyntaxError, ValueError, UnicodeDecodeError, OSError) as err:
            skipped.append((file, f"rustpython-parser: {reason}; CPython ast: {err}"))
            continue
        raw.extend((m, n, line, level, tc, file) for m, n, line, level, tc in found)
    first_party_roots = list(roots) + [os.path.abspath(os.fspath(p)) for p in first_party]
    cache: dict[str, str] = {}
    records = [
        ImportRecord(
            module=m, name=n, lineno=line, kind=classify(m, first_party_roots, cache), type_checking_only=tc,
            file=file, level=level,
        )
        for m, n, line, level, tc, file in raw
    ]
    records.sort(key=lambda r: (r.file, r.lineno))
    return ImportScan(roots=roots, imports=tuple(records), skipped=tuple(sorted(skipped)))

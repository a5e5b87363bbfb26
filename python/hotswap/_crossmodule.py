"""Rule 2 across modules: a reload that rebinds ``m.X`` re-binds every ``from m import X`` that still holds the old
object, and re-runs the statements of that module that read it.

Mechanism: the reload of ``m`` notes which of ``m``'s top-level names now hold a different object than before.
Every other loaded module of the program (not the standard library or site-packages) that holds one of those old
objects, under a name that one of its top-level statements binds with ``from m import X [as Y]``, took it from
``m`` and has not rebound it since (identity with ``m``'s old object proves the second part, the statement the
first). That module's names are set to the new objects and the statements reading them run again, through the
same planner and transaction as any reload (the names are given to the plan as rebound from outside); the same
then follows from that module to the modules importing from it. Each dependent module is its own transaction:
if its statements fail, its names are put back and the failure is reported, while ``m`` keeps its new code.
Trade-off: a module that reached the object another way (``import m`` then ``Y = m.X``) is left alone, as its
statements never name ``m``'s binding; and identity is only checked at reload time, which is what a fresh import
of the new source would bind.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import sys
import types
from typing import Any, Dict, FrozenSet, Iterable, List, Optional, Set, Tuple

from . import _source

_MISSING: Any = object()


class _Removed:
    def __repr__(self) -> str:
        return "<removed>"


#: In a rebinding, the name is deleted (``from m import *`` no longer gives it).
REMOVED: Any = _Removed()

# A rebinding: (dependent module, {name in that module: new object}).
Rebinding = Tuple[types.ModuleType, Dict[str, Any]]


def names(module: types.ModuleType) -> Dict[str, Any]:
    """The module's top-level bindings now (taken before a reload, to compare with after it)."""
    return dict(module.__dict__)


def moved(before: Dict[str, Any], after: Dict[str, Any]) -> Dict[str, Tuple[Any, Any]]:
    """Names bound both before and after to different objects: ``{name: (old, new)}``."""
    out = {}
    for name, old in before.items():
        new = after.get(name, _MISSING)
        if new is not _MISSING and new is not old and not (name.startswith("__") and name.endswith("__")):
            out[name] = (old, new)
    return out


def dependents(module: types.ModuleType, before: Dict[str, Any]) -> List[Rebinding]:
    """Loaded modules holding one of ``module``'s replaced objects under a name they import from it, and
    modules doing ``from module import *`` when what it exports changed (REMOVED marks a name to delete)."""
    after = vars(module)
    changes = moved(before, after)
    exports_before, exports_after = _exports(before), _exports(after)
    stars_changed = exports_before != exports_after or bool(changes.keys() & exports_after)
    if not changes and not stars_changed:
        return []
    by_id = {id(old): name for name, (old, _) in changes.items()}
    found: List[Rebinding] = []
    for other in list(sys.modules.values()):
        if other is module or not isinstance(other, types.ModuleType) or not _is_program_module(other):
            continue
        namespace = vars(other)
        try:
            held = [(key, by_id[id(value)]) for key, value in list(namespace.items()) if id(value) in by_id]
        except TypeError:  # a module whose __dict__ is not a dict
            continue
        held = [(key, name) for key, name in held if namespace.get(key) is changes[name][0]]
        star = stars_changed and _may_star_import(other)
        if not held and not star:
            continue
        imports = _from_imports(other)
        rebind = {
            key: changes[name][1] for key, name in held if (module.__name__, name) in imports.get(key, ())
        }
        if star and (module.__name__, "*") in imports.get("*", ()):
            # As `from module import *` would bind now: new exports, replaced ones still held, removed ones gone.
            for name in exports_after:
                held_value = namespace.get(name, _MISSING)
                if held_value is _MISSING or (name in changes and held_value is changes[name][0]):
                    rebind[name] = after[name]
            for name in exports_before - exports_after:
                if name in namespace and namespace[name] is before[name]:
                    rebind[name] = REMOVED
        if rebind:
            found.append((other, rebind))
    return found


def _exports(namespace: Dict[str, Any]) -> FrozenSet[str]:
    """The names ``from m import *`` binds from a module namespace."""
    names = namespace.get("__all__")
    if isinstance(names, (list, tuple)) and all(isinstance(n, str) for n in names):
        return frozenset(n for n in names if n in namespace)
    return frozenset(n for n in namespace if not n.startswith("_"))


def _may_star_import(module: types.ModuleType) -> bool:
    """Whether the source ``module`` runs, as recorded so far (no file is read), has ``import *`` at all."""
    found = _source.recorded_baseline(module)
    if found is not None:
        return "import *" in found.text
    path = getattr(module, "__file__", None)
    data = _source._imported_sources.get(os.path.realpath(path)) if isinstance(path, str) else None
    return data is not None and b"import *" in data


_library_cache: Dict[str, bool] = {}


def _is_program_module(module: types.ModuleType) -> bool:
    """A module of the user's program: Python source outside the standard library and site-packages, and not
    hotswap's own (which imports nothing from the program; installed editable, its files are outside
    site-packages, and each reload that rebinds a name would look at every one of its modules)."""
    path = getattr(module, "__file__", None)
    if not isinstance(path, str) or not path.endswith(".py") or module.__name__.partition(".")[0] == "hotswap":
        return False
    known = _library_cache.get(path)
    if known is None:
        known = _library_cache[path] = os.path.realpath(path).startswith(_source._LIBRARY_DIRS)
    return not known


def _from_imports(module: types.ModuleType) -> Dict[str, Set[Tuple[str, str]]]:
    """For each name the module's top-level statements bind with ``from a import b [as name]``: the (a, b) pairs
    (absolute module names), from the source the module runs; ``from a import *`` gives ``"*": {(a, "*")}``.
    Empty when that source is unknown."""
    try:
        path = _source.module_path(module)
    except (TypeError, ValueError):
        return {}
    running = _source.baseline(module, path)
    if running is None:
        return {}
    spec = getattr(module, "__spec__", None)
    package = spec.parent if spec is not None else module.__package__
    out: Dict[str, Set[Tuple[str, str]]] = {}
    for stmt in running.stmts:
        if stmt.kind != "other" or "import" not in stmt.text:
            continue
        try:
            tree = ast.parse(stmt.text)
        except SyntaxError:
            continue
        for node in _top_level_nodes(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            source = _absolute(node.module, node.level, package)
            if source is None:
                continue
            for alias in node.names:
                out.setdefault(alias.asname or alias.name, set()).add((source, alias.name))
    return out


def _top_level_nodes(tree: ast.AST) -> Iterable[ast.AST]:
    """Nodes that run with the module (inside ``if``/``try``/``with`` blocks too), not in functions or classes."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
                stack.append(child)


def _absolute(name: Optional[str], level: int, package: Optional[str]) -> Optional[str]:
    if level == 0:
        return name
    try:
        return importlib.util.resolve_name("." * level + (name or ""), package)
    except (ImportError, ValueError):
        return None

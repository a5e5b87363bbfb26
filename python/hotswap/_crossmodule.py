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
from typing import Any, Dict, Iterable, List, Optional, Tuple

from . import _source

_MISSING: Any = object()

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


def dependents(module: types.ModuleType, changes: Dict[str, Tuple[Any, Any]]) -> List[Rebinding]:
    """Loaded modules holding one of ``module``'s replaced objects under a name they import from it."""
    if not changes:
        return []
    by_id = {id(old): name for name, (old, _) in changes.items()}
    found: List[Rebinding] = []
    for other in list(sys.modules.values()):
        if other is module or not isinstance(other, types.ModuleType) or not _is_program_module(other):
            continue
        try:
            held = [(key, by_id[id(value)]) for key, value in list(vars(other).items()) if id(value) in by_id]
        except TypeError:  # a module whose __dict__ is not a dict
            continue
        held = [(key, name) for key, name in held if vars(other).get(key) is changes[name][0]]
        if not held:
            continue
        imports = _from_imports(other)
        rebind = {
            key: changes[name][1] for key, name in held if (module.__name__, name) in imports.get(key, ())
        }
        if rebind:
            found.append((other, rebind))
    return found


_library_cache: Dict[str, bool] = {}


def _is_program_module(module: types.ModuleType) -> bool:
    """A module of the user's program: Python source outside the standard library and site-packages."""
    path = getattr(module, "__file__", None)
    if not isinstance(path, str) or not path.endswith(".py"):
        return False
    known = _library_cache.get(path)
    if known is None:
        known = _library_cache[path] = os.path.realpath(path).startswith(_source._LIBRARY_DIRS)
    return not known


def _from_imports(module: types.ModuleType) -> Dict[str, Iterable[Tuple[str, str]]]:
    """For each name the module's top-level statements bind with ``from a import b [as name]``: the (a, b) pairs
    (absolute module names), from the source the module runs. Empty when that source is unknown."""
    try:
        path = _source.module_path(module)
    except (TypeError, ValueError):
        return {}
    running = _source.baseline(module, path)
    if running is None:
        return {}
    package = module.__spec__.parent if getattr(module, "__spec__", None) is not None else module.__package__
    out: Dict[str, set] = {}
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
                if alias.name != "*":
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

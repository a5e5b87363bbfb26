"""attrs: field changes of a class that is patched in place are applied to the live class.

Mechanism: attrs collects a class's fields and writes ``__init__``, ``__repr__``, ``__eq__``... when its class
decorator runs; hotswap never creates a class twice and runs an unchanged class decorator no more, so after the
engine set a changed body's members on a live attrs class (its ``after_class_change`` hook), the adapter runs
the class's attrs decorators again on that live class: it reads the decorator expressions of the class
statement from the source that now runs (``hotswap.running_source``), evaluates those that come from attrs in the
module's namespace, and applies them. For a class without ``__slots__`` attrs patches the class in place, so
identity and instances are kept. A slotted class cannot change its layout in place: the engine reports it in
``needs_restart`` and this adapter leaves it alone.

Trade-off: the decorator is evaluated again (its arguments too), which is what a re-import would do.
"""

from __future__ import annotations

import ast
import logging
import sys
import types
from typing import Any, List, Optional

logger = logging.getLogger("hotswap")


def activate(attr: types.ModuleType) -> None:
    from .. import _hooks

    _hooks.after_class_change(_class_changed)


def _class_node(tree: ast.Module, qualname: str) -> Optional[ast.ClassDef]:
    """The ``class`` statement of ``qualname`` (nested classes too) in a module's syntax tree."""
    body: List[ast.stmt] = tree.body
    node: Optional[ast.ClassDef] = None
    for part in qualname.split("."):
        node = next((n for n in body if isinstance(n, ast.ClassDef) and n.name == part), None)
        if node is None:
            return None
        body = node.body
    return node


def _attrs_decorators(cls: type) -> List[Any]:
    """The class's decorators that come from attrs, evaluated in its module, from the source that now runs."""
    from ..reload import running_source

    module = sys.modules.get(cls.__module__)
    source = running_source(module) if module is not None else None
    node = _class_node(ast.parse(source), cls.__qualname__) if source is not None else None
    if node is None:
        return []
    found = []
    for expr in node.decorator_list:
        value = eval(compile(ast.Expression(expr), module.__file__ or "<decorator>", "eval"), module.__dict__)
        if (getattr(value, "__module__", None) or "").split(".")[0] in ("attr", "attrs"):
            found.append(value)
    return found


def _class_changed(change: Any) -> None:
    cls = change.cls
    if "__attrs_attrs__" not in getattr(cls, "__dict__", {}) or "__slots__" in cls.__dict__:
        return
    for decorator in reversed(_attrs_decorators(cls)):
        result = decorator(cls)
        if result is not cls:
            logger.warning("hotswap: %s: attrs made a new class; a restart applies the change", cls.__qualname__)
            return

"""attrs: a changed attrs class gets the methods attrs generates from its new body, on the live class.

Mechanism: attrs collects a class's fields and writes ``__init__``, ``__repr__``, ``__eq__``... when its class
decorator runs. hotswap never creates a class twice, and applies again, inside the reload's transaction, the
class decorators it knows to only derive members from the body (``hotswap._machinery.register_deriving``).
This adapter declares attrs' decorators (``attr.s``, ``attrs.define``, ``frozen``, ``mutable``...) to be such
decorators, with what removes the previous output from the live class first: the methods attrs generated (code
that is not in the class's file, named after the class), ``__attrs_attrs__`` and the other markers attrs reads,
so that attrs (which leaves a method the class defines itself alone) writes them anew. For a class without
``__slots__`` attrs patches the class in place, so identity and instances are kept. A slotted attrs class is
a new class each time attrs runs: the engine reports it in ``needs_restart``.

Trade-off: the decorator expression is evaluated again (its arguments too), as a re-import would.
"""

from __future__ import annotations

import types
from typing import Any, Mapping

# What attrs writes on a class besides its generated methods.
_MARKERS = ("__attrs_attrs__", "__attrs_own_setattr__", "__match_args__", "__attrs_props__")


def activate(attr: types.ModuleType) -> None:
    from .._machinery import register_deriving

    register_deriving(_is_attrs_decorator, _strip)


def _is_attrs_decorator(decorator: Any) -> bool:
    return (getattr(decorator, "__module__", None) or "").split(".")[0] in ("attr", "attrs")


def _generated(cls: type, key: str, value: Any, path: str) -> bool:
    """A method attrs generated for ``cls``: code from another file than the class's, named after the class or
    defined by attrs itself (``_frozen_setattrs``)."""
    func = getattr(value, "__func__", value)
    code = getattr(func, "__code__", None)
    if not isinstance(func, types.FunctionType) or code is None or code.co_filename == path:
        return False
    return func.__qualname__ == f"{cls.__qualname__}.{key}" or _is_attrs_decorator(func)


def _strip(cls: type, path: str, body: Mapping[str, Any]) -> None:
    from .._machinery import del_attr

    if "__attrs_attrs__" not in cls.__dict__:
        return
    for key, value in list(cls.__dict__.items()):
        if key in body:
            continue
        if key in _MARKERS or _generated(cls, key, value, path) or \
                (key == "__hash__" and "__eq__" not in body):
            del_attr(cls, key)

"""SQLAlchemy (2.x declarative and 1.4-style): methods, properties and hybrids follow edits; a schema change asks
for a restart instead of being half-applied.

Mechanism: hotswap never creates a mapped class twice (the declarative machinery would map it again and fail on
the already defined table), so edits to methods, properties and hybrid attributes are patched into the live
mapped class by the engine. Before a mapped class changes (the engine's ``before_class_change`` hook), the
adapter looks at the members the edit sets or removes: a column, relationship or other mapper property
(``mapped_column``, ``Column``, ``relationship``...), a changed ``Mapped[...]`` annotation of a mapped attribute,
or ``__tablename__``, ``__table__``, ``__table_args__``, ``__mapper_args__``, is a schema change. The adapter then
raises ``NeedsRestart``: the class keeps every old member (nothing is half-applied), the rest of the reload goes
on, and ``report.needs_restart`` names the class and the attributes (``hotswap run`` restarts the program).

Trade-off: any change of a mapping construct counts as a schema change, even one that would be harmless
(a column's ``doc``): a restart is always correct, a partial remapping is not.
"""

from __future__ import annotations

import sys
import types
from typing import Any, List

_SCHEMA_ATTRS = frozenset({"__tablename__", "__table__", "__table_args__", "__mapper_args__"})


def activate(sqlalchemy: types.ModuleType) -> None:
    from .. import _hooks

    _hooks.before_class_change(_before_change)


def _mapper(cls: type) -> Any:
    sa = sys.modules.get("sqlalchemy")
    if sa is None:
        return None
    try:
        mapper = sa.inspect(cls, raiseerr=False)
    except Exception:  # noqa: BLE001 - not something SQLAlchemy knows
        return None
    orm = sys.modules.get("sqlalchemy.orm")
    return mapper if orm is not None and isinstance(mapper, orm.Mapper) else None


def _is_mapping_construct(value: Any) -> bool:
    sa = sys.modules["sqlalchemy"]
    if isinstance(value, (sa.Column, sa.Table)):
        return True
    module = type(value).__module__ or ""
    return module.startswith("sqlalchemy.orm") and not isinstance(value, (types.FunctionType, property))


def schema_changes(change: Any, mapper: Any) -> List[str]:
    """Names of the mapping attributes ``change`` would alter (empty when the change is safe in place)."""
    mapped = set(mapper.attrs.keys())
    found = []
    for name in sorted(set(change.new) | set(change.removed)):
        if name == "__annotations__":
            old, new = change.old.get(name) or {}, change.new.get(name) or {}
            found += [f"{key} annotation" for key in sorted(set(old) | set(new))
                      if (key in mapped or "Mapped" in repr(new.get(key))) and repr(old.get(key)) != repr(new.get(key))]
        elif name in _SCHEMA_ATTRS or name in mapped or _is_mapping_construct(change.new.get(name)):
            found.append(name)
    return found


def _before_change(change: Any) -> None:
    mapper = _mapper(change.cls)
    if mapper is None:
        return
    found = schema_changes(change, mapper)
    if found:
        from .._hooks import NeedsRestart

        raise NeedsRestart(f"its table mapping changed ({', '.join(found)})")

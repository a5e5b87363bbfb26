"""Pydantic v2: a model whose fields changed validates and serialises as its new source says, and so do the
models and ``TypeAdapter``\\ s that use it.

Mechanism: Pydantic collects a model's fields and validators and builds its core schema, validator and
serializer when the class is created, and a model or ``TypeAdapter`` that uses another model embeds that
model's schema at that moment. hotswap never creates a class twice: it sets the new body's members on the
live class. So when a model class changes (the engine's ``after_class_change`` hook), the adapter collects
its fields and decorators again from the live class, as Pydantic's metaclass does at creation
(``set_model_fields``, ``DecoratorInfos.build``); after the reload, it force-rebuilds
(``model_rebuild(force=True)``) each changed model, then every live model whose core schema refers to one of
them (found by walking the schemas of ``BaseModel``'s subclasses; dependents rebuilt after what they depend
on), then every ``TypeAdapter`` whose schema refers to any of those (``TypeAdapter.rebuild(force=True)``,
Pydantic 2.10+). FastAPI routes that use the models are rebuilt by the FastAPI adapter, which runs after this
one. Collecting fields uses Pydantic's internal functions; where they are missing or differ (another Pydantic
release), the report's ``needs_restart`` says the model needs a restart instead.

Trade-off: finding dependents walks the core schemas of all live models once per reload that changed a
model (a few microseconds per model), rather than keeping a dependency index up to date at every class
creation.
"""

from __future__ import annotations

import logging
import sys
import threading
import types
import warnings
import weakref
from typing import Any, Dict, Iterable, List, Set

from . import track_instances

logger = logging.getLogger("hotswap")

_adapters: "weakref.WeakValueDictionary[int, Any]" = weakref.WeakValueDictionary()
_changed = threading.local()  # .models: the model classes the current reload changed


def activate(pydantic: types.ModuleType) -> None:
    from .. import _hooks
    from ..reload import on_reload

    _hooks.after_class_change(_class_changed)

    adapter_class = getattr(pydantic, "TypeAdapter", None)
    if adapter_class is not None and hasattr(adapter_class, "rebuild"):
        track_instances(adapter_class, _adapters)
    on_reload(_on_reload)


def _subclasses(cls: type) -> List[type]:
    found, todo, seen = [], [cls], set()
    while todo:
        for sub in todo.pop().__subclasses__():
            if id(sub) not in seen:
                seen.add(id(sub))
                found.append(sub)
                todo.append(sub)
    return found


def _refers(schema: Any, targets: Set[int]) -> Set[int]:
    """ids of the classes in ``targets`` that a core schema mentions (as a model's ``cls``)."""
    found: Set[int] = set()
    todo = [schema]
    seen: Set[int] = set()
    while todo:
        node = todo.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, dict):
            cls = node.get("cls")
            if cls is not None and id(cls) in targets:
                found.add(id(cls))
            todo.extend(v for v in node.values() if isinstance(v, (dict, list, tuple)))
        elif isinstance(node, (list, tuple)):
            todo.extend(v for v in node if isinstance(v, (dict, list, tuple)))
    return found


def _schema(obj: Any, attr: str) -> Any:
    try:
        schema = getattr(obj, attr, None)
    except Exception:  # noqa: BLE001 - a mock schema of an incomplete model raises on access
        return None
    return schema if isinstance(schema, dict) else None


def _changed_models(module: types.ModuleType, names: Iterable[str], base: type) -> List[type]:
    models = []
    for name in names:
        obj: Any = module
        for part in name.split("."):
            obj = getattr(obj, part, None)
        if isinstance(obj, type) and issubclass(obj, base) and obj is not base:
            models.append(obj)
    return models


def _rebuild_order(changed: List[type], all_models: List[type]) -> List[type]:
    """The changed models, then every model that depends on them, each after the ones it refers to."""
    targets: Dict[int, type] = {id(m): m for m in changed}
    deps: Dict[int, Set[int]] = {}
    grew = True
    while grew:  # dependents of dependents
        grew = False
        for model in all_models:
            if id(model) in deps:
                continue
            refs = _refers(_schema(model, "__pydantic_core_schema__"), set(targets)) - {id(model)}
            if refs or id(model) in targets:
                deps[id(model)] = refs
                if id(model) not in targets:
                    targets[id(model)] = model
                    grew = True
    for key in targets:
        deps.setdefault(key, set())
    order: List[type] = []
    done: Set[int] = set()

    def visit(key: int, stack: Set[int]) -> None:
        if key in done or key in stack:
            return
        stack.add(key)
        for dep in deps[key]:
            visit(dep, stack)
        done.add(key)
        order.append(targets[key])

    for key in targets:
        visit(key, set())
    return order


def _class_changed(change: Any) -> None:
    """After the engine set a changed body's members on a live model class: its fields and decorators again."""
    pydantic = sys.modules.get("pydantic")
    cls = change.cls
    if pydantic is None or not isinstance(cls, type) or not issubclass(cls, pydantic.BaseModel):
        return
    _changed.__dict__.setdefault("models", []).append(cls)
    from pydantic._internal import _config, _decorators, _model_construction, _namespace_utils

    config_wrapper = _config.ConfigWrapper(cls.model_config, check=False)
    parent = _model_construction.unpack_lenient_weakvaluedict(cls.__pydantic_parent_namespace__) or {}
    _model_construction.set_model_fields(cls, config_wrapper=config_wrapper,
                                         ns_resolver=_namespace_utils.NsResolver(parent_namespace=parent))
    cls.__pydantic_decorators__ = _decorators.DecoratorInfos.build(cls, replace_wrapped_methods=True)
    cls.__pydantic_decorators__.update_from_config(config_wrapper)


def _on_reload(report: Any) -> None:
    models = _changed.__dict__.pop("models", [])
    if not report.ok:
        return
    module = sys.modules.get(report.module)
    pydantic = sys.modules.get("pydantic")
    if module is None or pydantic is None:
        return
    base = pydantic.BaseModel
    changed = list({id(m): m for m in models + _changed_models(module, report.patched, base)}.values())
    if not changed:
        return
    rebuilt = _rebuild_order(changed, _subclasses(base))
    for model in rebuilt:
        try:
            model.model_rebuild(force=True, _parent_namespace_depth=0)
        except Exception:  # noqa: BLE001 - a model that cannot be rebuilt keeps validating as it did
            logger.exception("hotswap: cannot rebuild the Pydantic model %s", model.__qualname__)
    ids = {id(m) for m in rebuilt}
    for adapter in list(_adapters.values()):
        if _refers(_schema(adapter, "core_schema"), ids):
            try:
                with warnings.catch_warnings():  # shown when the adapter was made, if its maker let them through
                    warnings.simplefilter("ignore")
                    adapter.rebuild(force=True, _parent_namespace_depth=0)
            except Exception:  # noqa: BLE001
                logger.exception("hotswap: cannot rebuild a TypeAdapter of %s", adapter)

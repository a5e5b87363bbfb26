"""FastAPI: routers follow reloads; a route's path, methods, parameters and dependencies as the source says.

Mechanism: FastAPI builds each ``APIRoute`` (path regex, dependency tree, request and response validation) when the
route is added, and a re-run decorator (``@app.get("/hi")`` where it said ``"/hello"``) appends a second route,
leaving the old one serving. The adapter records the arguments every ``APIRoute`` was built with and keeps every
``APIRouter`` (an app's router too) in a weak set. While a reload runs, a route a decorator adds goes to a copy of
its router's route list (FastAPI's own ``add_api_route`` and ``include_router`` run against a stand-in holding the
copy), where it replaces the routes of the same definition made before. Once every write of the reload is applied
(the engine's ``before_module_commit`` hook), each router's list is reconciled with the module:

- a route whose endpoint is a top-level function of that module that the module no longer binds (the
  function was removed or renamed, or its decorator ran again and registered the new object) is removed;
- a route whose endpoint or dependencies now have another signature is built again from its recorded
  arguments, so changed parameters and dependencies take effect; one FastAPI refuses to build fails the reload;

and the new list goes live in one assignment of ``router.routes`` (the list the app reads on each request).
A reload that fails never touches a router; one rolled back after the swap puts the old lists back. After
the reload is committed, routes whose annotations or response model name a class the reload changed (a
Pydantic model, rebuilt by the Pydantic adapter, which runs first) are built again, a router included in
another (``include_router``) whose routes changed is included again at the same place (older FastAPI copies
the routes; newer FastAPI includes by reference and is told the routes changed), and each app's cached
OpenAPI schema is dropped (and one a request was computing meanwhile is not kept).

Trade-off: a changed router costs a copy of its route list per reload. Routes that depend on a changed
Pydantic model are rebuilt after the commit, since the model itself is rebuilt only then: a route FastAPI
cannot build from the new model keeps serving as it was (logged), rather than failing the reload.
"""

from __future__ import annotations

import functools
import inspect
import logging
import sys
import threading
import types
import weakref
from typing import Any, List, Tuple

from . import StandIn, stand_in, track_instances

logger = logging.getLogger("hotswap")

_routers: "weakref.WeakValueDictionary[int, Any]" = weakref.WeakValueDictionary()
_apps: "weakref.WeakValueDictionary[int, Any]" = weakref.WeakValueDictionary()
_reloading = threading.local()  # .stages: {id(router): StandIn} for the reload running on this thread
_INIT_ARGS = "_hotswap_init"
_INCLUDES = "_hotswap_includes"
_OPENAPI_GENERATION = "_hotswap_openapi_generation"
_openapi_generation = [0]  # bumped after each reload that changed something


def activate(fastapi: types.ModuleType) -> None:
    from fastapi import FastAPI, routing

    from .. import _hooks
    from ..reload import currently_reloading, on_reload

    _record_init(routing.APIRoute)
    def born(router: Any) -> None:
        if currently_reloading():  # not live yet: the reload's routes go straight to it
            _reloading.__dict__.setdefault("born", set()).add(id(router))

    track_instances(routing.APIRouter, _routers, born)
    track_instances(FastAPI, _apps)
    _follow_openapi(FastAPI)
    add_api_route = routing.APIRouter.add_api_route

    def staged(router: Any) -> bool:
        return not isinstance(router, StandIn) and currently_reloading() and \
            id(router) not in getattr(_reloading, "born", ())

    @functools.wraps(add_api_route)
    def add_api_route_staged(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not staged(self):
            return add_api_route(self, *args, **kwargs)
        stage = _stage(self)
        result = add_api_route(stage, *args, **kwargs)
        _drop_superseded(stage, stage.routes[-1] if stage.routes else None)
        return result

    routing.APIRouter.add_api_route = add_api_route_staged
    include_router = routing.APIRouter.include_router

    @functools.wraps(include_router)
    def include_router_recorded(self: Any, router: Any, *args: Any, **kwargs: Any) -> Any:
        # During a reload, the routes it adds are staged like any other, and so is the record of the include.
        target = _stage(self) if staged(self) else self
        before = len(target.routes)
        result = include_router(target, router, *args, **kwargs)
        added = [id(route) for route in target.routes[before:]]
        record = (weakref.ref(router), args, kwargs, added, _route_ids(router))
        if isinstance(target, StandIn):
            target.includes.append(record)
        else:
            target.__dict__.setdefault(_INCLUDES, []).append(record)
        return result

    routing.APIRouter.include_router = include_router_recorded
    _hooks.before_module_commit(_commit)
    on_reload(_on_reload)


def _staging(router: Any) -> StandIn:
    """A stand-in for ``router`` whose route list is a copy, for FastAPI's ``add_api_route`` and
    ``include_router``; ``includes`` collects the include records to keep if the reload commits."""
    return StandIn(router, routes=list(router.routes), includes=[])


def _stage(router: Any) -> StandIn:
    return stand_in(_reloading.__dict__.setdefault("stages", {}), router, _staging)


def _record_init(cls: type) -> None:
    original = cls.__init__

    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.__dict__[_INIT_ARGS] = (type(self), args, kwargs, _signature(self))

    cls.__init__ = __init__


def _route_ids(router: Any) -> Tuple[int, ...]:
    return tuple(id(route) for route in router.routes)


def _top_level(func: Any) -> Tuple[str, str] | None:
    """(module, name) of a plain top-level function, else None."""
    func = inspect.unwrap(func) if callable(func) else func
    module, qualname = getattr(func, "__module__", None), getattr(func, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str) or "." in qualname or "<" in qualname:
        return None
    return module, qualname


def _stale(route: Any, module: types.ModuleType) -> bool:
    """The route's endpoint is a top-level function of ``module`` that the module no longer binds."""
    endpoint = getattr(route, "endpoint", None)
    where = _top_level(endpoint)
    if where is None or where[0] != module.__name__:
        return False
    current = module.__dict__.get(where[1])
    return current is None or inspect.unwrap(current) is not inspect.unwrap(endpoint)


def _drop_superseded(router: Any, added: Any) -> None:
    """A decorator that ran again during a reload registered ``added``: the routes of the same definition made
    before (another function object) leave at once, so the old path is never served beside the new one."""
    where = _top_level(getattr(added, "endpoint", None))
    if where is None:
        return
    new = inspect.unwrap(added.endpoint)
    stale = [route for route in router.routes if route is not added and _top_level(getattr(route, "endpoint", None))
             == where and inspect.unwrap(route.endpoint) is not new]
    if stale:
        ids = {id(route) for route in stale}
        router.routes = [route for route in router.routes if id(route) not in ids]


def _modules_of(route: Any) -> set:
    """Modules whose code or types the route was built from: endpoint, dependencies, annotations."""
    found = set()
    calls = _calls(route)
    for call in calls:
        found.add(getattr(call, "__module__", None))
        annotations = getattr(inspect.unwrap(call), "__annotations__", None) or {}
        for value in list(annotations.values()):
            found.add(getattr(value, "__module__", None))
    found.add(getattr(getattr(route, "response_model", None), "__module__", None))
    found.discard(None)
    return found


def _rebuild(route: Any) -> Any:
    recorded = route.__dict__.get(_INIT_ARGS)
    if recorded is None:
        return route
    cls, args, kwargs, _ = recorded
    if type(route) is not cls:
        return route
    return cls(*args, **kwargs)


def _calls(route: Any) -> List[Any]:
    calls: List[Any] = [getattr(route, "endpoint", None)]
    dependant = getattr(route, "dependant", None)
    todo = [dependant] if dependant is not None else []
    while todo:
        dep = todo.pop()
        calls.append(getattr(dep, "call", None))
        todo.extend(getattr(dep, "dependencies", ()) or ())
    return [call for call in calls if call is not None]


def _signature(route: Any) -> Tuple[str, ...]:
    """The signatures the route was built from (endpoint and dependencies), to tell a body edit from one that
    changes what FastAPI derived."""
    out = []
    for call in _calls(route):
        try:
            out.append(repr(inspect.signature(call)))
        except (TypeError, ValueError):
            out.append(repr(call))
    return tuple(out)


def _uses(route: Any, module: types.ModuleType) -> bool:
    return route.__dict__.get(_INIT_ARGS) is not None and module.__name__ in _modules_of(route)


def _signature_changed(route: Any, module: types.ModuleType) -> bool:
    """Whether the route's endpoint or a dependency from ``module`` now has another signature."""
    return _uses(route, module) and _signature(route) != route.__dict__[_INIT_ARGS][3]


def _uses_changed_class(route: Any, module: types.ModuleType, patched: Tuple[str, ...]) -> bool:
    """Whether a class of the module used in an annotation or as the response model changed (a Pydantic field)."""
    if not patched or not _uses(route, module):
        return False
    names = [f"{module.__name__}.{name}" for name in patched]
    text = repr(getattr(route, "response_model", None)) + "".join(
        repr(value) for call in _calls(route) for value in (getattr(inspect.unwrap(call), "__annotations__", None)
                                                            or {}).values())
    return any(name in text for name in names)


def _reconciled(routes: List[Any], module: types.ModuleType, names: set) -> List[Any]:
    """``routes`` without those whose endpoint the module no longer binds, and with those whose signature changed
    built again (FastAPI's error propagates: the reload fails)."""
    kept = []
    for route in routes:
        where = _top_level(getattr(route, "endpoint", None))
        if where is not None and where[1] in names and _stale(route, module):
            continue
        kept.append(_rebuild(route) if _signature_changed(route, module) else route)
    return kept


def _commit(change: Any) -> Any:
    """Reconciles every router with the module and swaps in the new route lists; returns what puts them back."""
    stages = _reloading.__dict__.pop("stages", {})
    _reloading.__dict__.pop("born", None)
    module, names = change.module, set(change.removed) | set(change.previous)
    if not stages and not names and not change.patched:
        return None  # nothing of the module changed that a route could be built from
    swaps = []
    for router in list(_routers.values()):
        stage = stages.get(id(router))
        routes = stage.routes if stage is not None else router.routes
        new = _reconciled(routes, module, names)
        if stage is not None or len(new) != len(routes) or any(a is not b for a, b in zip(new, routes)):
            swaps.append((router, router.routes, new))
    if not swaps:
        return None
    for router, _, new in swaps:
        router.routes = new
        _routes_changed(router)
    for stage in stages.values():
        if stage.includes:
            stage.stands_for.__dict__.setdefault(_INCLUDES, []).extend(stage.includes)

    def undo() -> None:
        for router, old, _ in swaps:
            router.routes = old
            _routes_changed(router)
        for stage in stages.values():
            records = stage.stands_for.__dict__.get(_INCLUDES, [])
            for record in stage.includes:
                if record in records:
                    records.remove(record)

    return undo


def _routes_changed(router: Any) -> None:
    """FastAPI 0.12x+ caches what an included router serves, keyed by a version its routes' changes bump."""
    mark = getattr(router, "_mark_routes_changed", None)
    if mark is not None:
        mark()


def _reinclude(router: Any) -> bool:
    """Includes again every router included in ``router`` whose routes changed since it was included."""
    includes = router.__dict__.get(_INCLUDES)
    if not includes:
        return False
    from fastapi import routing

    changed = False
    for i, (ref, args, kwargs, added, source_ids) in enumerate(list(includes)):
        sub = ref()
        if sub is None or _route_ids(sub) == source_ids:
            continue
        ids = set(added)
        if any(hasattr(route, "original_router") for route in router.routes if id(route) in ids):
            continue  # included by reference (FastAPI 0.12x+): it serves the sub-router's current routes
        position = next((n for n, route in enumerate(router.routes) if id(route) in ids), len(router.routes))
        router.routes[:] = [route for route in router.routes if id(route) not in ids]
        before = len(router.routes)
        _original_include(routing)(router, sub, *args, **kwargs)
        new = router.routes[before:]
        del router.routes[before:]
        router.routes[position:position] = new
        includes[i] = (ref, args, kwargs, [id(route) for route in new], _route_ids(sub))
        changed = True
    return changed


def _original_include(routing: types.ModuleType) -> Any:
    include = routing.APIRouter.include_router
    return getattr(include, "__wrapped__", include)


def _on_reload(report: Any) -> None:
    if not report.ok:  # failed before its commit: what it staged is dropped, no router was touched
        _reloading.__dict__.pop("stages", None)
        _reloading.__dict__.pop("born", None)
        return
    if not report.changed:
        return
    module = sys.modules.get(report.module)
    if module is None:
        return
    routers = list(_routers.values())
    patched = tuple(report.patched)
    for router in routers:
        if any(_uses_changed_class(route, module, patched) for route in router.routes):
            new = []
            for route in router.routes:
                try:
                    new.append(_rebuild(route) if _uses_changed_class(route, module, patched) else route)
                except Exception:  # noqa: BLE001 - committed already: the route keeps serving as it was
                    logger.exception("hotswap: cannot rebuild route %s", getattr(route, "path", route))
                    new.append(route)
            router.routes = new
            _routes_changed(router)
    # Included routers after every router's own routes are settled (an include copies the sub-router's routes).
    changed = True
    rounds = 0
    while changed and rounds < 8:  # nesting depth of includes
        changed = False
        for router in routers:
            changed = _reinclude(router) or changed
        rounds += 1
    _openapi_generation[0] += 1
    for app in list(_apps.values()):
        app.openapi_schema = None


def _follow_openapi(app_class: type) -> None:
    """``FastAPI.openapi`` caches the schema on the app. A request computing it while a reload runs would store
    the schema of the old routes after the adapter dropped the cache: each cached schema is tagged with the
    reload generation it started in, and one from an earlier generation is computed again."""
    openapi = app_class.openapi

    @functools.wraps(openapi)
    def openapi_of_this_generation(self: Any) -> Any:
        generation = _openapi_generation[0]
        if self.__dict__.get(_OPENAPI_GENERATION) != generation:
            self.openapi_schema = None
        schema = openapi(self)
        self.__dict__[_OPENAPI_GENERATION] = generation
        return schema

    app_class.openapi = openapi_of_this_generation

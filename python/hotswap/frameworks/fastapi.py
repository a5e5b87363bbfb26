"""FastAPI: routers follow reloads; a route's path, methods, parameters and dependencies as the source says.

Mechanism: FastAPI builds each ``APIRoute`` (path regex, dependency tree, request and response validation) when
the route is added, and a re-run decorator (``@app.get("/hi")`` where it said ``"/hello"``) appends a second
route, leaving the old one serving. The adapter records the arguments every ``APIRoute`` was built with and
keeps every ``APIRouter`` (an app's router too) in a weak set. After each successful reload of a module it
reconciles every router, in place (``router.routes`` is the list the app reads on each request):

- a route whose endpoint is a top-level function of that module that the module no longer binds (the
  function was removed, or its decorator ran again and registered the new object) is removed (a route
  registered again by a re-run decorator replaces the old one at once, while the reload runs);
- a route whose endpoint, dependencies or annotations come from that module is built again from its recorded
  arguments, so changed parameters, dependencies and response models take effect;
- a router included in another (``include_router``) whose routes changed is included again at the same place
  (older FastAPI copies the routes; newer FastAPI includes by reference and is told the routes changed);
- each app's cached OpenAPI schema is dropped.

A reload that fails after a decorator added a route (a later statement raised) puts every router's routes
back as they were before it, so a failed reload changes nothing here either.

Trade-off: the reconciliation runs after the reload's transaction, on the thread that reloaded; a request
served in between sees the routes as the reload left them (old and new side by side, for a moment).
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

from . import track_instances

logger = logging.getLogger("hotswap")

_routers: "weakref.WeakValueDictionary[int, Any]" = weakref.WeakValueDictionary()
_apps: "weakref.WeakValueDictionary[int, Any]" = weakref.WeakValueDictionary()
_reloading = threading.local()  # .routes: every router's routes before the current reload first added one
_INIT_ARGS = "_hotswap_init"
_INCLUDES = "_hotswap_includes"


def activate(fastapi: types.ModuleType) -> None:
    from fastapi import FastAPI, routing

    from ..reload import currently_reloading, on_reload

    _record_init(routing.APIRoute)
    track_instances(routing.APIRouter, _routers)
    track_instances(FastAPI, _apps)
    add_api_route = routing.APIRouter.add_api_route

    @functools.wraps(add_api_route)
    def add_api_route_undoable(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not currently_reloading():
            return add_api_route(self, *args, **kwargs)
        if getattr(_reloading, "routes", None) is None:
            # The reload may still fail: what every router held before it is put back then.
            _reloading.routes = [(router, list(router.routes)) for router in list(_routers.values())]
        result = add_api_route(self, *args, **kwargs)
        _drop_superseded(self, self.routes[-1] if self.routes else None)
        return result

    routing.APIRouter.add_api_route = add_api_route_undoable
    include_router = routing.APIRouter.include_router

    @functools.wraps(include_router)
    def include_router_recorded(self: Any, router: Any, *args: Any, **kwargs: Any) -> Any:
        before = len(self.routes)
        result = include_router(self, router, *args, **kwargs)
        added = [id(route) for route in self.routes[before:]]
        self.__dict__.setdefault(_INCLUDES, []).append((weakref.ref(router), args, kwargs, added,
                                                        _route_ids(router)))
        return result

    routing.APIRouter.include_router = include_router_recorded
    on_reload(_on_reload)


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
        router.routes[:] = [route for route in router.routes if id(route) not in ids]
        _routes_changed(router)


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


def _needs_rebuild(route: Any, module: types.ModuleType, patched: Tuple[str, ...]) -> bool:
    """Whether what FastAPI derived from the route's functions and types may have changed with this reload."""
    recorded = route.__dict__.get(_INIT_ARGS)
    if recorded is None or module.__name__ not in _modules_of(route):
        return False
    if _signature(route) != recorded[3]:
        return True
    # A class of the module used in an annotation or as the response model changed (a Pydantic field).
    names = [f"{module.__name__}.{name}" for name in patched]
    text = repr(getattr(route, "response_model", None)) + "".join(
        repr(value) for call in _calls(route) for value in (getattr(inspect.unwrap(call), "__annotations__", None)
                                                            or {}).values())
    return any(name in text for name in names)


def _reconcile(router: Any, module: types.ModuleType, patched: Tuple[str, ...] = ()) -> bool:
    """Brings one router's own routes up to date with ``module``; True when its list of routes changed."""
    routes = router.routes
    changed = False
    kept = []
    for route in list(routes):
        if _stale(route, module):
            changed = True
            continue
        if _needs_rebuild(route, module, patched):
            try:
                new = _rebuild(route)
            except Exception:  # noqa: BLE001 - a route that cannot be built again keeps serving as it was
                logger.exception("hotswap: cannot rebuild route %s", getattr(route, "path", route))
                new = route
            changed = changed or new is not route
            route = new
        kept.append(route)
    if changed:
        routes[:] = kept
        _routes_changed(router)
    return changed


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
    before, _reloading.routes = getattr(_reloading, "routes", None), None
    if not report.ok:
        for router, routes in before or ():
            router.routes[:] = routes
            _routes_changed(router)
        return
    if not report.changed:
        return
    module = sys.modules.get(report.module)
    if module is None:
        return
    routers = list(_routers.values())
    for router in routers:
        _reconcile(router, module, tuple(report.patched))
    # Included routers after every router's own routes are settled (an include copies the sub-router's routes).
    changed = True
    rounds = 0
    while changed and rounds < 8:  # nesting depth of includes
        changed = False
        for router in routers:
            changed = _reinclude(router) or changed
        rounds += 1
    for app in list(_apps.values()):
        app.openapi_schema = None


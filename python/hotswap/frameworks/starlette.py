"""Starlette: an app built from a route list (``Starlette(routes=[Route(...), Mount(...)])``) follows edits of it.

Mechanism: an edit of the list (a path changed, a route added or removed, an endpoint renamed) makes the reload
run the statement building the app again (and ``routes = [...]`` before it, if the list has a name), which
binds a new app, while the server holds the old one. Once every write of the reload is applied (the engine's
``before_module_commit`` hook), for each module-level name the reload bound from a live Starlette app (or a
``Router``) to a new one of the same class, the new router's routes go live on the old one in one assignment
of ``router.routes`` (the list the app reads on each request; ``Mount``\\ s come along with their new routes),
and the name is bound to the old object again, so the server, ``from app import app`` and the module all see
one app. A reload rolled back after that puts the old route list back (the engine restores the name).

Trade-off: only the routes move over. The old app keeps its middleware, exception handlers, lifespan and
state (which is how in-memory state survives); an edit of those arguments needs a restart to take effect.
"""

from __future__ import annotations

import types
from typing import Any, Callable, List, Optional, Tuple


def activate(starlette: types.ModuleType) -> None:
    from .. import _hooks

    _hooks.before_module_commit(_commit)


def _router(obj: Any) -> Any:
    """The ``Router`` whose ``routes`` an app (or a router) serves, else None."""
    from starlette.applications import Starlette
    from starlette.routing import Router

    if isinstance(obj, Starlette):
        return getattr(obj, "router", None)
    return obj if isinstance(obj, Router) else None


def _commit(change: Any) -> Optional[Callable[[], None]]:
    if not change.previous:
        return None
    namespace = change.module.__dict__
    moved: List[Tuple[Any, list]] = []
    for name, old in change.previous.items():
        new = namespace.get(name)
        if new is None or new is old or type(new) is not type(old):
            continue
        old_router, new_router = _router(old), _router(new)
        if old_router is None or new_router is None:
            continue
        moved.append((old_router, old_router.routes))
        old_router.routes = list(new_router.routes)
        _routes_changed(old_router)
        namespace[name] = old  # the engine's rollback binds the name as it was before the reload anyway
    if not moved:
        return None

    def undo() -> None:
        for router, routes in moved:
            router.routes = routes
            _routes_changed(router)

    return undo


def _routes_changed(router: Any) -> None:
    """FastAPI's routers cache what an included router serves, keyed by a version their changes bump."""
    mark = getattr(router, "_mark_routes_changed", None)
    if mark is not None:
        mark()

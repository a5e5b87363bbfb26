"""Flask: routes added, changed or removed after the app has served requests take effect, blueprints' too.

Mechanism: Flask refuses setup methods (``@app.route``, ``@bp.route`` on a registered blueprint) once an app has
handled a request or a blueprint was registered (their ``_check_setup_finished`` guards), and refuses to map an
endpoint to a second function. While hotswap runs a reload's statements (``currently_reloading()`` on that
thread), the adapter lets the guards pass and stages every change instead of applying it: the first
``add_url_rule`` of a reload on an app copies its URL map (``Rule.empty()`` copies, the map's settings kept) and
its view functions, and Flask's own ``add_url_rule`` then runs against that copy. A route added to a blueprint
that is already registered is also added, through a setup state made as at registration, to every app it is
registered on. When a re-run decorator maps an endpoint again to the new version of the same function (same
module, same name), the endpoint's old rules leave the copy first. Once every write of the reload is applied
(the engine's ``before_module_commit`` hook), endpoints whose view is a top-level function the module no longer
binds leave the copy too, and the copy goes live in one assignment of ``app.url_map`` (new views added before
it, removed ones dropped after it, so every request finds its view). A reload that fails never touches the app;
one rolled back after the swap puts the old map and views back. Templates: see the Jinja2 adapter.

Trade-off: a changed app costs a copy of its rules per reload, far below a millisecond for hundreds of rules.
A blueprint registered on an app during a reload of another module, or nested blueprints registered after
their parent, are not followed (a restart applies them).
"""

from __future__ import annotations

import functools
import inspect
import threading
import types
import weakref
from typing import Any, Callable, Dict, Optional, Set

from . import StandIn, stand_in, track_instances

_apps: "weakref.WeakValueDictionary[int, Any]" = weakref.WeakValueDictionary()
_staged = threading.local()  # .apps: {id(app): StandIn} for the reload running on this thread
_REGISTRATIONS = "_hotswap_registrations"  # on a blueprint: [(weakref to app, options)] of each registration


def _staging(app: Any) -> StandIn:
    """A stand-in for ``app`` whose URL map and view functions are copies, for Flask's ``add_url_rule``."""
    return StandIn(app, url_map=_copy_map(app.url_map), view_functions=dict(app.view_functions))


def activate(flask: types.ModuleType) -> None:
    from .. import _hooks
    from ..reload import currently_reloading, on_reload

    app_class = _app_base(flask)
    _let_setup_pass(app_class, currently_reloading)
    add_url_rule = app_class.add_url_rule

    @functools.wraps(add_url_rule)
    def add_url_rule_staged(self: Any, rule: str, endpoint: Optional[str] = None, view_func: Any = None,
                            *args: Any, **kwargs: Any) -> Any:
        if isinstance(self, StandIn) or not currently_reloading():
            return add_url_rule(self, rule, endpoint, view_func, *args, **kwargs)
        stage = _stage(self)
        if view_func is not None:
            name = endpoint if endpoint is not None else getattr(view_func, "__name__", None)
            old = stage.view_functions.get(name)
            if old is not None and old is not view_func and _same_definition(old, view_func):
                _drop(stage, {name})
        return add_url_rule(stage, rule, endpoint, view_func, *args, **kwargs)

    app_class.add_url_rule = add_url_rule_staged
    track_instances(app_class, _apps)
    _follow_blueprints(currently_reloading)
    _hooks.before_module_commit(_commit)
    on_reload(_on_reload)


def _let_setup_pass(cls: type, currently_reloading: Callable[[], bool]) -> None:
    check = cls._check_setup_finished

    @functools.wraps(check)
    def _check_setup_finished(self: Any, f_name: str) -> None:
        if currently_reloading():
            return
        check(self, f_name)

    cls._check_setup_finished = _check_setup_finished


def _follow_blueprints(currently_reloading: Callable[[], bool]) -> None:
    """Blueprints remember where they are registered; a route recorded on a registered one during a reload is
    set up on each of those apps at once."""
    try:
        from flask.sansio.blueprints import Blueprint
    except ImportError:  # pragma: no cover - Flask before 2.3
        from flask.blueprints import Blueprint
    _let_setup_pass(Blueprint, currently_reloading)
    register, record = Blueprint.register, Blueprint.record

    @functools.wraps(register)
    def register_remembered(self: Any, app: Any, options: Dict[str, Any]) -> None:
        register(self, app, options)
        self.__dict__.setdefault(_REGISTRATIONS, []).append((weakref.ref(app), dict(options)))

    @functools.wraps(record)
    def record_followed(self: Any, func: Callable[[Any], object]) -> None:
        record(self, func)
        if not currently_reloading():
            return
        for ref, options in self.__dict__.get(_REGISTRATIONS, ()):
            app = ref()
            if app is not None:
                func(self.make_setup_state(app, options, False))

    Blueprint.register = register_remembered
    Blueprint.record = record_followed


def _app_base(flask: types.ModuleType) -> type:
    """The class defining the setup guard: ``flask.sansio.app.App`` (Flask 2.3+), else ``flask.Flask``."""
    try:
        from flask.sansio.app import App

        return App
    except ImportError:  # pragma: no cover - Flask before 2.3
        return flask.Flask


def _stage(app: Any) -> StandIn:
    return stand_in(_staged.__dict__.setdefault("apps", {}), app, _staging)


def _where(func: Any) -> tuple:
    func = inspect.unwrap(func)
    return getattr(func, "__module__", None), getattr(func, "__qualname__", None)


def _same_definition(old: Any, new: Any) -> bool:
    return _where(old) == _where(new) and _where(new)[0] is not None


def _copy_map(old: Any, without: Set[str] = frozenset()) -> Any:
    """A new URL map with the settings of ``old`` and copies of its rules, less those of ``without``."""
    rules = [rule.empty() for rule in old.iter_rules() if rule.endpoint not in without]
    return type(old)(rules, default_subdomain=old.default_subdomain, strict_slashes=old.strict_slashes,
                     merge_slashes=old.merge_slashes, redirect_defaults=old.redirect_defaults,
                     converters=old.converters, sort_parameters=old.sort_parameters, sort_key=old.sort_key,
                     host_matching=old.host_matching)


def _drop(stage: StandIn, endpoints: Set[str]) -> None:
    stage.url_map = _copy_map(stage.url_map, endpoints)
    for endpoint in endpoints:
        stage.view_functions.pop(endpoint, None)


def drop_endpoints(app: Any, endpoints: set) -> None:
    """Removes every URL rule of ``endpoints`` and their view functions from ``app`` (one swap of its URL map)."""
    stage = _staging(app)
    _drop(stage, set(endpoints))
    _go_live(stage)


def _go_live(stage: StandIn) -> Callable[[], None]:
    """Makes the staged map and views the app's; returns what puts the old ones back."""
    app = stage.stands_for
    old_map, old_views = app.url_map, dict(app.view_functions)
    views = app.view_functions
    views.update(stage.view_functions)  # before the swap: the new map finds every view it routes to
    app.url_map = stage.url_map
    for endpoint in [endpoint for endpoint in views if endpoint not in stage.view_functions]:
        del views[endpoint]

    def undo() -> None:
        app.url_map = old_map
        views.clear()
        views.update(old_views)

    return undo


def _gone(views: Dict[str, Any], change: Any) -> Set[str]:
    """Endpoints whose view is a top-level function of the reloaded module that it no longer binds."""
    module = change.module
    names = set(change.removed) | set(change.previous)
    gone = set()
    for endpoint, view in views.items():
        where, qualname = _where(view)
        if where != module.__name__ or qualname not in names:
            continue
        current = module.__dict__.get(qualname)
        if current is None or inspect.unwrap(current) is not inspect.unwrap(view):
            gone.add(endpoint)
    return gone


def _commit(change: Any) -> Optional[Callable[[], None]]:
    stages: Dict[int, StandIn] = _staged.__dict__.pop("apps", {})
    if change.removed or change.previous:
        for app in list(_apps.values()):
            stage = stages.get(id(app))
            gone = _gone(stage.view_functions if stage is not None else app.view_functions, change)
            if gone:
                _drop(stage if stage is not None else stages.setdefault(id(app), _staging(app)), gone)
    if not stages:
        return None
    for stage in stages.values():
        stage.url_map.update()  # sorts the rules: a map Werkzeug refuses fails the reload here, before any swap
    undos = [_go_live(stage) for stage in stages.values()]

    def undo() -> None:
        for one in reversed(undos):
            one()

    return undo


def _on_reload(report: Any) -> None:
    if not report.ok:  # the reload failed before its commit: what it staged is dropped, the apps were never touched
        _staged.__dict__.pop("apps", None)

"""Flask: routes added, changed or removed after the app has served requests take effect.

Mechanism: Flask refuses setup methods (``@app.route``) once an app has handled a request (its
``_got_first_request`` guard), and refuses to map an endpoint to a second function. While hotswap runs a
reload's statements (``currently_reloading()`` on that thread), the adapter lets the guard pass, and
when a re-run decorator maps an endpoint again to the new version of the same function (same module, same
name), the endpoint's old URL rules are dropped first: the app gets a new ``url_map`` holding every other rule
(``Rule.empty()`` copies, the map's settings kept), then Flask adds the new rule as usual. After each
successful reload, endpoints whose view is a top-level function the module no longer defines are dropped the
same way. A reload that fails after such a change puts the app's rules and views back as they were before it.
Templates: see the Jinja2 adapter.

Trade-off: replacing ``app.url_map`` (an attribute swap, atomic for requests on other threads) costs a copy
of the rules per changed endpoint, far below a millisecond for hundreds of rules. Blueprints keep Flask's own
guard: a route added to a blueprint after it was registered still fails the reload with Flask's message.
"""

from __future__ import annotations

import functools
import inspect
import sys
import threading
import types
import weakref
from typing import Any

from . import track_instances

_apps: "weakref.WeakValueDictionary[int, Any]" = weakref.WeakValueDictionary()
_reloading = threading.local()  # .apps: {id(app): (app, url_map, view_functions)} before this reload changed them


def activate(flask: types.ModuleType) -> None:
    from ..reload import currently_reloading, on_reload

    app_class = _app_base(flask)
    check = app_class._check_setup_finished

    @functools.wraps(check)
    def _check_setup_finished(self: Any, f_name: str) -> None:
        if currently_reloading():
            return
        check(self, f_name)

    add_url_rule = app_class.add_url_rule

    @functools.wraps(add_url_rule)
    def add_url_rule_reloadable(self: Any, rule: str, endpoint: str | None = None, view_func: Any = None,
                                *args: Any, **kwargs: Any) -> Any:
        if currently_reloading():
            snapshots = _reloading.__dict__.setdefault("apps", {})
            if id(self) not in snapshots:
                # The reload may still fail: the app's rules and views before it are put back then.
                snapshots[id(self)] = (self, self.url_map, dict(self.view_functions))
        if view_func is not None and currently_reloading():
            name = endpoint if endpoint is not None else getattr(view_func, "__name__", None)
            old = self.view_functions.get(name)
            if old is not None and old is not view_func and _same_definition(old, view_func):
                drop_endpoints(self, {name})
        return add_url_rule(self, rule, endpoint, view_func, *args, **kwargs)

    app_class._check_setup_finished = _check_setup_finished
    app_class.add_url_rule = add_url_rule_reloadable
    track_instances(app_class, _apps)
    on_reload(_on_reload)


def _app_base(flask: types.ModuleType) -> type:
    """The class defining the setup guard: ``flask.sansio.app.App`` (Flask 2.3+), else ``flask.Flask``."""
    try:
        from flask.sansio.app import App

        return App
    except ImportError:  # pragma: no cover - Flask before 2.3
        return flask.Flask


def _where(func: Any) -> tuple:
    func = inspect.unwrap(func)
    return getattr(func, "__module__", None), getattr(func, "__qualname__", None)


def _same_definition(old: Any, new: Any) -> bool:
    return _where(old) == _where(new) and _where(new)[0] is not None


def drop_endpoints(app: Any, endpoints: set) -> None:
    """Removes every URL rule of ``endpoints`` and their view functions from ``app``."""
    old = app.url_map
    rules = [rule.empty() for rule in old.iter_rules() if rule.endpoint not in endpoints]
    new = type(old)(rules, default_subdomain=old.default_subdomain, strict_slashes=old.strict_slashes,
                    merge_slashes=old.merge_slashes, redirect_defaults=old.redirect_defaults,
                    converters=old.converters, sort_parameters=old.sort_parameters, sort_key=old.sort_key,
                    host_matching=old.host_matching)
    app.url_map = new
    for endpoint in endpoints:
        app.view_functions.pop(endpoint, None)


def _on_reload(report: Any) -> None:
    snapshots = _reloading.__dict__.pop("apps", {})
    if not report.ok:
        for app, url_map, views in snapshots.values():
            app.url_map = url_map
            app.view_functions.clear()
            app.view_functions.update(views)
        return
    if not report.removed:
        return
    module = sys.modules.get(report.module)
    if module is None:
        return
    for app in list(_apps.values()):
        gone = set()
        for endpoint, view in list(app.view_functions.items()):
            name_module, qualname = _where(view)
            if name_module == module.__name__ and isinstance(qualname, str) and "." not in qualname \
                    and "<" not in qualname and qualname in report.removed and qualname not in module.__dict__:
                gone.add(endpoint)
        if gone:
            drop_endpoints(app, gone)

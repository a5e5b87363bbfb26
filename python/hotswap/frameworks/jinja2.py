"""Jinja2: a saved template is compiled again on its next use, in every environment (Flask's too).

Mechanism: an ``Environment`` caches compiled templates and, unless ``auto_reload`` is on (Flask turns it on only
in debug mode), never looks at their files again. The adapter keeps every environment in a weak set and, when a
file under one of its loaders' directories is saved, clears that environment's template cache.

Trade-off: the whole cache of that environment is cleared (templates extend and include each other, and
recompiling one is a fraction of a millisecond), rather than working out which cached templates depend on the file.
"""

from __future__ import annotations

import os
import types
import weakref
from typing import Any, Iterator

from . import on_file_saved, track_instances

_environments: "weakref.WeakValueDictionary[int, Any]" = weakref.WeakValueDictionary()


def activate(jinja2: types.ModuleType) -> None:
    track_instances(jinja2.Environment, _environments)
    on_file_saved(template_saved)


def _directories(loader: Any, depth: int = 0) -> Iterator[str]:
    """Directories a loader reads templates from (FileSystem, Package, Choice, Prefix and Flask's loaders)."""
    if loader is None or depth > 8:
        return
    for attr in ("searchpath", "_template_root"):
        value = getattr(loader, attr, None)
        if isinstance(value, str):
            yield value
        elif isinstance(value, (list, tuple)):
            yield from (v for v in value if isinstance(v, str))
    for sub in getattr(loader, "loaders", ()) or ():
        yield from _directories(sub, depth + 1)
    for sub in (getattr(loader, "mapping", None) or {}).values():
        yield from _directories(sub, depth + 1)
    app = getattr(loader, "app", None)  # Flask's DispatchingJinjaLoader: the app's and blueprints' loaders
    if app is not None:
        yield from _directories(getattr(app, "jinja_loader", None), depth + 1)
        for blueprint in getattr(app, "iter_blueprints", lambda: ())():
            yield from _directories(getattr(blueprint, "jinja_loader", None), depth + 1)


def template_saved(path: str) -> bool:
    """Clears the cache of every environment that loads templates from a directory holding ``path``."""
    real = os.path.realpath(path)
    handled = False
    for env in list(_environments.values()):
        roots = {os.path.realpath(d) for d in _directories(env.loader)}
        if any(real.startswith(root.rstrip(os.sep) + os.sep) for root in roots):
            if env.cache is not None:
                env.cache.clear()
            handled = True
    return handled

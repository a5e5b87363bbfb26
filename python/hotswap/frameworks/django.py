"""Django: URLconf edits take effect, saved templates are read again, and model schema changes ask for a restart.

Mechanism: Django resolves URLs through cached resolvers (``get_resolver`` is memoised and each resolver caches
its ``urlpatterns``), so an edited ``urls.py``, even once hotswap has re-run its ``urlpatterns`` statement,
would keep serving the old patterns. After each successful reload the adapter calls
``django.urls.clear_url_caches()`` (a resolver is rebuilt on the next request, as Django's own tests do after
changing ``ROOT_URLCONF``). Views need nothing: view functions and class-based views are patched in place. A
saved file under a template directory (``django.template.autoreload.get_template_directories``) resets every
template engine's loaders, which is what Django's own autoreloader does on a template change. Model classes:
methods and properties are patched in place by the engine (the model is never registered twice); before a model
changes (the engine's ``before_class_change`` hook), an edit that adds, removes or changes a field, a manager or
``Meta`` raises ``NeedsRestart``, so the model keeps every old member and the report asks for a restart.

Trade-off: the URL caches are cleared after every reload, not only after a reload of a URLconf module: Django
resolves ``include()`` chains lazily, so which modules a resolver read is not cheaply known, and rebuilding
the resolvers costs well under a millisecond per hundred patterns.
"""

from __future__ import annotations

import os
import sys
import types
from typing import Any

from . import on_file_saved


def activate(django: types.ModuleType) -> None:
    from .. import _hooks
    from ..reload import on_reload

    on_reload(_on_reload)
    on_file_saved(template_saved)
    _hooks.before_class_change(_before_change)


def _before_change(change: Any) -> None:
    """A model whose fields, managers or ``Meta`` change needs a restart (and a migration): nothing of it is
    applied then. Methods and properties are patched in place."""
    models = sys.modules.get("django.db.models")
    cls = change.cls
    if models is None or not isinstance(cls, type) or not issubclass(cls, models.Model) or cls is models.Model:
        return
    found = [name for name in sorted(set(change.new) | set(change.removed))
             if (name == "Meta" and _options(change.new.get(name)) != _original_options(cls))
             or name in ("_meta", "objects") or isinstance(change.new.get(name), (models.Field, models.Manager))
             or isinstance(change.old.get(name), (models.Field, models.Manager))
             or type(change.old.get(name)).__module__.startswith("django.db.models.fields")]
    if found:
        from .._hooks import NeedsRestart

        raise NeedsRestart(f"its model fields changed ({', '.join(found)})")


def _options(meta: Any) -> dict:
    """The options a ``Meta`` class gives, comparable across evaluations of the class body (Django takes ``Meta``
    out of the class, so the engine always sees the body's as new)."""
    return {k: repr(v) for k, v in vars(meta).items() if not k.startswith("_")} if meta is not None else {}


def _original_options(cls: type) -> dict:
    """The ``Meta`` options the live model was created with (Django keeps them as ``_meta.original_attrs``)."""
    return {k: repr(v) for k, v in getattr(cls._meta, "original_attrs", {}).items()}


def _on_reload(report: Any) -> None:
    urls = sys.modules.get("django.urls")
    if report.ok and urls is not None:
        urls.clear_url_caches()


def template_saved(path: str) -> bool:
    """Resets template loaders when ``path`` is under one of Django's template directories."""
    if "django.template" not in sys.modules:
        return False
    try:
        from django.template import autoreload
    except Exception:  # noqa: BLE001 - settings not configured: there is nothing to reset
        return False
    real = os.path.realpath(path)
    try:
        directories = [os.path.realpath(str(d)) for d in autoreload.get_template_directories()]
    except Exception:  # noqa: BLE001 - settings not configured yet
        return False
    if not any(real.startswith(d.rstrip(os.sep) + os.sep) for d in directories):
        return False
    autoreload.reset_loaders()
    return True

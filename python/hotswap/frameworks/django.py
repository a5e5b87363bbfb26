"""Django: URLconf edits take effect, and saved templates are read again.

Mechanism: Django resolves URLs through cached resolvers (``get_resolver`` is memoised and each resolver caches
its ``urlpatterns``), so an edited ``urls.py``, even once hotswap has re-run its ``urlpatterns`` statement,
would keep serving the old patterns. After each successful reload the adapter calls
``django.urls.clear_url_caches()`` (a resolver is rebuilt on the next request, as Django's own tests do after
changing ``ROOT_URLCONF``). Views need nothing: view functions and class-based views are patched in place. A
saved file under a template directory (``django.template.autoreload.get_template_directories``) resets every
template engine's loaders, which is what Django's own autoreloader does on a template change.

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
    from ..reload import on_reload

    on_reload(_on_reload)
    on_file_saved(template_saved)


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

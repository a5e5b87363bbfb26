"""hotswap: hot code reloading for long-running Python programs.

Three tiers, each in its own module:

- ``hotswap.reload(module)`` (``hotswap.reload``) patches an edited module into the running program: existing
  function and class objects get the new code, so every reference taken earlier runs it.
- ``AutoReloader(path=...)`` (``hotswap.watcher``) watches files from a native thread and reloads on save.
- ``isolate_imports(...)`` and ``hotswap run`` (``hotswap.template``) fork fresh processes from a template that
  has already imported the third-party packages, for edits that cannot be patched in place.

Example:
    >>> import hotswap
    >>> hotswap.currently_reloading()
    False
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _log
from ._native import __version__
from .reload import ReloadReport, currently_reloading, data_files_read, on_reload, reload, running_source, track

if TYPE_CHECKING:
    from .imports import scan_imports
    from .template import isolate_imports
    from .watcher import AutoReloader

__all__ = [
    "AutoReloader",
    "ReloadReport",
    "__version__",
    "currently_reloading",
    "data_files_read",
    "isolate_imports",
    "on_reload",
    "reload",
    "running_source",
    "scan_imports",
    "track",
]

_log.configure()

# The watcher and the template are imported on first use, so `import hotswap` (and the pytest plugin when its
# options are off) starts no thread and loads nothing it does not need.
_LAZY = {"AutoReloader": ".watcher", "isolate_imports": ".template", "scan_imports": ".imports"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'hotswap' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext hotswap``: applies saved edits of your modules before each cell (see ``hotswap.ipython``)."""
    from .ipython import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext hotswap``: stops watching and unhooks from the shell."""
    from .ipython import unload_ipython_extension as unload

    unload(ipython)

"""The reloaders compared in the benchmarks, behind one small interface.

Each tool has ``prepare(module)``, called once after import (where a tool records the source it will diff
against), and ``reload(module)``, called after the file was saved. A tool whose package is missing is reported
as unavailable, with the reason, and skipped; `make bench` installs them all into benches/.venv.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Callable, Dict, Optional


class Tool:
    def __init__(self, name: str, prepare: Callable[[ModuleType], None], reload: Callable[[ModuleType], object]):
        self.name = name
        self.prepare = prepare
        self.reload = reload


def _hotswap() -> Tool:
    import hotswap

    def reload(module):
        report = hotswap.reload(module)
        if not report.ok:
            raise RuntimeError(report.error)

    return Tool("hotswap", hotswap.track, reload)


def _importlib() -> Tool:
    return Tool("importlib.reload", lambda m: None, importlib.reload)


def _superreload() -> Tool:
    from IPython.extensions.autoreload import superreload

    old_objects: Dict = {}
    return Tool("IPython superreload", lambda m: None, lambda m: superreload(m, old_objects=old_objects))


def _deduperreload() -> Tool:
    # As IPython's autoreload does: the deduper first, superreload where it declines.
    from IPython.extensions.autoreload import superreload
    from IPython.extensions.deduperreload.deduperreload import DeduperReloader

    deduper = DeduperReloader()
    old_objects: Dict = {}

    def reload(module):
        if not deduper.maybe_reload_module(module):
            superreload(module, old_objects=old_objects)

    return Tool("IPython deduperreload", lambda m: deduper.update_sources(), reload)


def _jurigged() -> Tool:
    from jurigged import registry

    def prepare(module):
        registry.prepare(module_name=module.__name__, filename=module.__file__)

    def reload(module):
        codefile = registry.get(module.__file__)
        if codefile is None:
            raise RuntimeError("jurigged has no record of the module")
        codefile.refresh()

    return Tool("jurigged", prepare, reload)


FACTORIES = [_hotswap, _importlib, _superreload, _deduperreload, _jurigged]


def available() -> Dict[str, Optional[Tool]]:
    """Every tool by name; None (with the reason printed once) where it cannot be imported."""
    tools: Dict[str, Optional[Tool]] = {}
    for factory in FACTORIES:
        name = factory.__name__.lstrip("_")
        try:
            tool = factory()
            tools[tool.name] = tool
        except ImportError as exc:
            print(f"(note: {name} unavailable: {exc}; install benches/requirements.txt)")
            tools[name] = None
    return tools

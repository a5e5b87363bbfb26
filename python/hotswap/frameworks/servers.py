"""Servers' own reloaders, bypassed under ``hotswap run``: they would re-execute the process on every save.

Mechanism: Django's ``runserver`` autoreloader (``django.utils.autoreload.run_with_reloader``), werkzeug's
reloader behind ``flask run --debug`` and ``app.run(debug=True)`` (``werkzeug._reloader.run_with_reloader``) and
uvicorn's ``--reload`` supervisor (``uvicorn.config.Config.should_reload``) are replaced, the moment their module
is imported, by a direct call of the server: the program serves in this process and hotswap patches it. One line
says so. Everything else those options turn on (werkzeug's debugger, Django's checks) is left as it is.
uvicorn releases before 0.40 (the last for Python 3.9) skip their shutdown when Ctrl-C arrives while the server
is still starting after the app's lifespan started: asyncio then cancels the lifespan task and uvicorn logs its
``CancelledError`` traceback. That window (between its "Application startup complete" and "Uvicorn running on"
lines) is too short to hit by hand in a plain run, but often hit under ``hotswap run``, where another thread
(the reloader's) runs in the process while uvicorn starts. So a stop requested during startup is moved to the
server's first tick, where uvicorn shuts down as it does for any Ctrl-C (what later releases do themselves).

Trade-off: each bypass names one function of one framework, checked against the releases in the test
requirements; a framework that renames it is simply not bypassed (its reloader then restarts the program).
"""

from __future__ import annotations

import functools
import os
import types
from typing import Any, Callable

from . import when_imported

__all__ = ["bypass_reloaders"]


def bypass_reloaders(say: Callable[[str], object]) -> None:
    """Bypasses the reloaders of Django, werkzeug (Flask) and uvicorn when (or as soon as) they are imported.

    Example:
        >>> from hotswap.frameworks.servers import bypass_reloaders
        >>> bypass_reloaders(print)
    """
    when_imported("django.utils.autoreload", functools.partial(_django, say))
    when_imported("werkzeug._reloader", functools.partial(_werkzeug, say))
    when_imported("uvicorn.config", functools.partial(_uvicorn, say))
    when_imported("uvicorn.server", _uvicorn_stop_after_startup)


def _django(say: Callable[[str], object], autoreload: types.ModuleType) -> None:
    if not hasattr(autoreload, "run_with_reloader"):
        return

    def run_with_reloader(main_func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        say("Django's autoreloader bypassed: the server runs in this process and edits are patched in place")
        try:
            main_func(*args, **kwargs)
        except KeyboardInterrupt:  # as Django's own run_with_reloader does
            pass

    autoreload.run_with_reloader = run_with_reloader


def _werkzeug(say: Callable[[str], object], reloader: types.ModuleType) -> None:
    if not hasattr(reloader, "run_with_reloader"):
        return

    def run_with_reloader(main_func: Callable[[], Any], *args: Any, **kwargs: Any) -> None:
        say("werkzeug's reloader bypassed: the server runs in this process and edits are patched in place")
        # Set for the reloader's child process only; this process already holds the socket.
        os.environ.pop("WERKZEUG_SERVER_FD", None)
        main_func()

    reloader.run_with_reloader = run_with_reloader


def _uvicorn(say: Callable[[str], object], config: types.ModuleType) -> None:
    cls = getattr(config, "Config", None)
    if cls is None or not isinstance(getattr(cls, "should_reload", None), property):
        return

    def should_reload(self: Any) -> bool:
        if getattr(self, "reload", False) and not getattr(self, "_hotswap_said", False):
            self._hotswap_said = True
            say("uvicorn's --reload bypassed: the server runs in this process and edits are patched in place")
        return False

    cls.should_reload = property(should_reload)


def _uvicorn_stop_after_startup(server_module: types.ModuleType) -> None:
    cls = getattr(server_module, "Server", None)
    if cls is None or not hasattr(cls, "startup") or not hasattr(cls, "on_tick") or \
            getattr(cls.startup, "_hotswap", False):
        return
    startup, on_tick = cls.startup, cls.on_tick

    @functools.wraps(startup)
    async def startup_then_stop(self: Any, *args: Any, **kwargs: Any) -> None:
        await startup(self, *args, **kwargs)
        if self.should_exit and getattr(self, "started", False):
            # Ctrl-C during startup, after the app started: stop at the first tick, through uvicorn's shutdown.
            self.should_exit = False
            self._hotswap_stop = True

    @functools.wraps(on_tick)
    async def on_tick_stopping(self: Any, counter: int) -> bool:
        if self.__dict__.pop("_hotswap_stop", False):
            self.should_exit = True
        return await on_tick(self, counter)

    startup_then_stop._hotswap = True  # type: ignore[attr-defined]
    cls.startup = startup_then_stop
    cls.on_tick = on_tick_stopping

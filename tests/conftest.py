"""Shared fixtures: modules written to a temporary directory, imported, then edited on disk."""

from __future__ import annotations

import importlib
import signal
import sys
import textwrap
import time
import types
import uuid
from pathlib import Path
from typing import Callable

import pytest

import hotswap
from hotswap import _source

# A suite started as a background job of a shell without job control inherits SIGINT ignored, and Python then
# installs no KeyboardInterrupt handler: the Ctrl-C tests need the handler a program started at a terminal has.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


# Files whose tests start processes, watch files, send signals, run threads against the clock or measure time:
# under pytest-xdist with `--dist loadgroup` (`make test` runs each suite with `-n 2 --dist loadgroup`) the tests
# of each such file run in one worker, one after another and in file order, as without xdist (two such files may
# run at once, as two suites do under `make test`), while every other test goes to whichever worker is free.
SERIAL_FILES = {
    "test_dask.py", "test_fork.py", "test_ipython_kernel.py", "test_logging.py", "test_patch_threads.py",
    "test_run_cli.py", "test_run_dropin.py", "test_run_examples.py", "test_run_servers.py", "test_security.py",
    "test_template.py", "test_watch_datafiles.py", "test_watch_native.py", "test_watch_reloader.py",
    "test_pytest_hotswap.py",
}


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """`--dist loadgroup` with SERIAL_FILES as the groups: chosen here from each test's id, not by the
    `xdist_group` mark, whose group pytest-xdist 3.8 writes into a node id field that pytest 9.2 no longer reads
    (the mark is then silently ignored: pytest-xdist issue 1386)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SerialFilesTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return path if path.rsplit("/", 1)[-1] in SERIAL_FILES else nodeid

    return SerialFilesTogether(config, log)


# Small module sources several tests start from, indented as the tests write theirs (``ModuleFactory`` dedents).
DATACLASS_SOURCE = """
        import dataclasses

        @dataclasses.dataclass
        class P:
            x: int = 1
"""
ABSTRACT_SOURCE = """
        import abc

        class Base(abc.ABC):
            @abc.abstractmethod
            def run(self):
                ...

        class Impl(Base):
            def run(self):
                return 1
"""


class ModuleFactory:
    """Writes modules under a temporary directory on sys.path and edits them the way an editor would."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.names: list[str] = []

    def path(self, name: str) -> Path:
        return self.root.joinpath(*name.split(".")).with_suffix(".py")

    def write(self, name: str, source: str) -> Path:
        path = self.path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
        return path

    def load(self, source: str, name: str | None = None):
        """Creates and imports a fresh module with ``source``; returns the module."""
        name = name or f"mod_{uuid.uuid4().hex[:10]}"
        self.write(name, source)
        importlib.invalidate_caches()
        module = importlib.import_module(name)
        self.names.append(name)
        return module

    def run_as_main(self, name: str, source: str, monkeypatch: pytest.MonkeyPatch):
        """Runs ``source`` as the program's ``__main__`` (as ``python name.py`` would); returns (module, path)."""
        path = self.write(name, source)
        main = types.ModuleType("__main__")
        main.__file__ = str(path)
        exec(compile(path.read_text(), str(path), "exec"), main.__dict__)
        monkeypatch.setitem(sys.modules, "__main__", main)
        # Baselines are recorded by module name: this test's __main__ is not the one another test recorded.
        monkeypatch.delitem(_source._baselines, "__main__", raising=False)
        hotswap.track(main)
        return main, path

    def edit(self, module, source: str, **kwargs) -> hotswap.ReloadReport:
        """Saves new source for ``module`` and reloads it; returns the report."""
        self.write(module.__name__, source)
        return hotswap.reload(module, **kwargs)


@pytest.fixture
def modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    factory = ModuleFactory(tmp_path)
    yield factory
    for name in factory.names:
        sys.modules.pop(name, None)


@pytest.fixture
def start():
    """Starts ``AutoReloader``s that are stopped after the test."""
    started = []

    def make(*args, **kwargs) -> hotswap.AutoReloader:
        reloader = hotswap.AutoReloader(*args, **kwargs)
        started.append(reloader)
        return reloader

    yield make
    for reloader in started:
        reloader.stop()


def warm(func: Callable, *args, times: int = 3000, **kwargs):
    """Calls ``func`` enough times for CPython 3.11+ to specialise its call sites; returns the last result."""
    result = None
    for _ in range(times):
        result = func(*args, **kwargs)
    return result


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, interval: float = 0.005) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()

"""pytest-hotswap: ``pytest --reload-loop`` reruns a failing test with your edits patched in, until it passes.

Mechanism: with ``--reload-loop``, an ``hotswap.AutoReloader`` watches the rootdir (or ``--reload-dir``) from
the session's start and patches every saved module in place on its own thread, test modules included. A
``pytest_runtest_call`` wrapper, innermost so that capture, logging and xfail handling stay around it, catches
a failing call phase, prints the failure as pytest would, then either opens pdb post-mortem (stdin is a
terminal; ``c`` reruns, ``q`` gives up) or waits for the next reload report (stdin is not a terminal; gives up
after ``--reload-timeout``). The rerun calls ``item.runtest()`` again with the fixture values of the first
attempt, so nothing is collected, imported or set up twice; the call phase's outcome, and so the test's
report, is the last attempt's.

Trade-off: fixtures are not set up again, so a test that consumed or mutated a fixture (an exhausted
iterator, a half-filled database) sees it as the failed attempt left it; only the recorders pytest ships are
emptied between attempts (``capsys``/``capfd`` output, ``caplog`` records, ``recwarn`` warnings). Modules
patched by hotswap run plain ``assert`` statements: pytest's assertion rewriting applies to the module as
first imported only.

Costs nothing when its options are not given: ``hotswap`` (and its native module) is imported, and a thread
started, only when ``--reload-loop`` is on.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import threading
import time
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from hotswap import AutoReloader, ReloadReport

__version__ = "0.1.0"

#: Default for ``--reload-timeout``, in seconds.
DEFAULT_TIMEOUT_S = 600.0

#: pytest's own failure for an ``async def`` test no plugin ran (pytest 8+; pytest 7 skips such tests).
_ASYNC_UNSUPPORTED = "async def functions are not natively supported"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hotswap", "hot reloading (pytest-hotswap)")
    group.addoption(
        "--reload-loop",
        action="store_true",
        default=False,
        help="when a test fails, open pdb post-mortem (or, without a terminal, wait for a save); saved edits "
        "are patched into the running process, and 'c' reruns the test with the same fixture values until it "
        "passes ('q' gives up)",
    )
    group.addoption(
        "--reload-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="directory to watch for saved edits (repeatable; default: the rootdir)",
    )
    group.addoption(
        "--reload-mode",
        choices=("changed", "module"),
        default="changed",
        help="'changed' re-runs only changed top-level statements of a saved module, 'module' re-runs all of "
        "them (default: changed)",
    )
    group.addoption(
        "--reload-timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help="without a terminal on stdin: how long a failed test waits for a reload before it is reported "
        f"as failed (default: {DEFAULT_TIMEOUT_S:g})",
    )


@pytest.hookimpl(trylast=True)  # after pytest's debugging plugin has set up --pdb (see ReloadLoop.pytest_configure)
def pytest_configure(config: pytest.Config) -> None:
    if not config.getoption("reload_loop"):
        return
    if getattr(config.option, "numprocesses", None):
        raise pytest.UsageError("--reload-loop needs the tests in this process: it cannot be combined with -n")
    if config.getoption("reload_timeout") <= 0:
        raise pytest.UsageError("--reload-timeout must be a positive number of seconds")
    config.pluginmanager.register(ReloadLoop(config), "hotswap-reload-loop")


class ReloadLoop:
    """The plugin object registered when ``--reload-loop`` is given: owns the reloader and the attempts."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        dirs = config.getoption("reload_dir") or [str(config.rootpath)]
        for d in dirs:
            if not os.path.isdir(d):
                raise pytest.UsageError(f"--reload-dir {d}: not a directory")
        self.dirs: list[str] = [os.path.abspath(d) for d in dirs]
        self.mode: str = config.getoption("reload_mode")
        self.timeout_s: float = config.getoption("reload_timeout")
        self.reloader: AutoReloader | None = None
        # nodeid -> (attempts, final outcome, how the loop ended), for the tests that failed at least once.
        self.loops: dict[str, tuple[int, str, str]] = {}
        # Set while pdb is open: the reloader's thread then shows each reload on the terminal. (Without pdb, the
        # main thread shows the reports it waits for: a line printed from the reloader's thread could race with
        # capture being resumed.)
        self._debugging = threading.Event()
        self._prompt = "(Pdb) "
        self._pdb_invoke: Any = None

    # -- session ----------------------------------------------------------------------------------------------

    def pytest_report_header(self, config: pytest.Config) -> str:
        return f"hotswap: reload loop on (watching {', '.join(self.dirs)})"

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        # Started before collection, so hotswap's import hook records the source each test module is imported
        # from (the baseline a later save is compared with).
        from hotswap import AutoReloader

        self.reloader = AutoReloader(self.dirs, mode=self.mode, on_reload=self._on_reload)

    def pytest_configure(self, config: pytest.Config) -> None:
        # With --pdb too, pytest would open a second post-mortem on a failure the loop already debugged (and, on
        # a stdin that is not a terminal, end the session at pdb's EOF). Its handler is called from here instead,
        # for every failure the loop did not take: setup and teardown errors, collection errors...
        self._pdb_invoke = config.pluginmanager.get_plugin("pdbinvoke")
        if self._pdb_invoke is not None:
            config.pluginmanager.unregister(self._pdb_invoke)

    def pytest_exception_interact(self, node: Any, call: Any, report: Any) -> None:
        if self._pdb_invoke is None:
            return
        if call.when == "call" and getattr(node, "nodeid", None) in self.loops:
            return
        self._pdb_invoke.pytest_exception_interact(node=node, call=call, report=report)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self.reloader is not None:
            self.reloader.stop()
            self.reloader = None

    def _on_reload(self, report: ReloadReport) -> None:
        # Runs on the reloader's thread. Outside pdb, output capture may be on and the line would land in
        # whatever test is running, so say nothing then.
        if self._debugging.is_set():
            sys.stdout.write("\n" + _describe(report))
            sys.stdout.write(self._prompt)  # pdb is waiting at its prompt, now scrolled away
            sys.stdout.flush()

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.loops:
            return
        terminalreporter.section("hotswap reload loop")
        for nodeid, (attempts, outcome, how) in self.loops.items():
            plural = "s" if attempts != 1 else ""
            terminalreporter.line(f"{outcome.upper()} {nodeid} after {attempts} attempt{plural}{how}")

    # -- the loop ---------------------------------------------------------------------------------------------

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, object, object]:
        # Reports of saves made before this test started are not a reason to rerun it.
        self._drain()
        try:
            return (yield)
        except BaseException as exc:  # noqa: BLE001 - inspected below, re-raised unless the loop takes it
            failure = exc
        # Outside the except block, so a later attempt's exception is not chained to this one.
        if not self._loops_on(item, failure):
            raise failure
        self._loop(item, failure)
        return None

    def _loops_on(self, item: pytest.Item, exc: BaseException) -> bool:
        if not isinstance(item, pytest.Function):
            return False  # doctests and plugin items: their rerun would not see an edited file
        if isinstance(exc, pytest.xfail.Exception) or not isinstance(exc, (Exception, pytest.fail.Exception)):
            return False  # skip, xfail(), exit, KeyboardInterrupt, SystemExit...
        if item.get_closest_marker("xfail") is not None and not self.config.option.runxfail:
            return False  # an expected failure is not something to fix
        func = getattr(item, "obj", None)
        is_async = inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func)
        # An async test no async plugin ran fails with pytest's own message: not the user's failure to fix.
        return not (is_async and _ASYNC_UNSUPPORTED in str(exc))

    def _loop(self, item: pytest.Item, failure: BaseException) -> None:
        """Reruns ``item`` until it passes; raises the last failure when the user or the timeout gives up."""
        attempt = 1
        while True:
            how = self._between_attempts(item, failure, attempt)
            if how is not None:
                self._record(item, attempt, "failed", how)
                raise failure
            attempt += 1
            self._drain()
            _clear_fixture_records(item)
            try:
                item.runtest()
            except BaseException as exc:
                _set_last_exception(exc)  # for post-mortem tools, as pytest's runner does for the first attempt
                if not self._loops_on(item, exc):
                    self._record(item, attempt, _outcome(exc))
                    raise
                failure = exc
                continue
            _set_last_exception(None)
            self._record(item, attempt, "passed")
            return

    def _record(self, item: pytest.Item, attempts: int, outcome: str, how: str = "") -> None:
        self.loops[item.nodeid] = (attempts, outcome, how)
        item.user_properties.append(("hotswap_attempts", attempts))  # for --junitxml and report hooks

    def _between_attempts(self, item: pytest.Item, failure: BaseException, attempt: int) -> str | None:
        """Shows the failure and waits for the go-ahead: None to rerun, else why the loop ends."""
        capman = self.config.pluginmanager.getplugin("capturemanager")
        if capman is not None:
            # As pytest's --pdb does: stdin back to the terminal, and this attempt's output shown now (it is
            # then no longer in the report, which holds the last attempt's output).
            capman.suspend(in_=True)
            out, err = capman.read_global_capture()
        else:
            out = err = ""
        fixture_out, fixture_err = _take_fixture_output(item)
        out, err = out + fixture_out, err + fixture_err
        # pytest-timeout (and the like) must not end the test while it waits for the user.
        if hasattr(self.config.hook, "pytest_timeout_cancel_timer"):
            self.config.hook.pytest_timeout_cancel_timer(item=item)
        try:
            self._show_failure(item, failure, attempt, out, err)
            if sys.stdin is not None and sys.stdin.isatty():
                return self._debug(failure)
            return self._wait(item, attempt)
        finally:
            sys.stdout.flush()
            if capman is not None:
                capman.resume()

    def _show_failure(self, item: pytest.Item, failure: BaseException, attempt: int, out: str, err: str) -> None:
        tw = self._writer()
        tw.line()
        for name, content in (("stdout", out), ("stderr", err)):
            if content:
                tw.sep(">", f"captured {name}")
                tw.line(content.rstrip("\n"))
        longrepr = item.repr_failure(
            pytest.ExceptionInfo.from_exc_info((type(failure), failure, failure.__traceback__))
        )
        tw.sep("_", f"{item.nodeid}: attempt {attempt} failed", red=True, bold=True)
        if isinstance(longrepr, str):
            tw.line(longrepr)
        else:
            longrepr.toterminal(tw)

    def _debug(self, failure: BaseException) -> str | None:
        tw = self._writer()
        tw.sep(">", "hotswap: edit and save, then 'c' to rerun, 'q' to give up", bold=True)
        debugger = _pdb_class(self.config)()
        self.config.hook.pytest_enter_pdb(config=self.config, pdb=debugger)
        debugger.reset()
        self._prompt = str(getattr(debugger, "prompt", self._prompt))
        self._debugging.set()
        try:
            # 3.13's pdb takes the exception itself (and can then walk its chain); older ones the traceback.
            debugger.interaction(None, failure if sys.version_info >= (3, 13) else failure.__traceback__)
        finally:
            self._debugging.clear()
        if debugger.quitting:
            return " (quit from the debugger)"
        self.config.hook.pytest_leave_pdb(config=self.config, pdb=debugger)
        tw.sep(">", "hotswap: rerunning", bold=True)
        return None

    def _wait(self, item: pytest.Item, attempt: int) -> str | None:
        assert self.reloader is not None
        tw = self._writer()
        tw.line(
            f"hotswap: waiting up to {self.timeout_s:g} s for a saved edit to rerun {item.nodeid} "
            "(stdin is not a terminal)"
        )
        deadline = time.monotonic() + self.timeout_s
        while True:
            remaining = deadline - time.monotonic()
            report = self.reloader.wait_for_reload(timeout=max(0.0, remaining)) if remaining > 0 else None
            if report is None:
                tw.line(
                    f"hotswap: no reload within {self.timeout_s:g} s after attempt {attempt} of {item.nodeid}; "
                    "giving up (a longer --reload-timeout waits longer)",
                    red=True,
                )
                return f" (no reload within {self.timeout_s:g} s)"
            tw.write(_describe(report))
            if report.ok:
                # A save often touches several modules at once: take the rest of the batch before rerunning.
                for other in self._drain():
                    tw.write(_describe(other))
                tw.line(f"hotswap: rerunning {item.nodeid} (attempt {attempt + 1})")
                return None
            # A broken save keeps the old code: wait for the next one.

    def _drain(self) -> list[ReloadReport]:
        """Takes the reload reports not seen yet."""
        reports: list[ReloadReport] = []
        while self.reloader is not None:
            report = self.reloader.wait_for_reload(timeout=0)
            if report is None:
                break
            reports.append(report)
        return reports

    def _writer(self) -> Any:
        reporter = self.config.pluginmanager.getplugin("terminalreporter")
        if reporter is not None:
            return reporter._tw  # the reporter's writer, as pytest's own --pdb uses
        from _pytest._io import TerminalWriter  # -p no:terminal: a writer of our own

        return TerminalWriter(sys.stdout)


def _fixture_values(item: pytest.Item) -> list[Any]:
    return list(getattr(item, "funcargs", {}).values())  # every fixture of the test, dependencies included


def _take_fixture_output(item: pytest.Item) -> tuple[str, str]:
    """What the failed attempt printed into ``capsys``/``capfd``-like fixtures (and is then gone from them).

    Without this, the rerun's ``readouterr()`` would return the failed attempt's output along with its own.
    """
    out = err = ""
    for value in _fixture_values(item):
        if isinstance(value, pytest.CaptureFixture):
            o, e = value.readouterr()
            out += o.decode(errors="replace") if isinstance(o, bytes) else o
            err += e.decode(errors="replace") if isinstance(e, bytes) else e
    return out, err


def _clear_fixture_records(item: pytest.Item) -> None:
    """Empties ``caplog`` and ``recwarn``, so the rerun sees only its own log records and warnings."""
    for value in _fixture_values(item):
        if isinstance(value, (pytest.LogCaptureFixture, pytest.WarningsRecorder)):
            value.clear()


def _outcome(exc: BaseException) -> str:
    """How pytest will count a call phase that raised ``exc`` and is not looped on."""
    if isinstance(exc, pytest.skip.Exception):
        return "skipped"
    if isinstance(exc, pytest.xfail.Exception):
        return "xfailed"
    if isinstance(exc, (Exception, pytest.fail.Exception)):
        return "failed"
    return "interrupted"


def _set_last_exception(exc: BaseException | None) -> None:
    names = ("last_type", "last_value", "last_traceback", "last_exc")
    if exc is None:
        for name in names:
            if hasattr(sys, name):
                delattr(sys, name)
        return
    sys.last_type, sys.last_value = type(exc), exc
    sys.last_traceback = exc.__traceback__
    if sys.version_info >= (3, 12):
        sys.last_exc = exc


def _describe(report: ReloadReport) -> str:
    """``hotswap: <summary>`` and, for a reload that failed, the user's traceback; ends with a newline."""
    text = f"hotswap: {report.summary()}\n"
    if not report.ok and report.error:
        text += report.error.rstrip() + "\n"
    return text


def _pdb_class(config: pytest.Config) -> Any:
    """The debugger class: ``--pdbcls=module:Class`` when given, else ``pdb.Pdb``."""
    spec = getattr(config.option, "usepdb_cls", None)
    if spec:
        modname, classname = spec
        obj: Any = importlib.import_module(modname)
        for part in classname.split("."):
            obj = getattr(obj, part)
        return obj
    import pdb  # noqa: T100 - the debugger is the point of this plugin

    return pdb.Pdb

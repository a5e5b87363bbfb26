"""pytest-hotswap: ``pytest --reload-loop`` reruns a failing test with your edits patched in, until it passes.

Mechanism: with ``--reload-loop``, an ``hotswap.AutoReloader`` watches the rootdir (or ``--reload-dir``) from
the session's start and patches every saved module in place on its own thread, test modules and conftests
included. A ``pytest_runtest_call`` wrapper, innermost so that capture, logging and xfail handling stay around it,
catches a failing call phase (for a ``unittest.TestCase`` test, the failure unittest recorded), prints it as
pytest would, then either opens pdb post-mortem (stdin is a terminal; ``c`` reruns, ``q`` gives up) or waits for
the next reload report (stdin is not a terminal; gives up after ``--reload-timeout``). The call phase's outcome,
and so the test's report, is the last attempt's.

Before each rerun (``_Rerun``):

- the test item is made again from the patched module or class through ``pytest_pycollect_makeitem`` (so an
  edited ``@pytest.mark.parametrize``, ``pytest_generate_tests`` or signature gives the new parameters and fixture
  closure); if its id is gone, the loop says so and lists the new ids;
- a fixture whose function changed since the failed attempt (compared by what its code does, not where it sits;
  functions its closure holds count, which covers ``setup_method``, ``setUpClass`` and the like) is torn down with
  ``FixtureDef.finish``, which also tears down every fixture that depends on it, and set up again at its own
  scope; a fixture whose set-up failed is always set up again. Every other fixture keeps its value.
- what cannot take effect (a changed ``@pytest.fixture(...)`` scope or params, a fixture pytest never collected)
  is said in one line.

Trade-off: this uses pytest internals (``FixtureDef.finish``/``cached_result``, the item's ``_request`` and its
``_fixture_defs``, ``session._setupstate``), checked on pytest 8.x and 9.x; without them the rerun reuses every
fixture value, as before. A test that consumed or mutated an unchanged fixture (an exhausted iterator, a
half-filled database) sees it as the failed attempt left it; only the recorders pytest ships are emptied between
attempts (``capsys``/``capfd`` output, ``caplog`` records, ``recwarn`` warnings). Modules patched by hotswap run
plain ``assert`` statements: pytest's assertion rewriting applies to the module as first imported only.

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
import types
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from hotswap import AutoReloader, ReloadReport

__version__ = "0.1.0"

#: Default for ``--reload-timeout``, in seconds.
DEFAULT_TIMEOUT_S = 600.0

_PYTEST_MAJOR = int(pytest.__version__.split(".")[0])

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
            result = yield
        except BaseException as exc:  # noqa: BLE001 - inspected below, re-raised unless the loop takes it
            failure: BaseException | None = exc
        else:
            failure = _recorded_failure(item)  # unittest records its failures instead of raising them
            if failure is None:
                return result
        # Outside the except block, so a later attempt's exception is not chained to this one.
        if self._loops_on(item, failure):
            failure = self._loop(item, failure)
            if failure is None:
                return None
        if failure is not _recorded_failure(item):
            raise failure
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

    def _loop(self, item: pytest.Item, failure: BaseException) -> BaseException | None:
        """Reruns ``item`` until it passes (None) or the loop ends: then the last failure, for pytest to report."""
        rerun = _Rerun(item, self._say)
        attempt = 1
        while True:
            rerun.remember_fixtures()
            how = self._between_attempts(rerun, failure, attempt)
            if how is not None:
                self._record(item, rerun.item, attempt, "failed", how)
                return failure
            attempt += 1
            self._drain()
            _clear_fixture_records(rerun.item)
            _forget_recorded_failures(rerun.item)
            try:
                rerun.set_up()
                rerun.item.runtest()
            except BaseException as exc:  # noqa: BLE001 - the attempt's failure, handled below
                error: BaseException | None = exc
            else:
                error = _recorded_failure(rerun.item)
            if error is None:
                _set_last_exception(None)
                self._record(item, rerun.item, attempt, "passed")
                return None
            _set_last_exception(error)  # for post-mortem tools, as pytest's runner does for the first attempt
            failure = error
            if not self._loops_on(rerun.item, error):
                self._record(item, rerun.item, attempt, _outcome(error))
                return error

    def _record(self, item: pytest.Item, ran: pytest.Item, attempts: int, outcome: str, how: str = "") -> None:
        if ran.nodeid != item.nodeid:  # the user chose one of the ids an edited parametrize gave
            how += f" (ran as {ran.nodeid})"
        self.loops[item.nodeid] = (attempts, outcome, how)
        item.user_properties.append(("hotswap_attempts", attempts))  # for --junitxml and report hooks

    def _between_attempts(self, rerun: _Rerun, failure: BaseException, attempt: int) -> str | None:
        """Shows the failure and waits for the go-ahead: None to rerun, else why the loop ends."""
        item = rerun.item
        capman = self._capman()
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
        interactive = sys.stdin is not None and sys.stdin.isatty()
        try:
            self._show_failure(item, failure, attempt, out, err)
            while True:
                how = self._debug(failure) if interactive else self._wait(item, attempt)
                if how is not None:
                    return how
                # The test as the patched source now defines it; capture is still off, so a choice can be asked.
                new_ids = rerun.remake_item()
                if new_ids is None:
                    return None
                if interactive and self._choose(rerun, new_ids):
                    return None
                if not interactive:
                    self._writer().line("hotswap: waiting for another save")
        finally:
            sys.stdout.flush()
            if capman is not None:
                capman.resume()

    def _choose(self, rerun: _Rerun, new_ids: list[str]) -> bool:
        """Offers the ids the edited test has now; True when the user picked one to rerun."""
        if not new_ids:
            return False
        for number, nodeid in enumerate(new_ids, 1):
            self._writer().line(f"  {number}: {nodeid}")
        try:
            answer = input(f"hotswap: rerun which (1-{len(new_ids)}; Enter goes back to the debugger)? ").strip()
        except EOFError:
            return False
        if answer.isdigit() and 1 <= int(answer) <= len(new_ids):
            rerun.choose(new_ids[int(answer) - 1])
            self._writer().sep(">", "hotswap: rerunning", bold=True)
            return True
        return False

    def _say(self, line: str) -> None:
        """Writes one line to the terminal, also while a test's output is captured."""
        capman = self._capman()
        if capman is None:
            self._writer().line(line)
            return
        with capman.global_and_fixture_disabled():
            self._writer().line(line)

    def _capman(self) -> Any:
        return self.config.pluginmanager.getplugin("capturemanager")

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


class _Rerun:
    """What the next attempt of one looped test runs: the test item, made again from the patched source when
    that changed it, and its fixtures, set up again where their code changed."""

    def __init__(self, item: pytest.Item, say: Callable[[str], None]) -> None:
        self.item = item
        self._say = say
        self._next: pytest.Item | None = None  # the item made from the edited source, when it is another test
        self._candidates: dict[str, pytest.Item] = {}  # nodeid -> item, when the test's id is gone
        # id(FixtureDef) -> (FixtureDef, what its code did when last seen); the FixtureDef is kept alive with it.
        self._seen: dict[int, tuple[Any, tuple[Any, ...]]] = {}
        # id(FixtureDef) -> its @pytest.fixture(...) arguments in the source when first seen (None: not found).
        self._markers: dict[int, Any] = {}
        self._said: set[str] = set()
        # The pytest internals this uses are those of pytest 8 and 9 (pytest 7 resolves fixtures differently and
        # reports a recursive dependency): with an older pytest, every fixture value is reused.
        self._can_rebuild = _PYTEST_MAJOR >= 8 and hasattr(getattr(item, "_request", None), "_fixture_defs")

    # -- the test item ----------------------------------------------------------------------------------------

    def remake_item(self) -> list[str] | None:
        """Makes the test again from its patched module or class: None when it can rerun, else the ids it has now.

        The old item is kept when the new one is the same test (same function, parameters and fixture closure), so
        its fixture values are kept too; otherwise the new one replaces it at the next ``set_up``.
        """
        item = self.item
        self._next = None
        self._candidates = {}
        parent = item.parent
        if not self._can_rebuild or getattr(item, "nofuncargs", False):
            return None  # unittest: no parameters, and the test method is patched in place
        if not isinstance(parent, (pytest.Module, pytest.Class)) or not isinstance(item, pytest.Function):
            return None
        name = item.originalname
        try:
            obj = getattr(parent.obj, name, None)
            made = [] if obj is None else parent.ihook.pytest_pycollect_makeitem(collector=parent, name=name, obj=obj)
            items = [i for i in (made if isinstance(made, list) else [made]) if isinstance(i, pytest.Item)]
        except Exception as exc:  # noqa: BLE001 - the edit is broken: say so and wait for another save
            self._say(f"hotswap: {item.nodeid} cannot be collected from the edited source: {_one_line(exc)}")
            return []
        new = next((i for i in items if i.name == item.name), None)
        if new is None:
            self._candidates = {i.nodeid: i for i in items}
            ids = ", ".join(self._candidates) or f"no test named {name}"
            self._say(f"hotswap: {item.nodeid} is no longer collected after the edit; now: {ids}")
            return list(self._candidates)
        if not _same_test(item, new):
            self._next = new
            self._report_stale_marks(item, new)
        return None

    def choose(self, nodeid: str) -> None:
        """Runs ``nodeid`` (one of the ids ``remake_item`` returned) from the next attempt on."""
        self._next = self._candidates[nodeid]

    def _report_stale_marks(self, old: pytest.Item, new: pytest.Item) -> None:
        """Says which of the edited test's marks cannot take effect: those pytest evaluates before the call."""
        stale = sorted(_mark_names(old) ^ _mark_names(new))
        if stale:
            self._cannot(
                f"marks {', '.join(stale)} of {old.nodeid} changed: pytest evaluates them before the "
                "first attempt, so they apply in the next run"
            )

    def _cannot(self, line: str) -> None:
        if line not in self._said:
            self._said.add(line)
            self._say(f"hotswap: cannot take effect: {line}")

    # -- fixtures ---------------------------------------------------------------------------------------------

    def remember_fixtures(self) -> None:
        """Records what the code of each fixture of the test does now (those not seen yet)."""
        for fixturedef in _fixture_defs(self.item):
            self._seen.setdefault(id(fixturedef), (fixturedef, _fixture_key(fixturedef)))
            self._markers.setdefault(id(fixturedef), _fixture_marker(fixturedef))

    def set_up(self) -> None:
        """Sets the next attempt up: changed fixtures (and their dependents) anew, the new item if there is one."""
        if not self._can_rebuild:
            changed = ", ".join(repr(d.argname) for d in _fixture_defs(self.item) if self._changed(d))
            if changed:
                self._cannot(f"fixtures {changed} changed, but this pytest cannot set them up again (pytest 8 can)")
            return
        self._report_stale_definitions()
        self._tear_down_changed()
        new, self._next = self._next, None
        try:
            if new is not None:
                self._switch_to(new)
            else:
                request = self.item._request
                for name, fixturedef in list(request._fixture_defs.items()):
                    if fixturedef.cached_result is None:  # torn down above: set up again below
                        del request._fixture_defs[name]
                        self.item.funcargs.pop(name, None)
                request._fillfixtures()
        except pytest.FixtureLookupError as exc:
            self._cannot(
                f"{self.item.nodeid} requests fixture {exc.argname!r}, which pytest did not collect "
                "(a fixture added after pytest started is known in the next run)"
            )
            raise
        finally:
            for fixturedef in _fixture_defs(self.item):
                self._seen[id(fixturedef)] = (fixturedef, _fixture_key(fixturedef))

    def _changed(self, fixturedef: Any) -> bool:
        cached = fixturedef.cached_result
        if cached is None:
            return False  # not set up: its next set-up runs the new code anyway
        if cached[2] is not None:
            return True  # its set-up failed: try again
        seen = self._seen.get(id(fixturedef))
        return seen is not None and seen[1] != _fixture_key(fixturedef)

    def _tear_down_changed(self) -> None:
        defs = _fixture_defs(self.item)
        changed = [d for d in defs if self._changed(d)]
        if not changed:
            return
        live = [d for d in defs if d.cached_result is not None]
        for fixturedef in changed:
            try:
                # Runs its finalizers: its own teardown, and first that of every fixture set up from its value.
                fixturedef.finish(self.item._request)
            except Exception as exc:  # noqa: BLE001 - a broken teardown must not keep the new code out
                self._say(
                    f"hotswap: teardown of fixture {fixturedef.argname!r} failed, setting it up again "
                    f"anyway: {_one_line(exc)}"
                )
        names = [f"{d.argname} ({d.scope})" for d in changed]
        names += [
            f"{d.argname} ({d.scope}, uses a changed one)" for d in live if d.cached_result is None and d not in changed
        ]
        self._say(f"hotswap: fixtures set up again: {', '.join(names)}")

    def _switch_to(self, new: pytest.Item) -> None:
        """Replaces the failed item by ``new`` in pytest's set-up stack: the failed one's function-scoped
        fixtures are torn down, the shared scopes stay, and ``new`` is set up as pytest sets up any test."""
        state = self.item.session._setupstate
        try:
            state.teardown_exact(new)
        except Exception as exc:  # noqa: BLE001 - the failed attempt's teardown: say it, go on with the new test
            self._say(f"hotswap: teardown of {self.item.nodeid} failed: {_one_line(exc)}")
        self.item = new
        state.setup(new)

    def _report_stale_definitions(self) -> None:
        """Says which fixtures' ``@pytest.fixture(...)`` arguments changed: pytest keeps those it collected."""
        for fixturedef in _fixture_defs(self.item):
            then, now = self._markers.get(id(fixturedef)), _fixture_marker(fixturedef)
            why = _marker_changes(then, now) if then is not None and now is not None else None
            if then is not None and now is None:
                why = "its definition is gone from the source"
            if why:
                self._cannot(
                    f"fixture {fixturedef.argname!r}: {why}; pytest keeps what it collected until the "
                    "next run (its body's edits do apply)"
                )


def _same_test(old: pytest.Item, new: pytest.Item) -> bool:
    """Whether ``new``, made from the edited source, is the test ``old`` ran: then ``old`` and its fixtures stay."""
    if getattr(new.obj, "__func__", new.obj) is not getattr(old.obj, "__func__", old.obj):
        return False  # decorators ran again (a changed parametrize or mark): the function was made anew
    old_spec, new_spec = getattr(old, "callspec", None), getattr(new, "callspec", None)
    if (old_spec is None) != (new_spec is None):
        return False
    if old_spec is not None and new_spec is not None:
        if old_spec.params.keys() != new_spec.params.keys():
            return False
        if any(old_spec.params[k] is not new_spec.params[k] for k in old_spec.params):
            return False
    return bool(old._fixtureinfo.names_closure == new._fixtureinfo.names_closure)


def _mark_names(item: pytest.Item) -> set[str]:
    """Names of the marks pytest evaluates at set-up (those a rerun cannot apply)."""
    return {m.name for m in item.iter_markers()} & {"skip", "skipif", "xfail", "filterwarnings"}


def _fixture_defs(item: pytest.Item) -> list[Any]:
    """Every FixtureDef the test uses: its fixture closure (overridden ones included) and those it requested
    while it ran (``request.getfixturevalue``)."""
    found: dict[int, Any] = {}
    info = getattr(item, "_fixtureinfo", None)
    for defs in getattr(info, "name2fixturedefs", {}).values():
        for fixturedef in defs:
            found[id(fixturedef)] = fixturedef
    for fixturedef in getattr(getattr(item, "_request", None), "_fixture_defs", {}).values():
        found[id(fixturedef)] = fixturedef
    return [d for d in found.values() if type(d).__name__ != "RequestFixtureDef"]


def _fixture_key(fixturedef: Any) -> tuple[Any, ...]:
    """What a fixture's code does: that of its function, what it wraps, and functions its closure holds."""
    return tuple(_function_key(f) for f in _functions_of(fixturedef.func))


def _functions_of(func: object) -> list[types.FunctionType]:
    """``func``, the functions it wraps, and (one level) the functions its closure holds.

    pytest's own fixtures for ``setup_method``, ``setup_module`` and ``setUpClass`` hold the user's function in
    their closure: an edit of it changes that fixture.
    """
    found: list[types.FunctionType] = []

    def visit(obj: object, depth: int) -> None:
        obj = getattr(obj, "__func__", obj)  # bound methods and class methods
        if not isinstance(obj, types.FunctionType) or any(obj is f for f in found):
            return
        found.append(obj)
        visit(getattr(obj, "__wrapped__", None), depth)
        for cell in (obj.__closure__ or ()) if depth else ():
            try:
                visit(cell.cell_contents, depth - 1)
            except ValueError:  # an empty cell
                pass

    visit(func, 1)
    return found


def _function_key(func: types.FunctionType) -> tuple[Any, ...]:
    defaults = tuple(map(id, func.__defaults__ or ()))
    kwdefaults = tuple(sorted((k, id(v)) for k, v in (func.__kwdefaults__ or {}).items()))
    return _code_key(func.__code__), defaults, kwdefaults


def _code_key(code: types.CodeType) -> tuple[Any, ...]:
    """What a code object does, leaving out where it sits: hotswap gives a definition that only moved new line
    numbers, which must not count as a change (a session fixture is not rebuilt because lines were added above
    it)."""
    consts = tuple(_code_key(c) if isinstance(c, types.CodeType) else (type(c), repr(c)) for c in code.co_consts)
    return (
        code.co_code,
        code.co_names,
        code.co_varnames,
        code.co_freevars,
        code.co_cellvars,
        code.co_argcount,
        code.co_posonlyargcount,
        code.co_kwonlyargcount,
        code.co_flags,
        consts,
    )


def _fixture_marker(fixturedef: Any) -> Any:
    """The arguments of the ``@pytest.fixture(...)`` that the fixture's module binds now: None when there is none
    (pytest's own fixtures, made at run time) or the definition is gone from the source."""
    func = getattr(fixturedef.func, "__func__", fixturedef.func)
    holder: Any = sys.modules.get(getattr(func, "__module__", None) or "")
    qualname = getattr(func, "__qualname__", "")
    if holder is None or "<locals>" in qualname:
        return None
    for part in qualname.split("."):
        holder = vars(holder).get(part) if hasattr(holder, "__dict__") else None
    # pytest 8.4+ wraps a fixture in a FixtureFunctionDefinition; earlier ones mark the function itself.
    return getattr(holder, "_fixture_function_marker", None) or getattr(holder, "_pytestfixturefunction", None)


def _marker_changes(then: Any, now: Any) -> str:
    """What changed between two ``@pytest.fixture(...)`` argument sets, e.g. ``scope 'function' -> 'module'``."""
    changes = []
    for field in ("scope", "params", "ids", "autouse", "name"):
        before, after = getattr(then, field, None), getattr(now, field, None)
        try:
            differs = bool(before != after)
        except Exception:  # noqa: BLE001 - values that refuse == (arrays): compare identity
            differs = before is not after
        if differs and field in ("scope", "name") and not callable(before) and not callable(after):
            changes.append(f"{field} {before!r} -> {after!r}")
        elif differs:
            changes.append(f"{field} changed")
    return ", ".join(changes)


def _recorded_failure(item: pytest.Item) -> BaseException | None:
    """The failure unittest recorded for a ``unittest.TestCase`` test (its call phase does not raise)."""
    excinfos = item.__dict__.get("_excinfo")
    return excinfos[0].value if excinfos else None


def _forget_recorded_failures(item: pytest.Item) -> None:
    if item.__dict__.get("_excinfo"):
        item.__dict__["_excinfo"] = []


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


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

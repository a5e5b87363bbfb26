"""End-to-end tests of ``pytest --reload-loop``: pytest runs in a subprocess on a small project.

Without a terminal on stdin the plugin waits for a reload report, so ``run_editing`` reads the inner run's output
and saves the next edit each time the run says it waits (never after a guessed sleep). The interactive path
(``interact``) runs pytest in a pseudo-terminal with pexpect, saves edits and answers pdb's prompt.

``pytester`` is enabled here rather than in a ``conftest.py`` beside this file: ``make test`` collects ``tests/``
and ``pytest_plugin/tests/`` in one run, where a second rootless ``conftest`` module would shadow the one
``tests/`` imports helpers from (``from conftest import warm``).
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time

import pexpect
import pytest

pytest_plugins = ["pytester"]

#: Bound on each inner pytest run (the outer per-test timeout is 120 s).
RUN_TIMEOUT_S = 90
#: Bound on each pexpect wait for a prompt or a line.
EXPECT_TIMEOUT_S = 60
#: Every inner run leaves Hypothesis's pytest plugin out: installed for hotswap's own suite, its import was more
#: than half of each inner pytest's start (0.55 of 0.9 CPU-s), and no inner project uses it.
INNER_OPTIONS = ("-p", "no:hypothesispytest")

# The inner project's conftest: `counted` counts its set-ups (a rerun must not set an unchanged fixture up again).
INNER_CONFTEST = """
import os
import sys
import threading

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SETUPS = []


@pytest.fixture
def counted():
    value = object()
    SETUPS.append(value)
    return value
"""

APP = "def value():\n    return 1\n"
#: The test module most tests run: it fails until ``app.value()`` returns 2.
VALUE_TEST = """
import app

def test_value():
    assert app.value() == 2
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini("[pytest]\nfilterwarnings = error\n")
    pytester.makeconftest(INNER_CONFTEST)
    pytester.makepyfile(app=APP)
    return pytester


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(*INNER_OPTIONS, *args, timeout=RUN_TIMEOUT_S)


#: One edit: in file NAME (relative to the project), replace the text OLD by NEW (each must be there).
Edit = tuple[str, str, str]


def apply_edit(pytester: pytest.Pytester, edit: Edit) -> None:
    name, old, new = edit
    path = pytester.path / name
    source = path.read_text()
    assert old in source, f"{old!r} is not in {name}"
    path.write_text(source.replace(old, new))


def run_editing(pytester: pytest.Pytester, edits: list[Edit], *args: str) -> pytest.RunResult:
    """Runs pytest without a terminal on stdin; each time the loop says it waits for a save, saves the next edit.

    The edits left over (the run passed before they were needed) are an error: every one must be seen to matter.
    """
    pending = list(edits)
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *INNER_OPTIONS, "--reload-loop", *args]
    env = {**os.environ, "COLUMNS": "120", "PYTEST_ADDOPTS": ""}
    start = time.monotonic()
    proc = subprocess.Popen(
        command,
        cwd=pytester.path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    reader = threading.Thread(target=read, name="inner-output", daemon=True)
    reader.start()
    out: list[str] = []
    try:
        while True:
            try:
                line = lines.get(timeout=max(0.0, start + RUN_TIMEOUT_S - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"pytest still running after {RUN_TIMEOUT_S} s; its output:\n" + "\n".join(out))
            if line is None:
                break
            out.append(line)
            if line.startswith("hotswap: waiting up to") and pending:
                apply_edit(pytester, pending.pop(0))
        ret = proc.wait(timeout=RUN_TIMEOUT_S)
    finally:
        proc.kill()
        proc.wait()
        reader.join(timeout=EXPECT_TIMEOUT_S)
        assert proc.stdout is not None
        proc.stdout.close()
    result = pytest.RunResult(ret, out, [], time.monotonic() - start)
    assert not pending, f"edits never saved: {pending}\n" + "\n".join(out)
    return result


def test_application_fixed_while_waiting_passes_on_attempt_two(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_app="""
        import app
        from conftest import SETUPS

        def test_value(counted):
            assert app.value() == 2
            assert SETUPS == [counted]  # the unchanged fixture was not set up again

        def test_next():
            assert len(SETUPS) == 1
        """
    )
    result = run_editing(project, [("app.py", "return 1", "return 2")], "--reload-timeout=60", "--junitxml=report.xml")
    result.stdout.fnmatch_lines(
        [
            "hotswap: reload loop on (watching *)",
            "*test_app.py::test_value: attempt 1 failed*",
            "E       assert 1 == 2",
            "hotswap: waiting up to 60 s for a saved edit to rerun test_app.py::test_value *",
            "hotswap: app: patched 1 *",
            "hotswap: rerunning test_app.py::test_value (attempt 2)",
            "*= hotswap reload loop =*",
            "PASSED test_app.py::test_value after 2 attempts",
            "*= 2 passed in *",
        ]
    )
    assert result.ret == 0
    assert '<property name="hotswap_attempts" value="2"' in (project.path / "report.xml").read_text()


def test_edited_test_function_passes_on_attempt_two(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_self="""
        def test_arithmetic():
            assert 1 + 1 == 3
        """
    )
    result = run_editing(project, [("test_self.py", "1 + 1 == 3", "1 + 1 == 2")], "--reload-timeout=60")
    result.stdout.fnmatch_lines(
        [
            "*test_self.py::test_arithmetic: attempt 1 failed*",
            "hotswap: test_self: patched 1 *",
            "hotswap: rerunning test_self.py::test_arithmetic (attempt 2)",
            "PASSED test_self.py::test_arithmetic after 2 attempts",
            "*= 1 passed in *",
        ]
    )
    assert result.ret == 0
    assert "1 + 1 == 2" in (project.path / "test_self.py").read_text()


def test_gives_up_after_the_reload_timeout(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_app="""
        import app

        def test_value():
            assert app.value() == 2

        def test_next():
            pass
        """
    )
    result = run(project, "--reload-loop", "--reload-timeout=0.5")
    result.stdout.fnmatch_lines(
        [
            "hotswap: waiting up to 0.5 s for a saved edit to rerun test_app.py::test_value *",
            "hotswap: no reload within 0.5 s after attempt 1 of test_app.py::test_value; giving up *",
            "*= FAILURES =*",
            "E       assert 1 == 2",
            "*= hotswap reload loop =*",
            "FAILED test_app.py::test_value after 1 attempt (no reload within 0.5 s)",
            "*= 1 failed, 1 passed in *",
        ]
    )
    assert result.ret == 1


def test_broken_save_keeps_waiting_for_a_good_one(project: pytest.Pytester) -> None:
    project.makepyfile(test_app=VALUE_TEST)
    result = run_editing(project, [("app.py", "def value():", "def value(:")], "--reload-timeout=5")
    result.stdout.fnmatch_lines(
        [
            "hotswap: app: reload failed, old code kept: SyntaxError*",
            "hotswap: no reload within 5 s after attempt 1 of test_app.py::test_value; giving up *",
            "FAILED test_app.py::test_value after 1 attempt (no reload within 5 s)",
        ]
    )
    assert result.ret == 1


def test_without_the_option_nothing_is_started(project: pytest.Pytester) -> None:
    project.makeconftest(
        INNER_CONFTEST
        + """
def pytest_sessionfinish(session):
    with open(os.path.join(HERE, "after-run.txt"), "w") as f:
        f.write(repr(sorted(m for m in sys.modules if m.split(".")[0] == "hotswap")))
        f.write(repr([t.name for t in threading.enumerate()]))
"""
    )
    project.makepyfile(
        test_plain="""
        import sys
        import threading

        def test_loaded_but_idle(pytestconfig):
            assert pytestconfig.pluginmanager.has_plugin("hotswap")  # the entry point is active...
            assert pytestconfig.pluginmanager.get_plugin("hotswap-reload-loop") is None
            assert "hotswap" not in sys.modules  # ...and imported nothing
            assert "hotswap._native" not in sys.modules
            assert [t.name for t in threading.enumerate()] == ["MainThread"]

        def test_failure_is_plain():
            assert 1 == 2
        """
    )
    result = run(project, "--reload-timeout=60")
    result.stdout.fnmatch_lines(["*= 1 failed, 1 passed in *"])
    result.stdout.no_fnmatch_line("*reload loop*")
    result.stdout.no_fnmatch_line("*attempt*")
    assert result.ret == 1
    assert (project.path / "after-run.txt").read_text() == "[]['MainThread']"


def test_output_capture_is_restored_after_the_loop(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_app="""
        import sys
        import app

        def test_value():
            print("attempt output of", app.value())
            assert app.value() == 2

        def test_later(capsys):
            print("later output via capsys")
            assert capsys.readouterr().out == "later output via capsys\\n"

        def test_last():
            print("LAST OUTPUT")
            sys.stderr.write("LAST ERROR\\n")
        """
    )
    result = run_editing(project, [("app.py", "return 1", "return 2")], "--reload-timeout=60", "-rP")
    result.stdout.fnmatch_lines(
        [
            # The failed attempt's output is shown before waiting; the report holds the last attempt's.
            "*> captured stdout >*",
            "attempt output of 1",
            "*test_app.py::test_value: attempt 1 failed*",
            "*= PASSES =*",
            "*_ test_value _*",
            "*- Captured stdout call -*",
            "attempt output of 2",
            "*_ test_last _*",
            "*- Captured stdout call -*",
            "LAST OUTPUT",
            "*- Captured stderr call -*",
            "LAST ERROR",
            "*= 3 passed in *",
        ]
    )
    # Printed once each: captured into their reports, not leaked to the terminal as they ran.
    assert result.stdout.str().count("LAST OUTPUT") == 1
    assert result.stdout.str().count("attempt output of 2") == 1
    assert result.ret == 0


ASYNC_RUNNER = '''

import asyncio
import inspect


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    """A minimal async plugin, as pytest-asyncio is one: runs coroutine tests in an event loop."""
    if inspect.iscoroutinefunction(pyfuncitem.obj):
        names = pyfuncitem._fixtureinfo.argnames
        asyncio.run(pyfuncitem.obj(**{n: pyfuncitem.funcargs[n] for n in names}))
        return True
    return None
'''

ASYNC_TEST = """
import app

async def test_async_value():
    assert app.value() == 2
"""


def test_async_test_is_rerun_when_an_async_plugin_runs_it(project: pytest.Pytester) -> None:
    project.makeconftest(INNER_CONFTEST + ASYNC_RUNNER)
    project.makepyfile(test_async=ASYNC_TEST)
    result = run_editing(project, [("app.py", "return 1", "return 2")], "--reload-timeout=60")
    result.stdout.fnmatch_lines(
        [
            "*test_async.py::test_async_value: attempt 1 failed*",
            "hotswap: rerunning test_async.py::test_async_value (attempt 2)",
            "PASSED test_async.py::test_async_value after 2 attempts",
            "*= 1 passed in *",
        ]
    )
    assert result.ret == 0


def test_async_test_without_an_async_plugin_is_left_alone(project: pytest.Pytester) -> None:
    project.makepyfile(test_async=ASYNC_TEST)
    result = run(project, "--reload-loop", "--reload-timeout=60")
    result.stdout.no_fnmatch_line("*attempt 1 failed*")
    result.stdout.no_fnmatch_line("*waiting up to*")
    assert result.ret != 0 or "skipped" in result.stdout.str()  # pytest 8+ fails it, pytest 7 skips it
    result.stdout.fnmatch_lines(["*async def functions are not natively supported*"])


# -- the interactive path, in a pseudo-terminal --------------------------------------------------------------------


def spawn(pytester: pytest.Pytester, *args: str) -> pexpect.spawn:
    child = pexpect.spawn(
        sys.executable,
        ["-m", "pytest", "-p", "no:cacheprovider", *INNER_OPTIONS, *args],
        cwd=str(pytester.path),
        env={**os.environ, "COLUMNS": "120", "TERM": "dumb", "PYTEST_ADDOPTS": ""},
        encoding="utf-8",
        timeout=EXPECT_TIMEOUT_S,
        dimensions=(40, 200),
    )
    return child


def finish(child: pexpect.spawn) -> str:
    rest = child.read()  # to EOF, bounded by the spawn's timeout
    child.close()
    return rest


#: One step of ``interact``: ("expect", text), ("match", regular expression), ("save", edit) or ("send", line).
Step = tuple[str, "Edit | str"]


def edit_and_continue(test: str, edit: Edit) -> list[Step]:
    """The steps of one round at pdb's prompt: attempt 1 of ``test`` failed, ``edit`` is saved and patched in, and
    ``c`` is typed."""
    module = edit[0].removesuffix(".py")
    return [
        ("expect", f"{test}: attempt 1 failed"),
        ("expect", "(Pdb) "),
        ("save", edit),
        ("expect", f"hotswap: {module}: patched"),
        ("send", "c"),
    ]


def interact(pytester: pytest.Pytester, steps: list[Step], *args: str) -> tuple[str, int]:
    """Runs ``pytest --reload-loop`` in a pseudo-terminal: ``("expect", text)`` waits for text on the screen,
    ``("match", pattern)`` for a regular expression, ``("save", edit)`` saves an edit, ``("send", line)`` types
    a line. Returns the rest of the output and the exit status."""
    child = spawn(pytester, "--reload-loop", *args)
    try:
        for action, what in steps:
            if action == "expect":
                assert isinstance(what, str)
                child.expect_exact(what)
            elif action == "match":
                assert isinstance(what, str)
                child.expect(what)
            elif action == "save":
                assert isinstance(what, tuple)
                apply_edit(pytester, what)
            else:
                assert isinstance(what, str)
                child.sendline(what)
        rest = finish(child)
    finally:
        child.terminate(force=True)
    return rest, child.exitstatus


def test_interactive_edit_then_continue_passes(project: pytest.Pytester) -> None:
    project.makepyfile(test_app=VALUE_TEST)
    rest, status = interact(
        project,
        [
            ("expect", "test_app.py::test_value: attempt 1 failed"),
            ("expect", "assert 1 == 2"),
            ("expect", "'c' to rerun, 'q' to give up"),
            ("expect", "(Pdb) "),
            ("send", "p app.value()"),
            ("expect", "1"),
            ("expect", "(Pdb) "),
            ("save", ("app.py", "return 1", "return 2")),
            ("expect", "hotswap: app: patched 1"),
            ("send", "c"),
            ("expect", "hotswap: rerunning"),
            ("expect", "PASSED test_app.py::test_value after 2 attempts"),
        ],
    )
    assert "1 passed" in rest
    assert status == 0


def test_interactive_quit_reports_the_failure(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_app="""
        import app

        def test_value():
            assert app.value() == 2

        def test_next():
            print("NEXT RAN")
        """
    )
    rest, status = interact(
        project,
        [
            ("expect", "test_app.py::test_value: attempt 1 failed"),
            ("expect", "(Pdb) "),
            ("send", "q"),
            ("expect", "FAILED test_app.py::test_value after 1 attempt (quit from the debugger)"),
        ],
        "-rP",
    )
    assert "1 failed, 1 passed" in rest
    assert status == 1


def test_reload_dir_and_mode_reach_the_reloader(project: pytest.Pytester) -> None:
    src = project.mkpydir("src")
    other = project.mkdir("other")
    project.makepyfile(
        test_options="""
        import os

        def test_reloader(pytestconfig):
            loop = pytestconfig.pluginmanager.get_plugin("hotswap-reload-loop")
            assert loop.reloader.running
            assert loop.reloader.mode == "module"
            assert loop.reloader.roots == tuple(os.path.realpath(d) for d in ("src", "other"))
        """
    )
    result = run(project, "--reload-loop", "--reload-dir", str(src), "--reload-dir", str(other), "--reload-mode=module")
    result.stdout.fnmatch_lines([f"hotswap: reload loop on (watching {src}, {other})", "*= 1 passed in *"])
    assert result.ret == 0


def test_reload_dir_must_exist(project: pytest.Pytester) -> None:
    result = run(project, "--reload-loop", "--reload-dir", "missing")
    result.stderr.fnmatch_lines(["*--reload-dir missing: not a directory*"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_skips_and_expected_failures_are_not_looped(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_outcomes="""
        import pytest

        def test_skip():
            pytest.skip("not here")

        @pytest.mark.xfail(reason="known")
        def test_xfail_marked():
            assert False

        def test_xfail_call():
            pytest.xfail("known")
        """
    )
    # Were any of them looped, it would wait for the timeout and say so.
    result = run(project, "--reload-loop", "--reload-timeout=60")
    result.stdout.no_fnmatch_line("*attempt 1 failed*")
    result.stdout.fnmatch_lines(["*= 1 skipped, 2 xfailed in *"])
    assert result.ret == 0


def test_a_rerun_that_fails_otherwise_ends_the_loop(project: pytest.Pytester) -> None:
    project.makepyfile(test_app=VALUE_TEST)
    skipping = ("app.py", "def value():\n    return 1", "import pytest\ndef value():\n    pytest.skip('now skipped')")
    result = run_editing(project, [skipping], "--reload-timeout=60")
    result.stdout.fnmatch_lines(
        [
            "*test_app.py::test_value: attempt 1 failed*",
            "hotswap: rerunning test_app.py::test_value (attempt 2)",
            "SKIPPED test_app.py::test_value after 2 attempts",
            "*= 1 skipped in *",
        ]
    )
    assert result.ret == 0


def test_edited_test_method_passes_on_attempt_two(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_cls="""
        class TestThing:
            def test_method(self, counted):
                assert 'old' == 'new'
        """
    )
    result = run_editing(project, [("test_cls.py", "'old' == 'new'", "'new' == 'new'")], "--reload-timeout=60")
    result.stdout.fnmatch_lines(
        [
            "*test_cls.py::TestThing::test_method: attempt 1 failed*",
            "hotswap: test_cls: patched *",
            "PASSED test_cls.py::TestThing::test_method after 2 attempts",
            "*= 1 passed in *",
        ]
    )
    assert result.ret == 0


def test_pytest_timeout_does_not_end_the_wait(project: pytest.Pytester) -> None:
    pytest.importorskip("pytest_timeout")  # installed in every test venv by scripts/venv.sh
    project.makepyfile(test_app=VALUE_TEST)
    result = run(project, "--reload-loop", "--reload-timeout=3", "--timeout=1")
    result.stdout.fnmatch_lines(
        [
            "hotswap: no reload within 3 s after attempt 1 of test_app.py::test_value; giving up *",
            "FAILED test_app.py::test_value after 1 attempt (no reload within 3 s)",
            "*= 1 failed in *",
        ]
    )
    result.stdout.no_fnmatch_line("*Timeout*")
    assert result.ret == 1


def test_rerun_sees_only_its_own_capsys_caplog_and_recwarn(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_app="""
        import logging
        import warnings
        import app

        def test_records(capsys, caplog, recwarn):
            print("out", app.value())
            logging.getLogger("t").warning("log %s", app.value())
            warnings.warn(UserWarning(f"warn {app.value()}"))
            assert app.value() == 2
            assert capsys.readouterr().out == "out 2\\n"
            assert [r.getMessage() for r in caplog.records] == ["log 2"]
            assert [str(w.message) for w in recwarn] == ["warn 2"]
        """
    )
    result = run_editing(project, [("app.py", "return 1", "return 2")], "--reload-timeout=60")
    result.stdout.fnmatch_lines(
        [
            "*> captured stdout >*",
            "out 1",
            "*test_app.py::test_records: attempt 1 failed*",
            "PASSED test_app.py::test_records after 2 attempts",
            "*= 1 passed in *",
        ]
    )
    assert result.ret == 0


def test_the_report_is_the_last_attempts(project: pytest.Pytester) -> None:
    project.makepyfile(test_app=VALUE_TEST)
    result = run_editing(project, [("app.py", "return 1", "return 3")], "--reload-timeout=3")
    result.stdout.fnmatch_lines(
        [
            "*test_app.py::test_value: attempt 1 failed*",
            "E       assert 1 == 2",
            "hotswap: rerunning test_app.py::test_value (attempt 2)",
            "*test_app.py::test_value: attempt 2 failed*",
            "E       assert 3 == 2",
            "hotswap: no reload within 3 s after attempt 2 of test_app.py::test_value; giving up *",
            "*= FAILURES =*",
            "E       assert 3 == 2",
            "*= hotswap reload loop =*",
            "FAILED test_app.py::test_value after 2 attempts (no reload within 3 s)",
            "FAILED test_app.py::test_value - assert 3 == 2",
            "*= 1 failed in *",
        ]
    )
    assert result.ret == 1


def test_with_pdb_too_only_failures_outside_the_loop_reach_pytests_debugger(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_app="""
        import app
        import pytest

        @pytest.fixture
        def broken():
            raise RuntimeError("setup failed")

        def test_value():
            assert app.value() == 2

        def test_setup_error(broken):
            pass
        """
    )
    result = run(project, "--reload-loop", "--reload-timeout=0.5", "--pdb")
    result.stdout.fnmatch_lines(
        [
            "hotswap: no reload within 0.5 s after attempt 1 of test_app.py::test_value; giving up *",
            # The looped failure went on without a second post-mortem; the setup error got pytest's.
            "*> entering PDB >*",
            "*RuntimeError: setup failed*",
        ]
    )
    assert result.stdout.str().count("entering PDB") == 1


def test_interactive_breakpoint_saved_into_the_test_stops_the_rerun(project: pytest.Pytester) -> None:
    source = "def test_value():\n    x = 5\n    assert x == 6\n"
    (project.path / "test_bp.py").write_text(source)
    saved = source.replace("x = 5\n", "x = 6\n    breakpoint()\n")
    rest, status = interact(
        project,
        [
            ("expect", "test_bp.py::test_value: attempt 1 failed"),
            ("expect", "(Pdb) "),
            ("save", ("test_bp.py", source, saved)),
            ("expect", "hotswap: test_bp: patched 1"),
            ("send", "c"),
            ("expect", "hotswap: rerunning"),
            # Stopped by the saved breakpoint(), in the rerun: 3.13's pdb shows the breakpoint() line, older ones
            # the next.
            ("match", r"test_bp\.py\(\d\)test_value\(\)\r?\n-> (breakpoint\(\)|assert x == 6)"),
            ("expect", "(Pdb) "),
            ("send", "p x * 7"),
            ("expect", "42"),
            ("expect", "(Pdb) "),
            ("send", "c"),
            ("expect", "PASSED test_bp.py::test_value after 2 attempts"),
        ],
    )
    assert "1 passed" in rest
    assert status == 0


# -- what a rerun is built from: fixtures, parametrize values, unittest ------------------------------------------

# Fixtures that log their set-ups and teardowns, in a conftest and in the test module.
FIXTURES_CONFTEST = """
import pytest

EVENTS = []


@pytest.fixture(scope="session")
def db():
    conn = {"id": len([e for e in EVENTS if e.startswith("db up")])}
    EVENTS.append(f"db up {conn['id']}")
    yield conn
    EVENTS.append(f"db down {conn['id']}")


@pytest.fixture
def number():
    value = 2
    EVENTS.append(f"number up {value}")
    yield value
    EVENTS.append(f"number down {value}")
"""

FIXTURES_TEST = """
from conftest import EVENTS
import pytest

@pytest.fixture
def doubled(number):
    return number * 2

@pytest.fixture
def unrelated():
    EVENTS.append("unrelated up")
    return object()

def test_fixture(db, doubled, unrelated):
    assert doubled == 6
    assert EVENTS.count("db up 0") == 1 and EVENTS.count("unrelated up") == 1

def test_after(db, number):
    # The edited fixture's new code serves the next tests; the session's connection is still the first one.
    assert (db["id"], number) == (0, 3)
    # The failed attempt's value was torn down before the new one was set up; `unrelated` was not set up again.
    assert EVENTS == [
        "db up 0", "number up 2", "unrelated up", "number down 2", "number up 3", "number down 3", "number up 3"
    ]
"""


@pytest.fixture
def fixtures_project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini("[pytest]\nfilterwarnings = error\n")
    pytester.makeconftest(FIXTURES_CONFTEST)
    pytester.makepyfile(test_fix=FIXTURES_TEST)
    return pytester


def test_edited_fixture_is_set_up_again_and_unchanged_ones_keep_their_values(fixtures_project: pytest.Pytester) -> None:
    result = run_editing(fixtures_project, [("conftest.py", "value = 2", "value = 3")], "--reload-timeout=60")
    result.stdout.fnmatch_lines(
        [
            "*test_fix.py::test_fixture: attempt 1 failed*",
            "E       assert 4 == 6",
            "hotswap: conftest: patched 1 *",
            "hotswap: rerunning test_fix.py::test_fixture (attempt 2)",
            "hotswap: fixtures set up again: number (function), doubled (function, uses a changed one)",
            "PASSED test_fix.py::test_fixture after 2 attempts",
            "*= 2 passed in *",
        ]
    )
    assert result.ret == 0


def test_edited_session_fixture_is_set_up_again_at_its_scope_with_its_dependents(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nfilterwarnings = error\n")
    pytester.makeconftest(FIXTURES_CONFTEST)
    pytester.makepyfile(
        test_scopes="""
        from conftest import EVENTS
        import pytest

        @pytest.fixture(scope="module")
        def table(db):
            EVENTS.append(f"table up on db {db['id']}")
            return {"db": db["id"]}

        @pytest.fixture(scope="session")
        def cache():
            EVENTS.append("cache up")
            return []

        def test_first(cache):
            cache.append("first")

        def test_table(table, db, number, cache):
            assert db.get("user") == "admin"
            assert table == {"db": db["id"]}

        def test_later(table, db, cache):
            # The rebuilt values serve the next tests: nothing is set up again for them.
            assert table == {"db": 1} and db == {"id": 1, "user": "admin"}
            assert cache == ["first"]
            assert EVENTS == [
                "cache up", "db up 0", "table up on db 0", "number up 2",
                "db down 0", "db up 1", "table up on db 1", "number down 2",
            ]
        """
    )
    edits = [("conftest.py", 'conn = {"id": ', 'conn = {"user": "admin", "id": ')]
    result = run_editing(pytester, edits, "--reload-timeout=20")
    result.stdout.fnmatch_lines(
        [
            "*test_scopes.py::test_table: attempt 1 failed*",
            "hotswap: fixtures set up again: db (session), table (module, uses a changed one)",
            "PASSED test_scopes.py::test_table after 2 attempts",
            "*= 3 passed in *",
        ]
    )
    assert result.ret == 0


PARAM_TEST = """
import pytest

SEEN = []

@pytest.fixture(scope="module")
def shared():
    SEEN.append("shared up")
    return object()

@pytest.mark.parametrize("n, expected", [(2, {"double": 5}), (3, {"double": 6})])
def test_double(n, expected, shared):
    SEEN.append((n, expected["double"]))
    assert n * 2 == expected["double"]

def test_after():
    # The rerun took the edited values under the same id; the module-scoped fixture was set up once.
    assert SEEN == ["shared up", (2, 5), (2, 4), (3, 6)]
"""


def test_edited_parametrize_values_rerun_under_the_same_id(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nfilterwarnings = error\n")
    pytester.makepyfile(test_param=PARAM_TEST)
    result = run_editing(pytester, [("test_param.py", '"double": 5', '"double": 4')], "--reload-timeout=20")
    result.stdout.fnmatch_lines(
        [
            "*test_param.py::test_double?2-expected0?: attempt 1 failed*",
            "E       assert (2 * 2) == 5",
            "hotswap: test_param: patched 1*",
            "hotswap: rerunning test_param.py::test_double?2-expected0? (attempt 2)",
            "PASSED test_param.py::test_double?2-expected0? after 2 attempts",
            "*= 3 passed in *",
        ]
    )
    assert result.ret == 0


def test_a_parametrize_id_gone_after_the_edit_is_said_with_the_new_ids(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nfilterwarnings = error\n")
    pytester.makepyfile(
        test_ids="""
        import pytest

        @pytest.mark.parametrize("n", [1, 2], ids=["one", "two"])
        def test_n(n):
            assert n == 3
        """
    )
    edits = [
        ("test_ids.py", '[1, 2], ids=["one", "two"]', '[3, 2], ids=["three", "two"]'),  # id "one" is gone...
        ("test_ids.py", '[3, 2], ids=["three", "two"]', '[3, 2], ids=["one", "two"]'),  # ...and back, with 3
    ]
    result = run_editing(pytester, edits, "--reload-timeout=20", "-k", "one")
    result.stdout.fnmatch_lines(
        [
            "*test_ids.py::test_n?one?: attempt 1 failed*",
            "hotswap: test_ids: patched 1*",
            "hotswap: test_ids.py::test_n[[]one] is no longer collected after the edit; now: "
            "test_ids.py::test_n[[]three], test_ids.py::test_n[[]two]",
            "hotswap: waiting for another save",
            "hotswap: waiting up to 20 s for a saved edit to rerun test_ids.py::test_n[[]one] *",
            "hotswap: test_ids: patched 1*",
            "hotswap: rerunning test_ids.py::test_n[[]one] (attempt 2)",
            "PASSED test_ids.py::test_n[[]one] after 2 attempts",
            "*= 1 passed, 1 deselected in *",
        ]
    )
    assert result.ret == 0


def test_what_cannot_take_effect_is_said_in_one_line(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nfilterwarnings = error\n")
    pytester.makepyfile(
        test_limits="""
        import pytest

        @pytest.fixture
        def number():
            return 2

        def test_number(number):
            assert number == 3
        """
    )
    edits = [
        # The body's edit applies; the new scope cannot (pytest keeps the FixtureDef it collected).
        (
            "test_limits.py",
            "@pytest.fixture\ndef number():\n    return 2",
            '@pytest.fixture(scope="module")\ndef number():\n    return 4',
        ),
        # A fixture pytest never collected cannot be set up for the edited signature.
        (
            "test_limits.py",
            "def test_number(number):",
            "@pytest.fixture\ndef extra():\n    return 1\n\ndef test_number(number, extra):",
        ),
        # Back to fixtures pytest knows: the edited signature and body take effect.
        (
            "test_limits.py",
            "def test_number(number, extra):\n    assert number == 3",
            "def test_number(request, number):\n    assert number == 4",
        ),
    ]
    result = run_editing(pytester, edits, "--reload-timeout=20")
    result.stdout.fnmatch_lines(
        [
            "*test_limits.py::test_number: attempt 1 failed*",
            "E       assert 2 == 3",
            "hotswap: rerunning test_limits.py::test_number (attempt 2)",
            "hotswap: cannot take effect: fixture 'number': scope 'function' -> 'module'; pytest keeps what it "
            "collected until the next run (its body's edits do apply)",
            "hotswap: fixtures set up again: number (function)",
            "*test_limits.py::test_number: attempt 2 failed*",
            "E       assert 4 == 3",
            "hotswap: rerunning test_limits.py::test_number (attempt 3)",
            "hotswap: cannot take effect: test_limits.py::test_number requests fixture 'extra', which pytest did not "
            "collect (a fixture added after pytest started is known in the next run)",
            "*test_limits.py::test_number: attempt 3 failed*",
            "E       fixture 'extra' not found",
            "hotswap: rerunning test_limits.py::test_number (attempt 4)",
            "PASSED test_limits.py::test_number after 4 attempts",
            "*= 1 passed in *",
        ]
    )
    # Each is said once, not at every attempt.
    assert result.stdout.str().count("scope 'function' -> 'module'") == 1
    assert result.ret == 0


UNITTEST_TEST = """
import unittest
import app

EVENTS = []

class TestApp(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.base = 10
        EVENTS.append(f"class up {cls.base}")

    @classmethod
    def tearDownClass(cls):
        EVENTS.append(f"class down {cls.base}")

    def setUp(self):
        self.offset = 1

    def test_value(self):
        self.assertEqual(self.base + self.offset + app.value(), 14)

    def test_z_after(self):  # unittest runs a class's tests by name
        self.assertEqual(EVENTS, ["class up 10", "class down 10", "class up 11"])
"""


def test_unittest_test_case_loops_with_its_edited_class_set_up(project: pytest.Pytester) -> None:
    project.makepyfile(test_unit=UNITTEST_TEST)
    edits = [("app.py", "return 1", "return 2"), ("test_unit.py", "cls.base = 10", "cls.base = 11")]
    result = run_editing(project, edits, "--reload-timeout=20")
    result.stdout.fnmatch_lines(
        [
            "*test_unit.py::TestApp::test_value: attempt 1 failed*",
            "E       AssertionError: 12 != 14",
            "hotswap: app: patched 1*",
            "*test_unit.py::TestApp::test_value: attempt 2 failed*",
            "E       AssertionError: 13 != 14",
            "hotswap: test_unit: patched*",
            "hotswap: rerunning test_unit.py::TestApp::test_value (attempt 3)",
            "hotswap: fixtures set up again: _unittest_setUpClass_fixture_TestApp (class)",
            "PASSED test_unit.py::TestApp::test_value after 3 attempts",
            "*= 2 passed in *",
        ]
    )
    assert result.ret == 0


def test_unittest_failure_is_reported_when_the_loop_gives_up(project: pytest.Pytester) -> None:
    project.makepyfile(test_unit=UNITTEST_TEST)
    result = run(project, "--reload-loop", "--reload-timeout=0.5", "-k", "test_value")
    result.stdout.fnmatch_lines(
        [
            "*test_unit.py::TestApp::test_value: attempt 1 failed*",
            "hotswap: no reload within 0.5 s after attempt 1 of test_unit.py::TestApp::test_value; giving up *",
            "*= FAILURES =*",
            "E       AssertionError: 12 != 14",
            "FAILED test_unit.py::TestApp::test_value after 1 attempt (no reload within 0.5 s)",
            "*= 1 failed, 1 deselected in *",
        ]
    )
    assert result.ret == 1


def test_interactive_edited_fixture_is_set_up_again(fixtures_project: pytest.Pytester) -> None:
    rest, status = interact(
        fixtures_project,
        [
            *edit_and_continue("test_fix.py::test_fixture", ("conftest.py", "value = 2", "value = 3")),
            ("expect", "hotswap: fixtures set up again: number (function), doubled (function, uses a changed one)"),
            ("expect", "PASSED test_fix.py::test_fixture after 2 attempts"),
        ],
    )
    assert "2 passed" in rest
    assert status == 0


def test_interactive_edited_parametrize_values_rerun_under_the_same_id(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_param=PARAM_TEST)
    rest, status = interact(
        pytester,
        [
            *edit_and_continue(
                "test_param.py::test_double[2-expected0]", ("test_param.py", '"double": 5', '"double": 4')
            ),
            ("expect", "PASSED test_param.py::test_double[2-expected0] after 2 attempts"),
        ],
    )
    assert "3 passed" in rest
    assert status == 0


def test_interactive_a_gone_id_offers_the_new_ones(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_ids="""
        import pytest

        @pytest.mark.parametrize("n", [1], ids=["one"])
        def test_n(n):
            assert n == 3
        """
    )
    rest, status = interact(
        pytester,
        [
            *edit_and_continue(
                "test_ids.py::test_n[one]", ("test_ids.py", '[1], ids=["one"]', '[2, 3], ids=["two", "three"]')
            ),
            (
                "expect",
                "hotswap: test_ids.py::test_n[one] is no longer collected after the edit; now: "
                "test_ids.py::test_n[two], test_ids.py::test_n[three]",
            ),
            ("expect", "1: test_ids.py::test_n[two]"),
            ("expect", "2: test_ids.py::test_n[three]"),
            # Enter goes back to the debugger; asked again, a number runs that id.
            ("expect", "hotswap: rerun which (1-2; Enter goes back to the debugger)? "),
            ("send", ""),
            ("expect", "(Pdb) "),
            ("send", "c"),
            ("expect", "hotswap: rerun which (1-2; Enter goes back to the debugger)? "),
            ("send", "2"),
            ("expect", "PASSED test_ids.py::test_n[one] after 2 attempts (ran as test_ids.py::test_n[three])"),
        ],
    )
    assert "1 passed" in rest
    assert status == 0


def test_interactive_what_cannot_take_effect_is_said(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_limits="""
        import pytest

        @pytest.fixture
        def number():
            return 2

        def test_number(number):
            assert number == 3
        """
    )
    edit = (
        "test_limits.py",
        "@pytest.fixture\ndef number():\n    return 2",
        "@pytest.fixture(autouse=True)\ndef number():\n    return 3",
    )
    rest, status = interact(
        pytester,
        [
            *edit_and_continue("test_limits.py::test_number", edit),
            (
                "expect",
                "hotswap: cannot take effect: fixture 'number': autouse changed; pytest keeps what it collected",
            ),
            ("expect", "PASSED test_limits.py::test_number after 2 attempts"),
        ],
    )
    assert "1 passed" in rest
    assert status == 0


def test_interactive_unittest_test_case_loops(project: pytest.Pytester) -> None:
    project.makepyfile(test_unit=UNITTEST_TEST)
    rest, status = interact(
        project,
        [
            ("expect", "test_unit.py::TestApp::test_value: attempt 1 failed"),
            ("expect", "AssertionError: 12 != 14"),
            ("expect", "(Pdb) "),
            ("send", "p self.base"),
            ("expect", "10"),
            ("save", ("test_unit.py", "cls.base = 10", "cls.base = 12")),
            ("expect", "hotswap: test_unit: patched"),
            ("send", "c"),
            ("expect", "hotswap: fixtures set up again: _unittest_setUpClass_fixture_TestApp (class)"),
            ("expect", "PASSED test_unit.py::TestApp::test_value after 2 attempts"),
        ],
        "-k",
        "test_value",
    )
    assert "1 passed, 1 deselected" in rest
    assert status == 0

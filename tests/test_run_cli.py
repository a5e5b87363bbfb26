"""`hotswap run` end to end: a real supervisor, template and program; edits, restarts, stdin, Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest
from proc_helpers import Run, descendants, edit, gone, wait_until, write

PROGRAM = """\
    import os, sys, time
    import thirdlib
    import helper
    print(f"run {helper.VALUE} pid={os.getpid()} thirdlib_from={thirdlib.LOADED_IN}", flush=True)
    while True:
        time.sleep(0.05)
"""


@pytest.fixture
def app(tmp_path):
    site = tmp_path / "site"
    write(site / "thirdlib" / "__init__.py", "import os\nLOADED_IN = os.getpid()\n")
    write(site / "newlib" / "__init__.py", "import os\nLOADED_IN = os.getpid()\n")
    root = tmp_path / "app"
    write(root / "main.py", PROGRAM)
    write(root / "helper.py", "VALUE = 1\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), *[p for p in sys.path if p]])
    env["PYTHONUNBUFFERED"] = "1"
    runs: list[Run] = []

    def start(*args: str, stdin: int = subprocess.DEVNULL) -> Run:
        run = Run(list(args), root, env, stdin)
        runs.append(run)
        return run

    yield root, start
    for run in runs:
        run.close()


def test_runs_the_program_from_a_template_that_preloaded_its_third_party_imports(app):
    _root, start = app
    run = start("main.py")
    line = run.wait_out(lambda s: s.startswith("run 1"), what="first run")
    pid = int(line.split("pid=")[1].split()[0])
    loaded_in = int(line.split("thirdlib_from=")[1])
    assert loaded_in != pid, "thirdlib came from the template, not the program's process"
    run.wait_err("1 third-party modules preloaded")


def test_a_changed_third_party_import_set_rebuilds_the_template_and_restarts(app):
    root, start = app
    run = start("main.py")
    run.wait_out(lambda s: s.startswith("run 1"), what="first run")
    edit(root / "helper.py", "import newlib\nVALUE = 2\n")
    run.wait_err("third-party imports changed; template rebuilt (2 modules preloaded)")
    run.wait_out(lambda s: s.startswith("run 2"), what="restarted run")


def test_the_program_keeps_stdin_and_its_exit_status_is_passed_through(app):
    root, start = app
    write(root / "echo.py", """\
        import sys
        line = sys.stdin.readline().strip()
        print("got", line, flush=True)
        sys.exit(int(line))
    """)
    run = start("echo.py", stdin=subprocess.PIPE)
    run.popen.stdin.write("7\n")
    run.popen.stdin.flush()
    run.wait_out(lambda s: s == "got 7", what="the program's echo")
    run.wait_err("program exited with status 7")
    run.popen.send_signal(signal.SIGINT)
    assert run.popen.wait(30) == 7
    run.popen.stdin.close()


def test_a_crashed_program_restarts_on_the_next_save(app):
    root, start = app
    write(root / "crash.py", "import helper\nprint('run', helper.VALUE, flush=True)\nraise ValueError('boom')\n")
    run = start("crash.py")
    run.wait_err("ValueError: boom")
    run.wait_err("program exited with status 1")
    edit(root / "helper.py", "VALUE = 22\n")
    run.wait_out(lambda s: s == "run 22", what="the restarted program")
    run.wait_err("restarted in")


def test_sigint_ends_program_template_and_supervisor_without_orphans(app):
    _root, start = app
    run = start("main.py")
    line = run.wait_out(lambda s: s.startswith("run 1"), what="first run")
    program = int(line.split("pid=")[1].split()[0])
    tree = descendants(run.popen.pid)
    assert program in tree and len(tree) >= 2, "supervisor -> template -> program"
    run.popen.send_signal(signal.SIGINT)
    assert run.popen.wait(30) == 130
    wait_until(lambda: all(gone(pid) for pid in tree), timeout=10, what="every process of the run to end")


def test_no_template_mode_runs_a_fresh_interpreter(app):
    _root, start = app
    run = start("--no-template", "main.py")
    line = run.wait_out(lambda s: s.startswith("run 1"), what="first run")
    pid = int(line.split("pid=")[1].split()[0])
    assert int(line.split("thirdlib_from=")[1]) == pid, "nothing was preloaded"
    run.popen.send_signal(signal.SIGINT)
    assert run.popen.wait(30) == 130
    wait_until(lambda: gone(pid), timeout=10, what="the program to end")


def test_module_mode_and_arguments(app):
    root, start = app
    write(root / "pkgmod" / "__init__.py", "")
    write(root / "pkgmod" / "__main__.py", "import sys\nprint('args', sys.argv[1:], flush=True)\n")
    run = start("-m", "pkgmod", "x", "--flag")
    run.wait_out(lambda s: s == "args ['x', '--flag']", what="module output")
    run.wait_err("program exited with status 0")


def test_usage_errors():
    out = subprocess.run([sys.executable, "-m", "hotswap", "run", "missing.py"], check=False, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2 and "no such file: missing.py" in out.stderr
    out = subprocess.run([sys.executable, "-m", "hotswap", "walk"], check=False, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2 and "unknown command" in out.stderr


def test_a_reload_report_that_needs_a_restart_restarts_the_program(app):
    root, start = app
    # The program reports what the in-process reloader reports when an edit cannot be patched in place, through
    # the same channel; this exercises the supervisor's side whatever reloader is installed.
    write(root / "slots.py", """\
        import os, sys
        import helper
        from hotswap.template import emit_event
        print("run", helper.VALUE, os.getpid(), flush=True)
        if not os.path.exists("reported"):
            open("reported", "w").close()
            emit_event({"event": "reload", "module": "helper", "path": helper.__file__, "ok": True,
                        "needs_restart": "cannot patch helper.C: __slots__ changed", "summary": ""})
        import time
        while True:
            time.sleep(0.05)
    """)
    run = start("slots.py")
    first = run.wait_out(lambda s: s.startswith("run 1 "), what="first run")
    run.wait_err("restarting: helper: cannot patch helper.C: __slots__ changed")
    second = run.wait_out(lambda s: s.startswith("run 1 ") and s != first, what="the restarted program")
    assert first.split()[2] != second.split()[2]
    wait_until(lambda: gone(int(first.split()[2])), timeout=10, what="the first program to be stopped")


def test_real_reloader_patches_in_place_and_restarts_on_a_slots_change(app):
    root, start = app
    write(root / "helper.py", "class C:\n    __slots__ = ('a',)\nVALUE = 1\n")
    write(root / "loop.py", """\
        import os, time
        import helper
        print("run", os.getpid(), flush=True)
        last = None
        while True:
            if helper.VALUE != last:
                last = helper.VALUE
                print("value", last, flush=True)
            time.sleep(0.02)
    """)
    run = start("loop.py")
    first = run.wait_out(lambda s: s.startswith("run "), what="first run")
    run.wait_out(lambda s: s == "value 1", what="first value")
    edit(root / "helper.py", "class C:\n    __slots__ = ('a',)\nVALUE = 2\n")
    run.wait_out(lambda s: s == "value 2", what="the value patched in place")
    assert run.runs() == [first], "a patchable edit does not restart"
    edit(root / "helper.py", "class C:\n    __slots__ = ('a', 'b')\nVALUE = 3\n")
    run.wait_err("__slots__ changed")
    run.wait_out(lambda s: s.startswith("run ") and s != first, what="the restarted program")


def test_a_changed_main_loop_restarts_the_program_and_a_changed_function_does_not(app):
    root, start = app
    loop = """\
        import os, time
        def label():
            return "a"
        print("run", os.getpid(), flush=True)
        shown = None
        while True:
            if label() != shown:
                shown = label()
                print("label", shown, flush=True)
            time.sleep(0.02)
    """
    write(root / "loop.py", loop)
    run = start("loop.py")
    first = run.wait_out(lambda s: s.startswith("run "), what="first run")
    run.wait_out(lambda s: s == "label a", what="first label")
    edit(root / "loop.py", textwrap.dedent(loop).replace('return "a"', 'return "b"'))
    run.wait_out(lambda s: s == "label b", what="the function patched in place")
    assert run.runs() == [first], "a changed function of __main__ does not restart"
    edit(root / "loop.py", textwrap.dedent(loop).replace('return "a"', 'return "b"').replace("0.02", "0.03"))
    run.wait_err("of __main__ changed")
    run.wait_out(lambda s: s.startswith("run ") and s != first, what="the restarted program")

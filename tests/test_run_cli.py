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


SETTINGS = """\
    import json
    with open("config.json") as f:
        CONFIG = json.load(f)
"""


@pytest.mark.parametrize("options", [(), ("--no-template",)], ids=["template", "no-template"])
def test_a_program_that_crashed_on_its_config_restarts_when_the_config_is_saved(app, options):
    """A broken config.json read at import crashes the program; saving it fixed (a data file, neither a .py file
    nor an --include pattern) restarts the program."""
    root, start = app
    write(root / "settings.py", SETTINGS)
    write(root / "serve.py", """\
        import time
        import settings
        print("port", settings.CONFIG["port"], flush=True)
        while True:
            time.sleep(0.05)
    """)
    (root / "config.json").write_text('{"port": ')
    run = start(*options, "serve.py")
    run.wait_err("JSONDecodeError")
    run.wait_err("program exited with status 1")
    (root / "config.json").write_text('{"port": 8001}')
    run.wait_err("restarting: config.json changed")
    run.wait_out(lambda s: s == "port 8001", what="the program restarted with the fixed config")
    run.popen.send_signal(signal.SIGINT)  # (a killed supervisor leaves a --no-template program running)
    assert run.popen.wait(30) == 130


def test_a_program_that_exited_restarts_when_a_file_its_modules_read_is_saved(app, tmp_path):
    """The program read its config at import without error and crashed later on a missing key; the config lives
    outside the watched directory."""
    root, start = app
    config = tmp_path / "etc" / "config.json"
    config.parent.mkdir()
    config.write_text("{}")
    write(root / "settings.py", SETTINGS.replace('"config.json"', repr(str(config))))
    write(root / "serve.py", "import settings\nprint('port', settings.CONFIG['port'], flush=True)\n")
    run = start("serve.py")
    run.wait_err("KeyError: 'port'")
    run.wait_err("program exited with status 1")
    config.write_text('{"port": 8002}')
    run.wait_out(lambda s: s == "port 8002", what="the program restarted with the saved config")
    run.wait_err("program exited with status 0")
    assert sum(line.startswith("port") for line in run.out) == 1


POOLS = """\
    import concurrent.futures, multiprocessing, os, time
    import work

    if __name__ == "__main__":
        spawn_pool = multiprocessing.get_context("spawn").Pool(2)
        fork_executor = concurrent.futures.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork"))
        forkserver_pool = multiprocessing.get_context("forkserver").Pool(1)
        print("run", os.getpid(), flush=True)
        last = None
        while True:
            results = (spawn_pool.map(work.f, [1, 2]), list(fork_executor.map(work.f, [1, 2])),
                       forkserver_pool.map(work.f, [1, 2]))
            if results != last:
                print("results", *results, flush=True)
                last = results
            time.sleep(0.02)
"""


def test_pool_workers_patch_the_edit_and_leave_a_restart_to_the_program(app):
    """A spawn multiprocessing.Pool, a fork ProcessPoolExecutor and a forkserver Pool: every worker patches its copy
    and says so with its pid; an edit that needs a restart restarts the program once, and no worker ends itself
    before that (a lost task, a broken pool)."""
    root, start = app
    write(root / "work.py", "class C:\n    __slots__ = ('a',)\n\n\ndef f(x):\n    return x * 1\n")
    write(root / "pools.py", POOLS)
    run = start("pools.py")
    first = run.wait_out(lambda s: s.startswith("run "), what="first run")
    run.wait_out(lambda s: s == "results [1, 2] [1, 2] [1, 2]", what="first results")
    edit(root / "work.py", "class C:\n    __slots__ = ('a',)\n\n\ndef f(x):\n    return x * 10\n")
    run.wait_out(lambda s: s == "results [10, 20] [10, 20] [10, 20]", what="every worker patched")
    wait_until(lambda: any(line == "hotswap: work: patched 1" or line.startswith("hotswap: work: patched 1 (")
                           for line in list(run.err)), what="the program's own report")

    def workers() -> set:
        return {line.split("]")[0][len("hotswap: ["):] for line in list(run.err)
                if line.startswith("hotswap: [") and "] work: patched 1 (" in line}

    # The two spawned workers, the forkserver and its worker say it themselves, forked ones through the program's
    # channel: each line names its pid.
    wait_until(lambda: len(workers()) >= 5, timeout=30, what=f"a line from each worker: {run.err}")
    assert all(pid.isdigit() for pid in workers()), run.err
    assert run.runs() == [first], "a patched edit restarts nothing"
    edit(root / "work.py", "class C:\n    __slots__ = ('a', 'b')\n\n\ndef f(x):\n    return x * 100\n")
    second = run.wait_out(lambda s: s.startswith("run ") and s != first, what="the restarted program")
    run.wait_out(lambda s: s == "results [100, 200] [100, 200] [100, 200]", what="the new code after the restart")
    err = list(run.err)
    assert sum(line.startswith("hotswap: restarting:") for line in err) == 1, err
    assert not any("ending this child" in line or "Traceback" in line or "BrokenProcessPool" in line
                   for line in err), err
    assert run.runs() == [first, second]


def test_a_spawned_child_is_told_which_modules_under_the_paths_its_parent_runs(tmp_path, monkeypatch):
    import types

    from hotswap import run as hotswap_run

    def module(name: str, file: str) -> None:
        mod = types.ModuleType(name)
        mod.__file__ = file
        monkeypatch.setitem(sys.modules, name, mod)

    module("__main__", str(tmp_path / "app" / "main.py"))
    module("app_models", str(tmp_path / "app" / "models.py"))
    module("elsewhere", str(tmp_path / "other" / "elsewhere.py"))
    names = hotswap_run._modules_under([str(tmp_path / "app")])
    assert names is not None and {"__mp_main__", "app_models"} <= set(names)
    assert "__main__" not in names and "elsewhere" not in names
    monkeypatch.setattr(hotswap_run, "_MAX_PARENT_MODULES_CHARS", 10)
    assert hotswap_run._modules_under([str(tmp_path / "app")]) is None  # too long for a command line: not passed

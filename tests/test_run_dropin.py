"""`hotswap run` as a drop-in for `python`: what the program sees of itself is what a plain run shows, the template
preloads only what the program's own import graph reaches, and each save is reported in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from proc_helpers import Run, edit, write

INSPECT = """\
    import json, sys, __main__
    print("SEEN " + json.dumps({
        "argv": sys.argv,
        "orig_argv": getattr(sys, "orig_argv", [None])[1:],
        "path": sys.path,
        "main_file": getattr(__main__, "__file__", None),
        "main_is_module": sys.modules["__main__"] is __main__ and __name__ == "__main__",
        "spec": getattr(__spec__, "name", None),
        "package": __package__,
    }), flush=True)
"""


@pytest.fixture
def project(tmp_path):
    site = tmp_path / "site"
    for lib in ("applib", "testlib", "vendorlib", "scriptlib"):
        write(site / lib / "__init__.py", "VALUE = 1\n")
    root = tmp_path / "proj"
    env = dict(os.environ)
    env["PYTHONPATH"] = str(site)
    env["PYTHONUNBUFFERED"] = "1"
    runs: list[Run] = []

    def start(*args: str) -> Run:
        run = Run(list(args), root, env)
        runs.append(run)
        return run

    def plain(*args: str) -> dict:
        out = subprocess.run([sys.executable, *args], cwd=root, env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return seen(out.stdout.splitlines())

    yield root, start, plain
    for run in runs:
        run.close()


def seen(lines: list[str]) -> dict:
    line = next(line for line in lines if line.startswith("SEEN "))
    return json.loads(line[5:])


def test_a_script_sees_argv_orig_argv_path_and_main_as_in_a_plain_run(project):
    root, start, plain = project
    write(root / "tool.py", INSPECT)
    expected = plain("tool.py", "a", "--b")
    run = start("tool.py", "a", "--b")
    run.wait_out(lambda s: s.startswith("SEEN "), what="the program's report")
    assert seen(run.out) == expected
    assert expected["argv"] == ["tool.py", "a", "--b"] and expected["main_is_module"]


def test_a_module_run_with_m_sees_what_python_m_shows(project):
    root, start, plain = project
    write(root / "pkg" / "__init__.py", "")
    write(root / "pkg" / "cli.py", INSPECT)
    expected = plain("-m", "pkg.cli", "x")
    run = start("-m", "pkg.cli", "x")
    run.wait_out(lambda s: s.startswith("SEEN "), what="the program's report")
    assert seen(run.out) == expected
    assert expected["spec"] == "pkg.cli" and expected["package"] == "pkg"


def test_a_crash_shows_the_program_traceback_without_hotswap_frames(project):
    root, start, _plain = project
    write(root / "crash.py", "def main():\n    raise ValueError('boom')\nmain()\n")
    run = start("crash.py")
    run.wait_err("ValueError: boom")
    run.wait_err("program exited with status 1")
    traceback = "\n".join(run.err)
    assert 'crash.py", line 3, in <module>' in traceback
    assert "hotswap" not in traceback.split("Traceback (most recent call last):")[1].split("ValueError")[0]


def test_the_template_preloads_only_what_the_entry_point_reaches(project):
    root, start, _plain = project
    # The app imports applib through a first-party helper; tests, scripts and a vendored tree beside it import
    # other packages, which a plain run of the app never imports.
    write(root / "app.py", """\
        import sys
        preloaded = sorted(m for m in ("applib", "testlib", "vendorlib", "scriptlib") if m in sys.modules)
        print("PRELOADED", preloaded, flush=True)
        import helpers.core
        print("VALUE", helpers.core.value(), flush=True)
        import time
        while True:
            time.sleep(0.05)
    """)
    write(root / "helpers" / "__init__.py", "")
    write(root / "helpers" / "core.py", "from . import util\ndef value():\n    return util.VALUE\n")
    write(root / "helpers" / "util.py", "from applib import VALUE\n")
    write(root / "tests" / "test_app.py", "import testlib\n")
    write(root / "scripts" / "tool.py", "import scriptlib\n")
    write(root / "vendor" / "thing" / "__init__.py", "import vendorlib\n")
    run = start("app.py")
    run.wait_out(lambda s: s.startswith("VALUE 1"), what="the app")
    assert "PRELOADED ['applib']" in run.out
    run.wait_err("1 third-party modules preloaded")


def test_each_reload_is_reported_in_one_line(project):
    root, start, _plain = project
    write(root / "loop.py", """\
        import time, helper
        while True:
            print("value", helper.value(), flush=True)
            time.sleep(0.05)
    """)
    write(root / "helper.py", "def value():\n    return 1\n")
    run = start("loop.py")
    run.wait_out(lambda s: s == "value 1", what="first value")
    edit(root / "helper.py", "def value():\n    return 2\n")
    run.wait_out(lambda s: s == "value 2", what="patched value")
    run.wait_err("hotswap: helper: patched 1")
    assert sum("hotswap: helper:" in line for line in run.err) == 1


def test_an_included_file_restarts_the_program_when_saved(project):
    root, start, _plain = project
    write(root / "conf.py", """\
        import time
        from pathlib import Path
        print("setting", Path(__file__).with_name("settings.toml").read_text().strip(), flush=True)
        while True:
            time.sleep(0.05)
    """)
    write(root / "settings.toml", "a = 1\n")
    write(root / "notes.toml", "ignored = true\n")
    run = start("--include", "settings.toml", "conf.py")
    run.wait_out(lambda s: s == "setting a = 1", what="first start")
    edit(root / "settings.toml", "a = 22\n")
    run.wait_out(lambda s: s == "setting a = 22", what="restart after the included file was saved")
    run.wait_err("restarting: settings.toml changed")


def test_a_file_matching_no_include_pattern_is_not_watched(project):
    root, start, _plain = project
    conf = "import time\ndef pause():\n    return 0.05\nprint('up', flush=True)\nwhile True:\n    time.sleep(pause())\n"
    write(root / "conf.py", conf)
    write(root / "other.toml", "a = 1\n")
    run = start("--include", "settings.toml", "conf.py")
    run.wait_out(lambda s: s == "up", what="start")
    edit(root / "other.toml", "a = 2\n")
    # A watched save after it (a definition, patched in place): once its line is there, the earlier save would
    # have been handled too.
    edit(root / "conf.py", conf.replace("0.05", "0.06"))
    run.wait_err("hotswap: __main__:")
    assert not any("restarting" in line for line in run.err)
    assert run.out.count("up") == 1


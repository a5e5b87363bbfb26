"""A process with a running AutoReloader that forks: plain ``os.fork()``, multiprocessing's fork context, and a
fork while another thread is in the middle of a reload. Each scenario runs in its own interpreter (a forking
pytest process would be a test of pytest), which prints what it saw; a child that blocks is ended by an alarm."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

PRELUDE = """\
import os, signal, sys, threading, time
ROOT = {root!r}
sys.path.insert(0, ROOT)
import hotswap
from hotswap import AutoReloader

def save(name, text):
    path = os.path.join(ROOT, name + ".py")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)

def reloaded_to(reloader, value, fn, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        report = reloader.wait_for_reload(timeout=deadline - time.monotonic())
        if report is not None and fn() == value:
            return report
    raise SystemExit(f"no reload to {{value}} in {{os.getpid()}}")
"""


def run_script(tmp_path: Path, body: str, timeout: float = 60) -> subprocess.CompletedProcess:
    script = tmp_path / "scenario.py"
    script.write_text(PRELUDE.format(root=str(tmp_path)) + textwrap.dedent(body))
    env = dict(os.environ, PYTHONWARNINGS="ignore::DeprecationWarning")  # 3.12+: fork of a threaded process
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=tmp_path)


def assert_clean(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for bad in ("Panic", "panicked", "Traceback", "threads should not terminate"):
        assert bad not in proc.stderr, proc.stderr


def test_forked_child_keeps_reloading_and_exits_cleanly(tmp_path):
    (tmp_path / "app.py").write_text("def f():\n    return 1\n")
    proc = run_script(tmp_path, """
        import app
        f = app.f                                    # a reference taken before the fork and the edit
        reloader = AutoReloader(ROOT)
        for stop_in_child in (True, False):
            pid = os.fork()
            if pid == 0:
                signal.alarm(30)
                value = 10 if stop_in_child else 20
                save("app", f"def f():\\n    return {value}\\n")
                reloaded_to(reloader, value, f)      # the child's own reloader patched the child's copy
                assert reloader.running
                if stop_in_child:
                    reloader.stop()
                    reloader.stop()
                    assert not reloader.running
                print("child", os.getpid(), "saw", f(), flush=True)
                sys.exit(0)                          # a normal exit: atexit stops what is still running
            _, status = os.waitpid(pid, 0)
            print("child status", os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode")
                  else status, flush=True)
            reloaded_to(reloader, 10 if stop_in_child else 20, f)   # the parent keeps reloading too
        save("app", "def f():\\n    return 3\\n")
        reloaded_to(reloader, 3, f)
        print("parent saw", f(), flush=True)
    """)
    assert_clean(proc)
    assert proc.stdout.count("child status 0") == 2, proc.stdout
    assert "saw 10" in proc.stdout and "saw 20" in proc.stdout and "parent saw 3" in proc.stdout


def test_multiprocessing_fork_workers_reload_their_modules(tmp_path):
    (tmp_path / "work.py").write_text("def f():\n    return 1\n")
    proc = run_script(tmp_path, """
        import multiprocessing
        import work
        f = work.f
        reloader = AutoReloader(ROOT)

        def job(value):
            signal.alarm(30)
            save("work", f"def f():\\n    return {value}\\n")
            reloaded_to(reloader, value, f)
            print("worker saw", f(), flush=True)

        if __name__ == "__main__":
            context = multiprocessing.get_context("fork")
            for value in (5, 6):
                worker = context.Process(target=job, args=(value,))
                worker.start()
                worker.join(60)
                print("worker exit", worker.exitcode, flush=True)
            reloader.stop()
    """)
    assert_clean(proc)
    assert proc.stdout.count("worker exit 0") == 2, proc.stdout
    assert "worker saw 5" in proc.stdout and "worker saw 6" in proc.stdout


def test_fork_during_a_reload_never_leaves_the_lock_held_or_the_reload_half_applied(tmp_path):
    (tmp_path / "gate.py").write_text("import threading\nentered = threading.Event()\nrelease = threading.Event()\n")
    (tmp_path / "slow.py").write_text("def f():\n    return 1\n")
    (tmp_path / "other.py").write_text("def g():\n    return 1\n")
    proc = run_script(tmp_path, """
        import gate, other, slow
        f, g = slow.f, other.g
        reload_module = sys.modules["hotswap.reload"]
        reload_module.FORK_WAIT_S = 0.2              # the reload below blocks longer than fork waits for it
        # A reload whose definitions are applied, then a top-level statement that blocks until released.
        save("slow", "def f():\\n    return 2\\n\\nimport gate\\ngate.entered.set()\\ngate.release.wait()\\n")
        reports = []
        worker = threading.Thread(target=lambda: reports.append(hotswap.reload(slow)))
        worker.start()
        assert gate.entered.wait(20)
        assert f() == 2                              # applied before the statement ran, in this process
        pid = os.fork()
        if pid == 0:
            signal.alarm(20)                         # a reload lock left held would block below forever
            print("child slow.f", f(), flush=True)   # the interrupted reload is undone in the child
            save("other", "def g():\\n    return 2\\n")
            report = hotswap.reload(other)
            print("child reload", report.ok, g(), flush=True)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        gate.release.set()
        worker.join(20)
        print("child status", status, "parent report", reports[0].ok, f(), flush=True)
    """)
    assert_clean(proc)
    assert "child slow.f 1" in proc.stdout, proc.stdout
    assert "child reload True 2" in proc.stdout, proc.stdout
    assert "child status 0 parent report True 2" in proc.stdout, proc.stdout


def test_fork_waits_for_a_short_reload_in_progress(tmp_path):
    """A reload that finishes within FORK_WAIT_S is never seen half-done by a child."""
    (tmp_path / "gate.py").write_text("import threading\nentered = threading.Event()\nrelease = threading.Event()\n")
    (tmp_path / "short.py").write_text("def f():\n    return 1\n")
    (tmp_path / "other.py").write_text("X = 1\n")
    proc = run_script(tmp_path, """
        import gate, other, short
        f = short.f
        save("short", "def f():\\n    return 2\\n\\nimport gate\\ngate.entered.set()\\ngate.release.wait()\\n")
        worker = threading.Thread(target=hotswap.reload, args=(short,))
        worker.start()
        assert gate.entered.wait(20)
        threading.Timer(0.3, gate.release.set).start()   # the reload ends while fork waits for it
        pid = os.fork()
        if pid == 0:
            signal.alarm(20)
            done = hotswap.running_source(short) == open(short.__file__, "rb").read()
            print("child short.f", f(), "finished", done, flush=True)   # the whole reload, not half of it
            print("child reload", hotswap.reload(other).ok, flush=True)
            os._exit(0)
        os.waitpid(pid, 0)
        worker.join(20)
    """)
    assert_clean(proc)
    assert "child short.f 2 finished True" in proc.stdout and "child reload True" in proc.stdout, proc.stdout


def test_forked_child_reloads_a_file_its_module_read_at_import(tmp_path):
    (tmp_path / "limits.json").write_text('{"limit": 1}')
    (tmp_path / "conf.py").write_text("import json, os\nwith open(os.path.join(os.path.dirname(__file__), "
                                      "'limits.json')) as fh:\n    LIMIT = json.load(fh)['limit']\n\n"
                                      "def limit():\n    return LIMIT\n")
    proc = run_script(tmp_path, """
        import conf
        limit = conf.limit
        reloader = AutoReloader(ROOT)
        assert reloader.data_files == [os.path.join(ROOT, "limits.json")], reloader.data_files
        pid = os.fork()
        if pid == 0:
            signal.alarm(30)
            with open(os.path.join(ROOT, "limits.json"), "w") as f:
                f.write('{"limit": 5}')
            reloaded_to(reloader, 5, limit)          # the child's own data-file watcher
            print("child saw", limit(), flush=True)
            sys.exit(0)
        _, status = os.waitpid(pid, 0)
        print("child status", status >> 8, flush=True)
        reloaded_to(reloader, 5, limit)              # the parent saw the same save
        print("parent saw", limit(), flush=True)
    """)
    assert_clean(proc)
    assert "child saw 5" in proc.stdout and "child status 0" in proc.stdout and "parent saw 5" in proc.stdout


#: Writes its first argument's file in two halves, holding it open between them: the first half, then "half" on
#: stdout, then (once the file named by its second argument exists) the rest.
SLOW_WRITER = """\
import os, sys, time
path, go, first, rest = sys.argv[1:]
with open(path, "w") as f:
    f.write(first)
    f.flush()
    print("half", flush=True)
    deadline = time.monotonic() + 60
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.005)
    f.write(rest)
"""


@pytest.mark.parametrize("kind", ["module", "data file"])
def test_a_save_half_written_when_the_process_forks_is_applied_only_once_complete(tmp_path, kind):
    """A writer has the file open and half-written when the process forks: the child's catch-up read (made before
    its watcher saw any of that save) must not apply the half; the child applies the whole save at its close."""
    if kind == "module":
        (tmp_path / "app.py").write_text("def f():\n    return 1\n\ndef g():\n    return 1\n")
        target, first, rest = "app.py", "def f():\n    return 2\n", "\ndef g():\n    return 2\n"
    else:
        (tmp_path / "limits.json").write_text('{"f": 1, "g": 1}')
        (tmp_path / "app.py").write_text(
            "import json, os\nwith open(os.path.join(os.path.dirname(__file__), 'limits.json')) as fh:\n"
            "    LIMITS = json.load(fh)\n\ndef f():\n    return LIMITS['f']\n\ndef g():\n    return LIMITS['g']\n")
        # Applied, the first half would be a failed reload (broken JSON).
        target, first, rest = "limits.json", '{"f": 2, ', '"g": 2}'
    (tmp_path / "writer.py").write_text(SLOW_WRITER)
    proc = run_script(tmp_path, f"""
        import subprocess
        import app
        f, g = app.f, app.g
        reloader = AutoReloader(ROOT)
        go = os.path.join(ROOT, "go")
        writer = subprocess.Popen([sys.executable, os.path.join(ROOT, "writer.py"), os.path.join(ROOT, {target!r}),
                                   go, {first!r}, {rest!r}], stdout=subprocess.PIPE, text=True)
        assert writer.stdout.readline() == "half\\n"
        pid = os.fork()
        if pid == 0:
            signal.alarm(30)
            assert reloader._caught_up.wait(20), "the catch-up never finished"
            assert not reloader.reports, [r.summary() for r in reloader.reports]   # the half was not applied
            open(go, "w").close()                    # the writer finishes its save and closes the file
            reloaded_to(reloader, 2, f)
            print("child saw", f(), g(), "in", len(reloader.reports), "reload(s)", flush=True)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        print("child status", status >> 8, flush=True)
        open(go, "w").close()                        # (a child that failed did not)
        writer.wait(30)
    """)
    assert_clean(proc)
    assert "child status 0" in proc.stdout, proc.stdout + proc.stderr
    assert "child saw 2 2 in 1 reload(s)" in proc.stdout, proc.stdout

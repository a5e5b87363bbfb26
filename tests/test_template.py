"""isolate_imports end to end, with real processes: a template, forked children, a host killed with SIGKILL."""

from __future__ import annotations

import importlib
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from proc_helpers import children_of, gone, ignores_signal, wait_until, write

from hotswap import _native, isolate_imports
from hotswap.template import ChildExitedError, IsolatedCallError, TemplateError

WORK = """\
    import os, signal, sys, time
    import thirdlib
    IMPORTED_IN = os.getpid()

    class Boom(Exception):
        pass

    class Unpicklable(Exception):
        def __init__(self, a, b):
            super().__init__(a)

    def add(a, b=0):
        print("printed by the child", flush=True)
        return {"sum": a + b, "thirdlib_from": thirdlib.LOADED_IN, "me": os.getpid(), "work_from": IMPORTED_IN,
                "first_party_in_template": thirdlib.FIRST_PARTY_SEEN}

    def boom(x):
        raise Boom("bad value", x)

    def unpicklable():
        raise Unpicklable("a", "b")

    def exit_now(code):
        os._exit(code)

    def kill_self(sig):
        os.kill(os.getpid(), sig)
        time.sleep(10)

    def sleep(s):
        time.sleep(s)
        return s

    def ignore_term_and_sleep(s):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(s)

    def identity(x):
        return x

    def shout(megabytes):
        chunk = "x" * 1023 + "\\n"
        for _ in range(megabytes * 1024):
            sys.stdout.write(chunk)
        sys.stdout.flush()
        return megabytes

    def close_every_pipe():
        os.closerange(0, 1024)
        time.sleep(30)

    def leave_behind(detach, then_sleep=0):
        # Starts a process that would run for ten minutes (detached with a double fork and setsid, or a plain
        # child) and returns its pid; then sleeps, if asked.
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            if detach:
                os.setsid()
                if os.fork() != 0:
                    os._exit(0)
            os.write(w, str(os.getpid()).encode())
            time.sleep(600)
            os._exit(0)
        os.close(w)
        left = int(os.read(r, 32))
        if detach:
            os.waitpid(pid, 0)
        emit = __import__("hotswap.template", fromlist=["emit_event"]).emit_event
        emit({"left": left})
        time.sleep(then_sleep)
        return left
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A first-party package with a unique name and a site dir of third-party-like packages, on sys.path."""
    name = f"proj_{tmp_path.name.replace('-', '_')}"
    site = tmp_path / "site"
    write(site / "thirdlib" / "__init__.py", """\
        import os, sys
        LOADED_IN = os.getpid()
        FIRST_PARTY_SEEN = sorted(m for m in sys.modules if m.startswith("proj_"))
    """)
    write(site / "brokenlib" / "__init__.py", "raise RuntimeError('brokenlib refuses to import')\n")
    write(site / "threadlib" / "__init__.py", """\
        import threading, time
        threading.Thread(target=time.sleep, args=(3600,), daemon=True, name="threadlib-worker").start()
    """)
    write(site / "newlib" / "__init__.py", "import os\nLOADED_IN = os.getpid()\n")
    pkg = tmp_path / "proj" / name
    write(pkg / "__init__.py", "")
    write(pkg / "work.py", WORK)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend(str(tmp_path / "proj"))
    module = importlib.import_module(f"{name}.work")
    yield pkg, module
    for mod in [m for m in sys.modules if m.startswith(name) or m in ("thirdlib", "newlib")]:
        del sys.modules[mod]


def test_exec_returns_the_real_value_from_a_child_of_the_preloaded_template(project, capfd):
    pkg, work = project
    with isolate_imports(str(pkg)) as env:
        assert env.preloaded == ("thirdlib",)
        proc = env.exec(work.add, 1, b=2)
        value = env.communicate_isolated(proc, timeout=30)
        assert value["sum"] == 3
        assert value["thirdlib_from"] == env.template_pid, "thirdlib was imported by the template"
        assert value["work_from"] == value["me"] == proc.pid, "the user's module was imported fresh in the child"
        assert value["first_party_in_template"] == [], "the template never imports first-party code"
    out, _ = capfd.readouterr()
    assert "printed by the child" in out


def test_child_exceptions_keep_their_type_and_traceback(project):
    pkg, work = project
    with isolate_imports(str(pkg)) as env:
        with pytest.raises(work.Boom) as info:
            env.communicate_isolated(env.exec(work.boom, 7), timeout=30)
        assert info.value.args == ("bad value", 7)
        assert 'raise Boom("bad value", x)' in info.value.child_traceback
        assert "Traceback in the isolated process" in str(info.value.__cause__)
        with pytest.raises(IsolatedCallError, match=r"Unpicklable: a .*could not re-create") as info2:
            env.communicate_isolated(env.exec(work.unpicklable), timeout=30)
        assert "raise Unpicklable" in info2.value.child_traceback


def test_a_child_that_exits_or_is_killed_raises_promptly_with_its_status(project):
    pkg, work = project
    with isolate_imports(str(pkg)) as env:
        started = time.monotonic()
        with pytest.raises(ChildExitedError, match="status 3 without reporting") as info:
            env.communicate_isolated(env.exec(work.exit_now, 3))
        assert info.value.returncode == 3
        with pytest.raises(ChildExitedError, match="SIGKILL") as info:
            env.communicate_isolated(env.exec(work.kill_self, signal.SIGKILL))
        assert info.value.returncode == -signal.SIGKILL
        with pytest.raises(ChildExitedError, match="SIGSEGV"):
            env.communicate_isolated(env.exec(work.kill_self, signal.SIGSEGV))
        assert time.monotonic() - started < 10
        assert env.communicate_isolated(env.exec(work.identity, "still fine"), timeout=30) == "still fine"


def test_timeout_then_stop_escalates_to_sigkill(project):
    pkg, work = project
    with isolate_imports(str(pkg), grace_s=0.3) as env:
        proc = env.exec(work.sleep, 60)
        with pytest.raises(TimeoutError, match="still running"):
            env.communicate_isolated(proc, timeout=0.2)
        assert env.stop_isolated(proc) == -signal.SIGTERM
        assert gone(proc.pid)
        stubborn = env.exec(work.ignore_term_and_sleep, 60)
        # Only once the call has set SIGTERM to SIG_IGN is SIGKILL the one that ends it (a spare child waiting
        # for its call is asleep too, with SIGTERM at its default).
        wait_until(lambda: ignores_signal(stubborn.pid, signal.SIGTERM), what="the child to ignore SIGTERM")
        assert env.stop_isolated(stubborn) == -signal.SIGKILL


def test_a_hundred_execs_leave_no_zombie(project):
    pkg, work = project
    with isolate_imports(str(pkg)) as env:
        procs = [env.exec(work.identity, i) for i in range(100)]
        assert [env.communicate_isolated(p, timeout=60) for p in procs] == list(range(100))
        for _ in range(20):
            with pytest.raises(ChildExitedError):
                env.communicate_isolated(env.exec(work.exit_now, 1), timeout=30)
        template = env.template_pid

        def reaped():
            kids = children_of(template)  # the template keeps one spare child forked ahead of the next call
            return len(kids) <= 1 and "Z" not in kids.values()

        wait_until(reaped, timeout=10, what="every child to be reaped")


def test_import_failures_and_thread_starting_imports_are_reported_and_left_out(project):
    pkg, work = project
    write(pkg / "uses.py", "import brokenlib\nimport threadlib\nimport thirdlib\n")
    with isolate_imports(str(pkg)) as env:
        assert env.preloaded == ("thirdlib",)
        reasons = env.not_preloaded
        assert "brokenlib refuses to import" in reasons["brokenlib"]
        assert "thread" in reasons["threadlib"] and "threadlib-worker" in reasons["threadlib"]
        assert env.communicate_isolated(env.exec(work.add, 2), timeout=30)["sum"] == 2


def test_ignored_modules_are_not_preloaded(project):
    pkg, work = project
    with isolate_imports(str(pkg), ignored_modules=["thirdlib"]) as env:
        assert env.preloaded == ()
        value = env.communicate_isolated(env.exec(work.add, 1), timeout=30)
        assert value["thirdlib_from"] == value["me"]


def test_update_environment_rebuilds_only_when_the_third_party_set_changes(project):
    pkg, work = project
    with isolate_imports(str(pkg)) as env:
        first = env.template_pid
        write(pkg / "work.py", WORK + "    def more():\n        return 1\n")  # first-party edit only
        assert env.update_environment() is False
        assert env.template_pid == first
        write(pkg / "extra.py", "import newlib\n")
        assert env.update_environment() is True
        assert env.template_pid != first and env.preloaded == ("newlib", "thirdlib")
        wait_until(lambda: gone(first), timeout=10, what="the old template to exit")
        assert env.communicate_isolated(env.exec(work.identity, 5), timeout=30) == 5


def test_old_template_serves_running_calls_until_they_end(project):
    pkg, work = project
    with isolate_imports(str(pkg)) as env:
        first = env.template_pid
        running = env.exec(work.sleep, 0.5)
        write(pkg / "extra.py", "import newlib\n")
        assert env.update_environment() is True
        assert not gone(first)
        assert env.communicate_isolated(running, timeout=30) == 0.5
        wait_until(lambda: gone(first), timeout=10, what="the retired template to exit")


def test_a_crashed_template_fails_pending_calls_and_is_restarted_on_next_exec(project):
    pkg, work = project
    with isolate_imports(str(pkg)) as env:
        first = env.template_pid
        pending = env.exec(work.sleep, 60)
        os.kill(first, signal.SIGKILL)
        with pytest.raises(TemplateError, match="restarted on the next exec"):
            env.communicate_isolated(pending, timeout=30)
        wait_until(lambda: gone(pending.pid), timeout=10, what="the orphaned child to die with its template")
        assert env.communicate_isolated(env.exec(work.identity, 1), timeout=30) == 1
        assert env.template_pid != first
        assert "died with signal SIGKILL" in env.restarts[0]


HOST = """\
    import sys, time
    sys.path[:0] = {paths!r}
    from hotswap import isolate_imports
    from {name}.work import sleep
    with isolate_imports({pkg!r}) as env:
        proc = env.exec(sleep, 600)
        print(env.template_pid, proc.pid, flush=True)
        time.sleep(600)
"""


def test_sigkill_of_the_host_takes_the_template_and_its_children_down(project, tmp_path):
    pkg, _ = project
    host = write(tmp_path / "host.py", HOST.format(paths=[str(tmp_path / "proj"), str(tmp_path / "site")],
                                                   name=pkg.name, pkg=str(pkg)))
    popen = subprocess.Popen([sys.executable, str(host)], stdout=subprocess.PIPE, text=True)
    try:
        template, child = map(int, popen.stdout.readline().split())
        assert not gone(template) and not gone(child)
        family = [template, *children_of(template)]  # the call's child and the spare
        assert child in family
        popen.kill()
        popen.wait(10)
        wait_until(lambda: all(gone(pid) for pid in family), timeout=10, what="template and children to die")
    finally:
        popen.kill()
        popen.wait()
        popen.stdout.close()


def test_no_fork_fallback_has_the_same_api(project):
    pkg, work = project
    with isolate_imports(str(pkg), fork=False) as env:
        assert env.template_pid is None
        proc = env.exec(work.add, 1, 2)
        value = env.communicate_isolated(proc, timeout=60)
        assert value["sum"] == 3 and value["me"] == proc.pid
        with pytest.raises(work.Boom):
            env.communicate_isolated(env.exec(work.boom, 1), timeout=60)
        with pytest.raises(ChildExitedError, match="status 4"):
            env.communicate_isolated(env.exec(work.exit_now, 4), timeout=60)
        slow = env.exec(work.sleep, 60)
        with pytest.raises(TimeoutError):
            env.communicate_isolated(slow, timeout=0.1)
        assert env.stop_isolated(slow) == -signal.SIGTERM


def test_native_exceptions_pickle_by_their_dotted_module():
    for cls in (_native.TemplateError, _native.ChildExitedError, _native.IsolatedCallError):
        assert cls.__module__ == "hotswap._native" and issubclass(cls, _native.HotswapError)
        again = pickle.loads(pickle.dumps(cls("why")))
        assert type(again) is cls and again.args == ("why",)


def test_isolated_call_can_come_from_a_main_script(tmp_path):
    script = write(tmp_path / "script.py", textwrap.dedent("""\
        import os, sys
        sys.path[:0] = {paths!r}
        from hotswap import isolate_imports

        def square(x):
            return x * x, os.getpid()

        if __name__ == "__main__":
            with isolate_imports({root!r}) as env:
                value, pid = env.communicate_isolated(env.exec(square, 7), timeout=30)
                print(value, pid != os.getpid())
    """).format(paths=sys.path, root=str(tmp_path)))
    out = subprocess.run([sys.executable, str(script)], check=False, capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["49", "True"], out.stderr


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_children_that_print_megabytes_or_close_their_pipes_neither_hang_nor_leak(project, capfd):
    pkg, work = project
    with isolate_imports(str(pkg)) as env:
        assert env.communicate_isolated(env.exec(work.shout, 8), timeout=60) == 8
        out, _ = capfd.readouterr()
        assert len(out) == 8 * 1024 * 1024  # all of it, on the caller's stdout, none in the control channel
        started = time.monotonic()
        with pytest.raises(ChildExitedError):
            env.communicate_isolated(env.exec(work.close_every_pipe), timeout=60)
        assert time.monotonic() - started < 20
        assert env.communicate_isolated(env.exec(work.identity, "after"), timeout=30) == "after"


def test_two_hundred_execs_in_a_row_leak_no_descriptor_or_process(project):
    # A descriptor or child left by every exec, or by one exec in up to 200, shows here; `make soak` makes 1,000.
    pkg, work = project
    with isolate_imports(str(pkg)) as env:
        for i in range(20):  # warm up: the spare child, lazily opened channels
            assert env.communicate_isolated(env.exec(work.identity, i), timeout=30) == i
        fds = open_fds()
        for i in range(200):
            assert env.communicate_isolated(env.exec(work.identity, i), timeout=30) == i
        assert open_fds() == fds
        template = env.template_pid
        wait_until(lambda: len(children_of(template)) <= 1, timeout=10, what="children to be reaped")


@pytest.mark.parametrize("detach", [False, True], ids=["child", "detached"])
@pytest.mark.parametrize("fork", [True, False], ids=["template", "spawn"])
def test_processes_a_call_starts_end_with_it(project, detach, fork):
    """Returned, stopped, or still running when the environment closes: whatever the call started ends too."""
    pkg, work = project
    with isolate_imports(str(pkg), fork=fork, grace_s=0.5) as env:
        left = env.communicate_isolated(env.exec(work.leave_behind, detach), timeout=60)
        wait_until(lambda: gone(left), timeout=10, what="the process a returned call left to end")

        proc = env.exec(work.leave_behind, detach, 600)
        left = wait_until(lambda: [e["left"] for e in env.poll_events(proc, 0.1)], what="the call's event")[0]
        assert not gone(left)
        env.stop_isolated(proc)
        wait_until(lambda: gone(left), timeout=10, what="the process a stopped call left to end")

        proc = env.exec(work.leave_behind, detach, 600)
        left = wait_until(lambda: [e["left"] for e in env.poll_events(proc, 0.1)], what="the call's event")[0]
    wait_until(lambda: gone(left), timeout=10, what="the process of a call running at close to end")


def test_a_call_killed_by_a_signal_takes_what_it_started_down(project):
    pkg, work = project
    with isolate_imports(str(pkg)) as env:
        proc = env.exec(work.leave_behind, True, 600)
        left = wait_until(lambda: [e["left"] for e in env.poll_events(proc, 0.1)], what="the call's event")[0]
        os.kill(proc.pid, signal.SIGKILL)
        wait_until(lambda: gone(left), timeout=10, what="the process a killed call left to end")
        assert env.communicate_isolated(env.exec(work.identity, 5), timeout=60) == 5  # the template goes on


HOST_LEAVING = """\
    import sys, time
    sys.path[:0] = {paths!r}
    from hotswap import isolate_imports
    from {name}.work import leave_behind
    with isolate_imports({pkg!r}) as env:
        proc = env.exec(leave_behind, True, 600)
        while not proc.events:
            env.poll_events(proc, 0.1)
        print(proc.events[0]["left"], flush=True)
        time.sleep(600)
"""


def test_sigkill_of_the_host_takes_down_what_calls_started(project, tmp_path):
    pkg, _ = project
    host = write(tmp_path / "host.py", HOST_LEAVING.format(
        paths=[str(tmp_path / "proj"), str(tmp_path / "site")], name=pkg.name, pkg=str(pkg)))
    popen = subprocess.Popen([sys.executable, str(host)], stdout=subprocess.PIPE, text=True)
    try:
        left = int(popen.stdout.readline())
        assert not gone(left)
        popen.kill()
        popen.wait(10)
        wait_until(lambda: gone(left), timeout=10, what="a detached process of a call to end with the host")
    finally:
        popen.kill()
        popen.wait()
        popen.stdout.close()

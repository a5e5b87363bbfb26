"""hotswap.dask end to end: real clusters on loopback, a client that watches its tree, workers with their own copy.

The client's modules live in ``client/`` (on this process's sys.path, watched); each worker imports from its own
copy, ``worker/``, which is never edited: a worker can only run an edit that was sent to it. The LocalCluster's
workers get ``worker/`` on their sys.path, in place of ``client/``, from a preload script (spawned workers start
with the parent's sys.path); the command-line workers get it through PYTHONPATH, as a deployment would.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import operator
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from distributed import Client, LocalCluster
from proc_helpers import wait_until

import hotswap.dask

REPORT_TIMEOUT_S = 30  # a loaded 2-core machine; a report normally arrives within tens of milliseconds


class Project:
    """The client's tree and the workers' copy of it."""

    def __init__(self, root: Path) -> None:
        self.client_src = root / "client"
        self.worker_src = root / "worker"
        self.client_src.mkdir()
        self.worker_src.mkdir()

    def add(self, source: str, prefix: str = "tasks", client_only: bool = False):
        """Writes a new module into both trees (or only the client's) and imports it here; returns it."""
        name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        text = textwrap.dedent(source)
        (self.client_src / f"{name}.py").write_text(text)
        if not client_only:
            (self.worker_src / f"{name}.py").write_text(text)
        importlib.invalidate_caches()
        return importlib.import_module(name)

    def save(self, module, source: str) -> str:
        """Saves an edit of ``module`` in the client's tree only (the workers' copy stays as it was)."""
        text = textwrap.dedent(source)
        (self.client_src / f"{module.__name__}.py").write_text(text)
        return text


def fresh(text: str) -> dict:
    """What a fresh import of ``text`` defines."""
    namespace: dict = {"__name__": "fresh"}
    exec(compile(text, "<fresh>", "exec"), namespace)
    return namespace


def on_each(client: Client, func, *args):
    """``func(*args)`` run as a task on each worker; results by worker address."""
    workers = sorted(client.scheduler_info()["workers"])
    futures = {addr: client.submit(func, *args, workers=[addr], allow_other_workers=False, pure=False)
               for addr in workers}
    return {addr: future.result(timeout=REPORT_TIMEOUT_S) for addr, future in futures.items()}


def holder(client: Client, future) -> str:
    return next(iter(client.who_has([future])[future.key]))


def next_report(handle, module) -> hotswap.dask.ClusterReport:
    report = handle.wait_for_reload(timeout=REPORT_TIMEOUT_S)
    assert report is not None, "no report"
    assert report.module == module.__name__
    return report


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    project = Project(tmp_path_factory.mktemp("dask"))
    sys.path.insert(0, str(project.client_src))
    yield project
    sys.path.remove(str(project.client_src))


@pytest.fixture(scope="module")
def local(project, tmp_path_factory):
    preload = tmp_path_factory.mktemp("preload") / "worker_path.py"
    # Spawned workers start with this process's sys.path: as on another machine, they see only their own copy.
    preload.write_text(f"import sys\nsys.path[:] = [{str(project.worker_src)!r} if p == {str(project.client_src)!r} "
                       "else p for p in sys.path]\n")
    cluster = LocalCluster(n_workers=2, threads_per_worker=2, processes=True, host="127.0.0.1",
                           dashboard_address=":0", preload=[str(preload)])
    client = Client(cluster)
    yield cluster, client
    client.close()
    cluster.close()


@pytest.fixture
def client(local):
    return local[1]


def test_import_hotswap_never_imports_dask():
    code = "import sys, hotswap, hotswap.watcher; print([m for m in ('dask', 'distributed') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_sent_source_is_what_a_first_import_runs_and_becomes_its_baseline(modules):
    """The worker side, in this process: a module not loaded yet is imported from the sent source."""
    name = f"sent_{uuid.uuid4().hex[:8]}"
    modules.write(name, "STATE = []\n\ndef f():\n    return 1\n")  # the worker's own, older copy
    sent = "STATE = []\n\ndef f():\n    return 2\n"
    try:
        assert hotswap.dask._apply_sent([(name, sent)], "changed") == [hotswap.dask.WorkerReload("on import")]
        module = importlib.import_module(name)
        modules.names.append(name)
        f = module.f
        assert f() == 2 and hotswap.running_source(module) == sent.encode()
        module.STATE.append(1)
        report = hotswap.reload(module, source=sent.replace("return 2", "return 3"))
        assert report.ok and report.executed == 0 and report.patched == ("f",), report
        assert f() == 3 and module.STATE == [1]  # the baseline was the sent source: only `f` changed
    finally:
        hotswap.dask._forget_sent()
        sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, hotswap.dask._SentSourceFinder)]


def test_a_name_the_worker_cannot_import_is_skipped_and_never_created():
    name = f"nowhere_{uuid.uuid4().hex[:8]}"
    [result] = hotswap.dask._apply_sent([(name, "x = 1\n")], "changed")
    assert result.status == "skipped" and name in result.reason and not result.ok
    assert name not in sys.modules and importlib.util.find_spec(name) is None


FUNC = """
RATE = 2

def price(x):
    return x * RATE

def total(xs):
    return sum(price(x) for x in xs)
"""


def test_function_edit_reaches_every_worker_in_place(project, client):
    tasks = project.add(FUNC)
    [data] = client.scatter([[1, 2, 3]], broadcast=True)  # held by every worker, from before the edit
    assert set(on_each(client, tasks.total, data).values()) == {12}
    pids = client.run(os.getpid)
    total = tasks.total  # a reference taken before the edit

    with hotswap.dask.attach(client, path=project.client_src) as handle:
        new = project.save(tasks, FUNC.replace("x * RATE", "x * RATE + 100"))
        report = next_report(handle, tasks)

        assert report.ok and report.not_sent is None, report.summary()
        assert sorted(report.applied) == sorted(pids)
        assert all(w.report is not None and "price" in w.report.patched for w in report.workers.values())
        expected = fresh(new)["total"]([1, 2, 3])
        assert expected == 312
        assert on_each(client, tasks.total, data) == {addr: expected for addr in pids}
        assert total([1, 2, 3]) == expected  # and here, on the client
        assert data.status == "finished"  # the scattered data is still held: nothing was restarted
        assert client.run(os.getpid) == pids
        assert handle.sources == {tasks.__name__: new}
    assert (project.worker_src / f"{tasks.__name__}.py").read_text() == textwrap.dedent(FUNC)


SLOW = """
import os
import time

def slow(started, go):
    open(started, "w").close()
    while not os.path.exists(go):
        time.sleep(0.005)
    return "old"
"""


def test_running_task_finishes_with_its_code_next_task_runs_new(project, client, tmp_path):
    tasks = project.add(SLOW)
    started, go = tmp_path / "started", tmp_path / "go"
    with hotswap.dask.attach(client, path=project.client_src) as handle:
        running = client.submit(tasks.slow, str(started), str(go), pure=False)
        wait_until(started.exists, REPORT_TIMEOUT_S, what="the task to start")

        project.save(tasks, SLOW.replace('"old"', '"new"'))
        assert next_report(handle, tasks).ok
        go.touch()

        assert running.result(timeout=REPORT_TIMEOUT_S) == "old"
        addr = holder(client, running)
        again = client.submit(tasks.slow, str(tmp_path / "started2"), str(go), workers=[addr], pure=False)
        assert again.result(timeout=REPORT_TIMEOUT_S) == "new"


COUNTER = """
class Counter:
    def __init__(self):
        self.n = 0

    def bump(self):
        self.n += 1
        return self.n
"""


def test_instances_held_on_workers_run_the_new_method(project, client):
    tasks = project.add(COUNTER)
    made = client.submit(tasks.Counter, pure=False)  # made on a worker, kept there
    [scattered] = client.scatter([tasks.Counter()])
    made.result(REPORT_TIMEOUT_S)
    bump = operator.methodcaller("bump")

    def bump_where_held(future):
        return client.submit(bump, future, workers=[holder(client, future)], pure=False).result(REPORT_TIMEOUT_S)

    assert bump_where_held(made) == 1 and bump_where_held(scattered) == 1
    with hotswap.dask.attach(client, path=project.client_src) as handle:
        new = project.save(tasks, COUNTER.replace("self.n += 1", "self.n += 10"))
        report = next_report(handle, tasks)
        assert report.ok, report.summary()

        # The same instances (their state kept), the new method: as a fresh class would bump them.
        expected = fresh(new)["Counter"]()
        expected.n = 1
        assert bump_where_held(made) == bump_where_held(scattered) == expected.bump() == 11
        checks = client.submit(isinstance, made, tasks.Counter, workers=[holder(client, made)], pure=False)
        assert checks.result(REPORT_TIMEOUT_S) is True


def test_broken_save_is_reported_per_worker_and_nothing_applied(project, client, caplog):
    tasks = project.add(FUNC)
    # A module only the client has: a save that starts importing it applies here and fails on every worker.
    helper = project.add("BONUS = 1000\n", prefix="client_only", client_only=True)
    pids = client.run(os.getpid)
    caplog.set_level(logging.INFO, logger="hotswap")
    with hotswap.dask.attach(client, path=project.client_src) as handle:
        project.save(tasks, FUNC.replace("x * RATE", "x * RATE +"))  # a syntax error
        report = next_report(handle, tasks)
        assert report.workers == {} and "SyntaxError" in (report.not_sent or "")
        assert set(on_each(client, tasks.total, [1, 2, 3]).values()) == {12}

        edit = f"import {helper.__name__}\n" + FUNC.replace("x * RATE", f"x * RATE + {helper.__name__}.BONUS")
        project.save(tasks, edit)
        report = next_report(handle, tasks)
        assert report.local.ok and not report.ok
        assert sorted(report.failed) == sorted(pids)
        assert all("ModuleNotFoundError" in reason and helper.__name__ in reason for reason in report.failed.values())
        assert tasks.total([1, 2, 3]) == fresh(edit)["total"]([1, 2, 3]) == 3012  # the client runs it
        assert set(on_each(client, tasks.total, [1, 2, 3]).values()) == {12}  # the workers, all old code
        line = next(r.getMessage() for r in caplog.records if "failed on" in r.getMessage())
        assert all(addr in line for addr in pids) and "applied on 0 of 2 dask workers" in line

        project.save(tasks, FUNC.replace("x * RATE", "x * RATE * 3"))  # the next good save applies everywhere
        report = next_report(handle, tasks)
        assert report.ok and len(report.applied) == 2, report.summary()
        assert set(on_each(client, tasks.total, [1, 2, 3]).values()) == {36}
    assert client.run(os.getpid) == pids


def test_after_detach_upload_file_and_importlib_reload_work_as_without_hotswap(project, client, tmp_path):
    tasks = project.add(FUNC)
    on_each(client, tasks.total, [1, 2, 3])  # loaded everywhere
    with hotswap.dask.attach(client, path=project.client_src) as handle:
        project.save(tasks, FUNC.replace("RATE = 2", "RATE = 3"))
        assert next_report(handle, tasks).ok
    assert set(on_each(client, tasks.total, [1, 2, 3]).values()) == {18}  # the workers keep what they were sent
    upload = tmp_path / f"{tasks.__name__}.py"
    upload.write_text(textwrap.dedent(FUNC.replace("RATE = 2", "RATE = 4")))
    client.upload_file(str(upload))  # Dask writes it next to each worker and re-imports it
    assert set(on_each(client, tasks.total, [1, 2, 3]).values()) == {24}


def edit_then_add_worker(project, client, add_worker, rate: int) -> str:
    """Saves an edit of a fresh module, then adds a worker (whose own copy is the old one); that worker runs the
    edit. Returns the new worker's address."""
    tasks = project.add(FUNC)
    with hotswap.dask.attach(client, path=project.client_src) as handle:
        project.save(tasks, FUNC.replace("RATE = 2", f"RATE = {rate}"))
        assert next_report(handle, tasks).ok
        before = set(client.scheduler_info()["workers"])
        add_worker(len(before) + 1)
        client.wait_for_workers(len(before) + 1, timeout=REPORT_TIMEOUT_S)
        [joined] = set(client.scheduler_info()["workers"]) - before
        future = client.submit(tasks.total, [1, 2, 3], workers=[joined], allow_other_workers=False, pure=False)
        assert future.result(REPORT_TIMEOUT_S) == 6 * rate
        assert set(on_each(client, tasks.total, [1, 2, 3]).values()) == {6 * rate}
    assert (project.worker_src / f"{tasks.__name__}.py").read_text() == textwrap.dedent(FUNC)
    return joined


def test_worker_added_after_the_edit_runs_the_new_code(project, local):
    cluster, client = local
    edit_then_add_worker(project, client, cluster.scale, rate=3)


# -- `dask scheduler` / `dask worker` started from the command line ---------------------------------------------


class CommandLineCluster:
    def __init__(self, root: Path, worker_src: Path) -> None:
        self.root = root
        self.scheduler_file = root / "scheduler.json"
        self.env = dict(os.environ, PYTHONPATH=str(worker_src))
        self.procs: list[subprocess.Popen] = []
        self.start("distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard")
        wait_until(self.scheduler_file.exists, REPORT_TIMEOUT_S, what="the scheduler file")

    def start(self, module: str, *args: str) -> None:
        log = open(self.root / f"proc{len(self.procs)}.log", "wb")
        self.procs.append(subprocess.Popen(
            [sys.executable, "-m", module, *args, "--scheduler-file", str(self.scheduler_file)],
            env=self.env, cwd=self.root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        log.close()

    def add_worker(self) -> None:
        self.start("distributed.cli.dask_worker", "--host", "127.0.0.1", "--nthreads", "1", "--no-dashboard")

    def close(self) -> None:
        for proc in reversed(self.procs):  # each in its own session: the nanny's worker process goes too
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for proc in self.procs:
            try:
                proc.wait(REPORT_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


SLOTS = """
class Point:
    __slots__ = ("x",)

    def __init__(self, x):
        self.x = x

def make(x):
    return Point(x)

def fields(p):
    return type(p).__slots__

def slots():
    return Point.__slots__
"""


@pytest.fixture(scope="module")
def cli(project, tmp_path_factory):
    cluster = CommandLineCluster(tmp_path_factory.mktemp("cli"), project.worker_src)
    try:
        cluster.add_worker()
        cluster.add_worker()
        client = Client(scheduler_file=str(cluster.scheduler_file))
        try:
            client.wait_for_workers(2, timeout=REPORT_TIMEOUT_S)
            yield cluster, client
        finally:
            client.close()
    finally:
        cluster.close()


def test_command_line_cluster_edit_in_place(project, cli):
    cluster, client = cli
    tasks = project.add(FUNC)
    [data] = client.scatter([[1, 2, 3]], broadcast=True)
    pids = client.run(os.getpid)
    with hotswap.dask.attach(client, path=project.client_src) as handle:
        new = project.save(tasks, FUNC.replace("RATE = 2", "RATE = 5"))
        report = next_report(handle, tasks)
        assert report.ok and sorted(report.applied) == sorted(pids), report.summary()
        assert on_each(client, tasks.total, data) == {addr: fresh(new)["total"]([1, 2, 3]) for addr in pids}
        assert client.run(os.getpid) == pids and data.status == "finished"

        project.save(tasks, "def total(xs:\n")  # broken: not sent, the workers keep the last good code
        report = next_report(handle, tasks)
        assert report.not_sent and not report.workers
        assert on_each(client, tasks.total, data) == {addr: 30 for addr in pids}


def test_command_line_worker_added_after_the_edit(project, cli):
    cluster, client = cli
    edit_then_add_worker(project, client, lambda n: cluster.add_worker(), rate=7)


def test_command_line_needs_restart_then_restart_workers(project, cli):
    cluster, client = cli
    tasks = project.add(FUNC)
    points = project.add(SLOTS)
    on_each(client, points.make, 0)  # every worker has it loaded
    held = client.submit(points.make, 1, pure=False)
    held.result(REPORT_TIMEOUT_S)
    pids = client.run(os.getpid)
    with hotswap.dask.attach(client, path=project.client_src) as handle:
        project.save(tasks, FUNC.replace("RATE = 2", "RATE = 5"))
        assert next_report(handle, tasks).ok
        # An edit that cannot be applied in place: said per worker, nothing restarted until asked.
        project.save(points, SLOTS.replace('("x",)', '("x", "y")'))
        report = next_report(handle, points)
        assert sorted(report.needs_restart) == sorted(pids), report.summary()
        assert all("__slots__" in reason for reason in report.needs_restart.values())
        assert "restart_workers" in report.summary()
        assert client.submit(points.fields, held, workers=[holder(client, held)], pure=False).result(
            REPORT_TIMEOUT_S) == ("x",)  # an instance made before keeps its class
        assert client.run(os.getpid) == pids

        hotswap.dask.restart_workers(client, timeout_s=REPORT_TIMEOUT_S)
        client.wait_for_workers(len(pids), timeout=REPORT_TIMEOUT_S)
        assert not set(client.run(os.getpid).values()) & set(pids.values())
        # Restarted workers import the sent sources (their own copies are the old ones): the new slots, and the
        # last good `total`.
        assert set(on_each(client, points.slots).values()) == {("x", "y")}
        assert set(on_each(client, tasks.total, [1, 2, 3]).values()) == {30}

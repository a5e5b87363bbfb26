"""``hotswap run``: run a program in a process forked from a warm template, patch edits in place, restart when needed.

Mechanism: the supervisor (this process) scans the project's imports (``scan_imports``; it never imports the
project), starts an ``isolate_imports`` template holding the third-party set, and runs the program as an isolated
call (``run_program``) in a forked child. Inside the child an ``AutoReloader`` patches saved files into the running
program and reports every reload to the supervisor as an event on the call's channel. The supervisor restarts the
child (stop, then fork a fresh one) when a report says ``needs_restart``, or when a rescan after a reload shows a
changed third-party import set (the template is rebuilt first). While no program runs (it ended, crashed, or the
reloader is unavailable) the supervisor polls the project's files itself (size and mtime, every 200 ms), and the
files the program's modules read at import (which the program reports as it ends), and restarts on the next
save. Trade-off: the supervisor stays small and import-free, at the price of a polling loop while the program is
down.

The program keeps the terminal: it inherits the supervisor's stdin, stdout and stderr and stays in its process
group. Ctrl-C reaches the program (from the terminal) or is forwarded to it (``kill -INT`` of the supervisor); the
supervisor then waits briefly, escalates to SIGTERM and SIGKILL, stops the template and exits with the program's
status when it ended on its own (130 otherwise).
"""

from __future__ import annotations

import argparse
import builtins
import contextlib
import fnmatch
import importlib.machinery
import os
import re
import runpy
import signal
import sys
import time
import traceback
import types
from collections.abc import Sequence
from typing import Any

from .imports import ImportRecord, ImportScan, classify, scan_imports
from .template import ImportEnvironment, IsolatedProcess, emit_event

__all__ = ["main", "run_program"]

#: How long the program may take to end after Ctrl-C before it gets SIGTERM (then SIGKILL after the env's grace).
INTERRUPT_GRACE_S = 2.0
POLL_S = 0.2
#: Always watched besides Python files: templates, whose engines' caches the framework adapters clear on save.
TEMPLATE_PATTERNS = ("*.html", "*.htm", "*.jinja", "*.jinja2", "*.j2", "*.txt", "*.xml")


def _say(message: str) -> None:
    # One write per line: the program's spawned children say theirs on the same stderr at the same moments, and
    # print() writes the text and its newline separately.
    sys.stderr.write(f"hotswap: {message}\n")
    sys.stderr.flush()


# ----------------------------------------------------------------------------------------------------- the child


def run_program(spec: dict[str, Any]) -> int:
    """Runs the user's program in this (forked) process with an ``AutoReloader`` reporting to the supervisor.

    The process is first made to look like ``python script.py args`` / ``python -m module args`` would
    (``_become_program``); framework adapters are installed and servers' own re-executing reloaders bypassed.
    """
    _become_program(spec)
    program_pid = os.getpid()
    from . import frameworks
    from .frameworks import servers

    frameworks.install()
    servers.bypass_reloaders(_say)
    _follow_spawned_children(spec)
    reloader = None
    try:
        from .watcher import AutoReloader
    except ImportError as err:
        emit_event({"event": "no_reloader", "reason": f"{type(err).__name__}: {err}"})
    else:

        def on_reload(report: Any) -> None:
            # Also called in children the program forks (their reloader is this one, restarted): the pid tells
            # the supervisor whose report it is.
            emit_event({"event": "reload", "module": report.module, "path": report.path, "ok": report.ok,
                        "needs_restart": report.needs_restart, "summary": report.summary(), "pid": os.getpid()})

        def on_other_file(path: str) -> None:
            # A template is handled by its engine's adapter; a file the user asked to watch restarts the program.
            if not frameworks.file_saved(path) and _matches(path, spec["include"]):
                emit_event({"event": "file", "path": path})

        try:
            reloader = AutoReloader(spec["paths"], include=("*.py", *TEMPLATE_PATTERNS, *spec["include"]),
                                    mode=spec["mode"],
                                    clear=spec["clear"], on_reload=on_reload, on_other_file=on_other_file)
        except Exception as err:  # noqa: BLE001 - a reloader that cannot start must not stop the program
            emit_event({"event": "no_reloader", "reason": f"{type(err).__name__}: {err}"})
    emit_event({"event": "started", "pid": os.getpid()})
    try:
        if spec["module"]:
            _run_module_as_main(spec["module"])
        else:
            _run_script_as_main(spec["script"])
    except SystemExit:
        raise
    except KeyboardInterrupt as exc:
        _print_program_error(exc)
        raise SystemExit(128 + signal.SIGINT) from None
    except BaseException as exc:  # noqa: BLE001 - the program crashed: show it as Python would
        _print_program_error(exc)
        raise SystemExit(1) from None
    finally:
        if reloader is not None:
            with contextlib.suppress(Exception):
                reloader.stop()
        if os.getpid() == program_pid:  # not in a child the program forked that unwinds through here
            _report_data_files()
    return 0


def _report_data_files() -> None:
    """Tells the supervisor, as the program ends, which files its modules read while their top-level code ran
    (``hotswap._datafiles``): while the program is down the supervisor watches them with the sources, so a fix of
    the config that made the program crash restarts it."""
    from . import _datafiles

    with contextlib.suppress(Exception):
        emit_event({"event": "data_files", "paths": sorted(_datafiles.every_file())})


# ------------------------------------------------------------------------------ children started with spawn

#: The fields of the spec a spawned child needs to watch and patch as the program does.
_CHILD_SPEC = ("paths", "include", "mode")


def _follow_spawned_children(spec: dict[str, Any]) -> None:
    """Makes every child the program starts with multiprocessing's spawn (``uvicorn --workers N``, a spawn
    ``Pool``) run ``spawned_child`` before its own code: each child patches saved files into itself. So does the
    server of the forkserver start method, whose children then inherit its reloader through ``os.fork``.

    Mechanism: ``multiprocessing.spawn.get_command_line`` (the one place that writes a spawned child's
    ``python -c 'from multiprocessing.spawn import spawn_main; ...'``) is wrapped, once it is imported, so the
    ``-c`` code first calls ``spawned_child`` with the watch settings; the forkserver writes its own command and
    starts it with ``multiprocessing.util.spawnv_passfds``, wrapped the same way for that command only. Nothing is
    imported until the program itself imports multiprocessing's spawn or forkserver support; forked children
    inherit the reloader through ``os.fork``.
    """
    from .frameworks import when_imported

    child = {key: spec[key] for key in _CHILD_SPEC}
    when_imported("multiprocessing.spawn", lambda module: _wrap_spawn_command(module, child))
    when_imported("multiprocessing.forkserver", lambda module: _wrap_forkserver_start(module, child))


def _with_spawned_child(command: Sequence[str], child: dict[str, Any], code_prefix: str = "",
                        forkserver: bool = False) -> list[str]:
    """``command`` (``python ... -c CODE ...``) with CODE made to call ``spawned_child`` first, if CODE starts with
    ``code_prefix``."""
    command = list(command)
    if "-c" in command[:-1]:
        at = command.index("-c") + 1
        if command[at].startswith(code_prefix):
            spec = dict(child, parent_modules=_modules_under(child["paths"]), forkserver=forkserver)
            command[at] = f"import hotswap.run; hotswap.run.spawned_child({spec!r}); {command[at]}"
    return command


def _wrap_spawn_command(spawn: types.ModuleType, child: dict[str, Any]) -> None:
    get_command_line = spawn.get_command_line
    if getattr(get_command_line, "_hotswap", False):
        return

    def command_line(**kwds: Any) -> list[str]:
        return _with_spawned_child(get_command_line(**kwds), child)

    command_line._hotswap = True  # type: ignore[attr-defined]
    spawn.get_command_line = command_line


def _wrap_forkserver_start(forkserver: types.ModuleType, child: dict[str, Any]) -> None:
    util = forkserver.util  # the module whose spawnv_passfds ForkServer.ensure_running calls (3.9-3.13)
    spawnv_passfds = util.spawnv_passfds
    if getattr(spawnv_passfds, "_hotswap", False):
        return

    def start(path: Any, args: Sequence[str], passfds: Any) -> int:
        # Only the forkserver's command: the resource tracker, started the same way, runs no user code.
        return spawnv_passfds(path, _with_spawned_child(args, child, "from multiprocessing.forkserver import", True),
                              passfds)

    start._hotswap = True  # type: ignore[attr-defined]
    util.spawnv_passfds = start


#: Above this many characters of names, a spawned child is not told which modules its parent runs (the list goes on
#: its command line, where one argument may hold 128 KiB on Linux); it then ends itself for every restart, as a
#: server worker does.
_MAX_PARENT_MODULES_CHARS = 32 * 1024


def _modules_under(paths: Sequence[str]) -> list[str] | None:
    """Names of the loaded modules whose files are under ``paths`` (``__main__`` as ``__mp_main__``, the name a
    spawned child gives the same script), or None when there are too many to pass on."""
    roots = tuple({os.path.join(os.path.abspath(p), "") for p in paths}
                  | {os.path.join(os.path.realpath(p), "") for p in paths})
    names = []
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if isinstance(file, str) and os.path.abspath(file).startswith(roots):
            names.append("__mp_main__" if name == "__main__" else name)
    return sorted(names) if sum(len(name) + 4 for name in names) <= _MAX_PARENT_MODULES_CHARS else None


def spawned_child(child: dict[str, Any]) -> None:
    """Runs first in a child started with spawn under ``hotswap run``: framework adapters and an ``AutoReloader``
    as in the program, each reload said on one line naming the process.

    A reload that needs a restart ends the child with SIGTERM, the signal servers take as "shut down gracefully":
    uvicorn's supervisor then starts a fresh worker, which imports the new code. Not when the process that started
    the child runs that module too (``child["parent_modules"]``, as it was when the child was started): that
    process's own reloader sees the same save, and under ``hotswap run`` the program's restart replaces the child
    with the rest of the program. Ending a pool's worker (a spawn ``multiprocessing.Pool``, a
    ``ProcessPoolExecutor``) would lose its task or break the pool just before that restart.
    """
    from . import frameworks

    frameworks.install()
    _follow_spawned_children(child)
    try:
        from .watcher import AutoReloader
    except ImportError as err:
        _say(f"[{os.getpid()}] live patching unavailable in this child ({type(err).__name__}: {err})")
        return

    parent_modules = child.get("parent_modules")
    # A forkserver never ends itself (no new worker could start); the workers it forks inherit this callback.
    server_pid = os.getpid() if child.get("forkserver") else None

    def on_reload(report: Any) -> None:
        _say(f"[{os.getpid()}] {report.summary()}")
        if not report.needs_restart:
            return
        if parent_modules is not None and report.module in parent_modules:
            _say(f"[{os.getpid()}] {report.module} needs a restart; left to the process that started this child, "
                 "which runs it too")
            return
        if os.getpid() == server_pid:
            _say(f"[{os.getpid()}] {report.module} needs a restart; a forkserver does not end itself: restart the "
                 "program to bring its workers up to date")
            return
        _say(f"[{os.getpid()}] ending this child for a restart: {report.needs_restart}")
        os.kill(os.getpid(), signal.SIGTERM)

    try:
        reloader = AutoReloader(child["paths"], include=("*.py", *TEMPLATE_PATTERNS, *child["include"]),
                                mode=child["mode"], on_reload=on_reload, on_other_file=frameworks.file_saved)
    except Exception as err:  # noqa: BLE001 - a reloader that cannot start must not stop the child
        _say(f"[{os.getpid()}] live patching unavailable in this child ({type(err).__name__}: {err})")
        return
    _children_reloaders.append(reloader)


_children_reloaders: list = []  # keeps a spawned child's reloader alive for its whole life


def _matches(path: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatch(os.path.basename(path), p) or fnmatch.fnmatch(path, p) for p in patterns)


def _become_program(spec: dict[str, Any]) -> None:
    """``sys.argv``, ``sys.orig_argv``, ``sys.path`` and a fresh ``__main__`` as in a plain run of the program."""
    sys.argv = list(spec["argv"])
    if hasattr(sys, "orig_argv"):
        sys.orig_argv = list(spec["orig_argv"])
    sys.path[:] = spec["sys_path"]
    main = types.ModuleType("__main__")
    main.__builtins__ = builtins  # type: ignore[attr-defined]
    sys.modules["__main__"] = main


def _run_script_as_main(script: str) -> None:
    """Runs a script in the real ``__main__`` module, as ``python script.py`` does (and keeps it afterwards)."""
    import hotswap

    main = sys.modules["__main__"]
    path = os.path.abspath(script)
    main.__file__ = path
    main.__cached__ = None  # type: ignore[attr-defined]
    main.__loader__ = importlib.machinery.SourceFileLoader("__main__", path)  # type: ignore[attr-defined]
    main.__spec__ = None
    with open(path, "rb") as f:
        source = f.read()
    hotswap.track(main)
    code = compile(source, path, "exec", dont_inherit=True)
    exec(code, main.__dict__)


def _run_module_as_main(module: str) -> None:
    """Runs a module as ``python -m`` does: ``runpy._run_module_as_main`` is the very function ``-m`` calls.

    ``runpy.run_module`` would run it in a temporary module, dropped after the run, unlike ``-m``; the private
    function is present with this signature in every CPython 3.9-3.13.
    """
    run_as_main = getattr(runpy, "_run_module_as_main", None)
    if run_as_main is None:  # pragma: no cover - a future CPython without it
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    else:
        run_as_main(module, alter_argv=True)


def _print_program_error(exc: BaseException) -> None:
    """Prints the program's traceback as Python would: starting at the program's frame, not at hotswap's."""
    tb = exc.__traceback__
    here = os.path.dirname(os.path.abspath(__file__))
    while tb is not None and (tb.tb_frame.f_code.co_filename.startswith(here + os.sep)
                              or tb.tb_frame.f_code.co_filename == runpy.__file__):
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb)


# ------------------------------------------------------------------------------------------------ the supervisor


_SKIP_DIRS = {"__pycache__", "node_modules", "site-packages", "dist-packages"}


def _snapshot(paths: Sequence[str], include: Sequence[str] = (),
              files: Sequence[str] = ()) -> dict[str, tuple[int, int]]:
    """(mtime_ns, size) of every .py file under ``paths``, of files matching the ``include`` patterns, and of
    ``files`` wherever they are."""
    out: dict[str, tuple[int, int]] = {}
    for path in files:
        with contextlib.suppress(OSError):
            st = os.stat(path)
            out[path] = (st.st_mtime_ns, st.st_size)
    for root in paths:
        if os.path.isfile(root):
            with contextlib.suppress(OSError):
                st = os.stat(root)
                out[root] = (st.st_mtime_ns, st.st_size)
            continue
        for directory, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if not d.startswith(".") and d not in _SKIP_DIRS
                       and not os.path.exists(os.path.join(directory, d, "pyvenv.cfg"))]
            for name in files:
                if name.endswith(".py") or _matches(name, include):
                    path = os.path.join(directory, name)
                    with contextlib.suppress(OSError):
                        st = os.stat(path)
                        out[path] = (st.st_mtime_ns, st.st_size)
    return out


def _interpreter_sys_path() -> list[str]:
    """This interpreter's ``sys.path`` without the entry its own start added (the supervisor's script directory,
    or the current directory for ``python -m hotswap``): what any program run by it starts from."""
    path = list(sys.path)
    if path and not (sys.flags.isolated or getattr(sys.flags, "safe_path", False)):
        path = path[1:]
    return path


def _program_sys_path(script: str | None, interpreter_path: Sequence[str]) -> list[str]:
    """``sys.path`` of ``python script.py`` (the script's real directory first) or ``python -m`` (the current
    directory first); nothing is prepended under ``-P``/``PYTHONSAFEPATH`` or ``-I``, as Python does."""
    if sys.flags.isolated or getattr(sys.flags, "safe_path", False):
        first: list[str] = []
    else:
        first = [os.path.dirname(os.path.realpath(script)) if script else os.getcwd()]
    return first + [p for p in interpreter_path if p not in first]


_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def _module_argument(arg: str) -> str:
    """The module an argument names, if it looks like one: ``app.main:app`` -> ``app.main``,
    ``--app=app:create_app()`` -> ``app``, ``manage.py`` -> ``manage.py`` (a file); else ``""``."""
    value = arg.split("=", 1)[1] if arg.startswith("--") and "=" in arg else arg
    if value.endswith(".py") and os.path.isfile(value):
        return value
    value = value.split(":", 1)[0]
    return value if _MODULE_NAME.match(value) else ""


def _module_file(name: str, search: Sequence[str]) -> list[str]:
    """The source files ``import name`` runs from the directories ``search``: each package's ``__init__.py``
    on the way, then the module's own file. Empty when it is not found there."""
    files: list[str] = []
    for directory in search:
        base = os.path.join(directory, *name.split("."))
        found = [f for f in (base + ".py", os.path.join(base, "__init__.py")) if os.path.isfile(f)]
        if not found:
            continue
        parts = name.split(".")
        for i in range(1, len(parts)):
            init = os.path.join(directory, *parts[:i], "__init__.py")
            if os.path.isfile(init):
                files.append(init)
        return files + found[:1]
    return files


def entry_scan(entries: Sequence[str], roots: Sequence[str], search: Sequence[str]) -> ImportScan:
    """The imports of the program's own import graph: the entry files or modules, then every first-party module
    they import, transitively. Files under ``roots`` that nothing reaches (tests, scripts, vendored trees) are
    not scanned, so their third-party imports are not preloaded.

    ``entries`` are files or dotted module names (a third-party entry, ``-m uvicorn``, is itself preloaded);
    ``search`` is where first-party modules are looked up (the program's ``sys.path`` entries under ``roots``).
    """
    real_roots = [os.path.realpath(r) for r in roots]
    dirs = [d for d in search if any(os.path.realpath(d) == r or os.path.realpath(d).startswith(r + os.sep)
                                     for r in real_roots)] or list(roots)
    records: list[ImportRecord] = []
    skipped: list[tuple[str, str]] = []
    seen: set[str] = set()
    todo: list[str] = []
    for entry in entries:
        if os.path.isfile(entry):
            todo.append(os.path.abspath(entry))
            continue
        files = _module_file(entry, dirs)
        if files:
            todo.extend(files)
            package_main = os.path.join(os.path.dirname(files[-1]), "__main__.py")
            if files[-1].endswith("__init__.py") and os.path.isfile(package_main):
                todo.append(package_main)
        elif entry == entries[0] and classify(entry, real_roots) == "third_party":
            records.append(ImportRecord(module=entry, name=None, lineno=0, kind="third_party",
                                        type_checking_only=False, file=""))
    while todo:
        batch = sorted({f for f in todo if f not in seen})
        todo = []
        if not batch:
            break
        seen.update(batch)
        scan = scan_imports(batch, first_party=list(roots))
        records.extend(scan.imports)
        skipped.extend(scan.skipped)
        for record in scan.imports:
            if record.kind != "first_party" or record.type_checking_only:
                continue
            todo.extend(_module_file(record.module, dirs))
            if record.name and record.name != "*":
                todo.extend(_module_file(f"{record.module}.{record.name}", dirs)[-1:])
    records.sort(key=lambda r: (r.file, r.lineno))
    return ImportScan(roots=tuple(roots), imports=tuple(records), skipped=tuple(sorted(set(skipped))))


class _EntryEnvironment(ImportEnvironment):
    """An ``ImportEnvironment`` whose template preloads what the program's own import graph reaches."""

    def __init__(self, entries: Sequence[str], roots: Sequence[str], **kwargs: Any) -> None:
        self.entries = list(entries)
        self.roots = list(roots)
        super().__init__(list(roots), **kwargs)

    def _scan(self) -> ImportScan:
        return entry_scan(self.entries, self.roots, sys.path)


class _Interrupted(Exception):
    pass


class Supervisor:
    """Runs one program under ``hotswap run``; see the module docstring."""

    def __init__(self, *, script: str | None, module: str | None, args: Sequence[str], paths: Sequence[str],
                 mode: str, template: bool, clear: bool, include: Sequence[str] = (),
                 interpreter_path: Sequence[str] | None = None) -> None:
        self.script_arg = script
        self.script = os.path.abspath(script) if script else None
        self.module = module
        self.args = list(args)
        self.paths = [os.path.abspath(p) for p in paths]
        self.include = list(include)
        self.program_path = _program_sys_path(self.script, sys.path if interpreter_path is None else interpreter_path)
        self.mode = mode
        self.use_template = template
        self.clear = clear
        self.env: ImportEnvironment | None = None
        self.proc: IsolatedProcess | None = None
        self.last_status: int | None = None
        self.reloader_available = True
        self.interrupted = False
        #: Files the program's modules read at import, as its last run reported them when it ended (watched
        #: while the program is down).
        self.data_files: list[str] = []

    # --------------------------------------------------------------- lifecycle

    def run(self) -> int:
        # The template imports with the program's sys.path; the program gets it exactly (see _become_program).
        sys.path[:] = self.program_path
        previous = signal.signal(signal.SIGINT, self._on_signal)
        previous_term = signal.signal(signal.SIGTERM, self._on_signal)
        try:
            started = time.perf_counter()
            self.env = _EntryEnvironment(self._entry_points(), self.paths, fork=None if self.use_template else False)
            if self.env.fork:
                _say(f"template ready in {(time.perf_counter() - started) * 1000:.0f} ms "
                     f"({len(self.env.preloaded)} third-party modules preloaded"
                     + (f", {len(self.env.not_preloaded)} left out" if self.env.not_preloaded else "") + ")")
            self._start()
            self._loop()
        except _Interrupted:
            pass
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            self._shutdown()
            signal.signal(signal.SIGINT, previous)
            signal.signal(signal.SIGTERM, previous_term)
        return self._exit_code()

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.interrupted:
            return
        self.interrupted = True
        raise _Interrupted()

    def _exit_code(self) -> int:
        status = self.last_status
        if status is None:
            return 128 + signal.SIGINT
        return 128 - status if status < 0 else status

    def _spec(self) -> dict[str, Any]:
        argv = [self.script_arg or self.module or ""] + self.args
        interpreter = getattr(sys, "orig_argv", [sys.executable])[:1] or [sys.executable]
        orig_argv = interpreter + (["-m", self.module] if self.module else [self.script_arg or ""]) + self.args
        return {"argv": argv, "orig_argv": orig_argv, "sys_path": self.program_path, "script": self.script,
                "module": self.module, "paths": self.paths, "include": self.include, "mode": self.mode,
                "clear": self.clear}

    def _entry_points(self) -> list[str]:
        """Where the program's own code starts: the script or module, and modules named in its arguments
        (``app:app`` for uvicorn and gunicorn, ``--app app`` for flask, ``DJANGO_SETTINGS_MODULE``)."""
        entries = [self.script] if self.script else [self.module or ""]
        entries += [_module_argument(arg) for arg in self.args]
        entries.append(os.environ.get("DJANGO_SETTINGS_MODULE", ""))
        return [e for e in entries if e]

    def _start(self) -> None:
        assert self.env is not None
        if self.clear:
            print("\x1b[2J\x1b[H", end="", flush=True)
        self.last_status = None
        self.proc = self.env.exec(run_program, self._spec(), name=self.script or self.module)

    def _restart(self, reason: str) -> None:
        assert self.env is not None
        started = time.perf_counter()
        _say(f"restarting: {reason} ...")
        if self.proc is not None and self.proc.returncode is None:
            self.env.stop_isolated(self.proc)
        changed = self.env.update_environment()
        if changed:
            _say(f"third-party imports changed; template rebuilt ({len(self.env.preloaded)} modules preloaded)")
        self._start()
        _say(f"restarted in {(time.perf_counter() - started) * 1000:.0f} ms")

    # -------------------------------------------------------------------- loop

    def _loop(self) -> None:
        assert self.env is not None
        snapshot = self._snapshot()
        third_party = self.env.modules
        while True:
            proc = self.proc
            assert proc is not None
            if proc.returncode is None:
                restart = self._on_events(self.env.poll_events(proc, POLL_S), third_party)
                if restart:
                    self._restart(restart)
                    third_party = self.env.modules
                    snapshot = self._snapshot()
                    continue
                status = self.env.poll_isolated(proc)
                if status is None and proc._chan is None and proc._popen is None:
                    status = self._wait_status(proc)
                if status is not None:
                    self.last_status = status
                    # Its last events (the files it read at import) may have come with its end.
                    self._on_events(self.env.poll_events(proc, 0), third_party)
                    # The files as they are before the user is told: a save made after the message is a change.
                    snapshot = self._snapshot()
                    _say(f"program exited with {self._describe(status)}; save a file to restart it, "
                         "Ctrl-C to quit")
                    continue
                if self.reloader_available:
                    continue
            else:
                time.sleep(POLL_S)
            # The program is not running, or cannot patch itself: restart on the next save.
            current = self._snapshot()
            if current != snapshot:
                changed = sorted(p for p in set(current) | set(snapshot) if current.get(p) != snapshot.get(p))
                snapshot = current
                self._restart(f"{os.path.relpath(changed[0])} changed" + (
                    f" (and {len(changed) - 1} more)" if len(changed) > 1 else ""))
                third_party = self.env.modules

    def _on_events(self, events: list[dict[str, Any]], third_party: Sequence[str]) -> str | None:
        """Handles the program's events; returns why it must restart, or None."""
        restart = None
        for event in events:
            kind = event.get("event")
            if kind == "no_reloader":
                self.reloader_available = False
                _say(f"live patching unavailable ({event.get('reason')}); restarting on every save")
            elif kind == "reload":
                pid = event.get("pid")
                # A child the program forked (a gunicorn worker, a fork pool's) reports through the same channel.
                who = f"[{pid}] " if pid is not None and self.proc is not None and pid != self.proc.pid else ""
                _say(who + str(event.get("summary")))
                if event.get("needs_restart"):
                    restart = f"{who}{event.get('module')}: {event['needs_restart']}"
                elif event.get("ok"):
                    # Only a new third-party import needs a new template: one that went away leaves the template
                    # holding a module nothing uses (and a scan racing a save can read a file half-written, which
                    # only ever loses imports).
                    if set(self._third_party()) - set(third_party):
                        restart = "third-party imports changed"
            elif kind == "file":
                restart = f"{os.path.relpath(str(event.get('path')))} changed"
            elif kind == "data_files":
                self.data_files = [str(path) for path in event.get("paths", ())]
        return restart

    def _snapshot(self) -> dict[str, tuple[int, int]]:
        """What is watched while the program is down: its sources, the ``--include`` files and the files its
        modules read at import (the config whose fix should bring a crashed program back)."""
        return _snapshot(self.paths, self.include, self.data_files)

    def _wait_status(self, proc: IsolatedProcess) -> int | None:
        """The channel closed: the child ended or is ending; the template reports its status promptly."""
        assert self.env is not None
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            status = self.env.poll_isolated(proc)
            if status is not None:
                return status
            time.sleep(0.01)
        return None

    def _third_party(self) -> tuple[str, ...]:
        assert self.env is not None
        return self.env._preload_set(self.env._scan())

    @staticmethod
    def _describe(status: int) -> str:
        if status < 0:
            with contextlib.suppress(ValueError):
                return f"signal {signal.Signals(-status).name}"
        return f"status {status}"

    # ---------------------------------------------------------------- shutdown

    def _shutdown(self) -> None:
        env, proc = self.env, self.proc
        if env is None:
            return
        try:
            if proc is not None and proc.returncode is None and env.poll_isolated(proc) is None:
                if not self._terminal_sent_it():
                    env.signal_isolated(proc, signal.SIGINT)
                deadline = time.monotonic() + INTERRUPT_GRACE_S
                while env.poll_isolated(proc) is None and time.monotonic() < deadline:
                    env.poll_events(proc, 0.05)
                    if proc._chan is None and proc._popen is None:
                        time.sleep(0.01)  # channel closed; the exit status is on its way
                if proc.returncode is None:
                    env.stop_isolated(proc)  # it did not end on its own: 130
                    self.last_status = None
                else:
                    self.last_status = proc.returncode
        finally:
            env.close()

    @staticmethod
    def _terminal_sent_it() -> bool:
        """Whether a Ctrl-C typed at the terminal also reached the program (same foreground process group)."""
        try:
            return os.isatty(0) and os.tcgetpgrp(0) == os.getpgrp()
        except OSError:
            return False


#: hotswap run's options that take a value (the others are flags).
_VALUE_OPTIONS = ("--path", "--mode", "--include")


def _split_program(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """(hotswap's options, the program and its arguments): the program starts at the first argument that is
    not one of hotswap's options (a script) or at ``-m``."""
    own: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "-m" or arg.startswith("-m") and len(arg) > 2:
            return own, ["-m", arg[2:]] + list(argv[i + 1:]) if len(arg) > 2 else list(argv[i:])
        if arg == "--":
            return own, list(argv[i + 1:])
        if not arg.startswith("-"):
            return own, list(argv[i:])
        own.append(arg)
        if arg in _VALUE_OPTIONS:
            own.extend(argv[i + 1:i + 2])
            i += 1
        i += 1
    return own, []


def main_run(argv: list[str], interpreter_path: Sequence[str] | None = None) -> int:
    """``hotswap run ...``: parses the arguments and runs the supervisor."""
    parser = argparse.ArgumentParser(
        prog="hotswap run",
        description="Run a program with live patching; restart it from a warm template when an edit needs it.",
    )
    parser.add_argument("--path", action="append", default=[], metavar="DIR",
                        help="directory to watch and treat as first-party (repeatable; default: the script's "
                             "directory, or the current directory with -m)")
    parser.add_argument("--mode", choices=("changed", "module"), default="changed",
                        help="reload mode passed to the reloader (default: changed)")
    parser.add_argument("--no-template", action="store_true",
                        help="start a fresh interpreter for each run instead of forking from a template")
    parser.add_argument("--clear", action="store_true", help="clear the terminal before each reload and restart")
    parser.add_argument("--include", action="append", default=[], metavar="PATTERN",
                        help="also watch files matching this glob (repeatable, e.g. '*.toml'); saving one that no "
                             "framework adapter handles restarts the program")
    parser.add_argument("-m", dest="module", metavar="MODULE", help="run a module, as python -m does")
    parser.add_argument("target", nargs="?", help="the script to run (unless -m is given)")
    parser.add_argument("args", nargs="*", help="arguments for the program")
    # As for python itself, everything after the script or `-m MODULE` belongs to the program (`-m flask --app
    # app run` passes --app to flask), so hotswap's own options are parsed only up to there.
    own, program = _split_program(argv)
    ns = parser.parse_args(own)
    args = list(program)
    if program and program[0] == "-m":
        if len(program) < 2:
            parser.error("-m needs a module name")
        ns.module, args = program[1], program[2:]
        script = None
    else:
        if not program:
            parser.error("give a script to run, or -m MODULE")
        script, args = program[0], program[1:]
        if not os.path.isfile(script):
            parser.error(f"no such file: {script}")
    paths = ns.path or [os.path.dirname(os.path.abspath(script)) if script else os.getcwd()]
    supervisor = Supervisor(script=script, module=ns.module, args=args, paths=paths, mode=ns.mode,
                            template=not ns.no_template, clear=ns.clear, include=ns.include,
                            interpreter_path=interpreter_path)
    return supervisor.run()


def main(argv: Sequence[str] | None = None) -> int:
    """The ``hotswap`` console script: ``hotswap run ...``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: hotswap run [--path DIR]... [--include PATTERN]... [--mode changed|module] [--no-template] "
              "[--clear] (script.py | -m module) [args...]")
        return 0 if argv else 2
    if argv[0] != "run":
        print(f"hotswap: unknown command {argv[0]!r}; try: hotswap run --help", file=sys.stderr)
        return 2
    return main_run(argv[1:], _interpreter_sys_path())

"""``hotswap run``: run a program in a process forked from a warm template, patch edits in place, restart when needed.

Mechanism: the supervisor (this process) scans the project's imports (``scan_imports``; it never imports the
project), starts an ``isolate_imports`` template holding the third-party set, and runs the program as an isolated
call (``run_program``) in a forked child. Inside the child an ``AutoReloader`` patches saved files into the running
program and reports every reload to the supervisor as an event on the call's channel. The supervisor restarts the
child (stop, then fork a fresh one) when a report says ``needs_restart``, or when a rescan after a reload shows a
changed third-party import set (the template is rebuilt first). While no program runs (it ended, crashed, or the
reloader is unavailable) the supervisor polls the project's files itself (size and mtime, every 200 ms) and
restarts on the next save. Trade-off: the supervisor stays small and import-free, at the price of a polling loop
while the program is down.

The program keeps the terminal: it inherits the supervisor's stdin, stdout and stderr and stays in its process
group. Ctrl-C reaches the program (from the terminal) or is forwarded to it (``kill -INT`` of the supervisor); the
supervisor then waits briefly, escalates to SIGTERM and SIGKILL, stops the template and exits with the program's
status when it ended on its own (130 otherwise).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import runpy
import signal
import sys
import time
import traceback
from collections.abc import Sequence
from typing import Any

from .template import ImportEnvironment, IsolatedProcess, emit_event

__all__ = ["main", "run_program"]

#: How long the program may take to end after Ctrl-C before it gets SIGTERM (then SIGKILL after the env's grace).
INTERRUPT_GRACE_S = 2.0
POLL_S = 0.2


def _say(message: str) -> None:
    print(f"hotswap: {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------------- the child


def run_program(spec: dict[str, Any]) -> int:
    """Runs the user's program in this (forked) process with an ``AutoReloader`` reporting to the supervisor."""
    sys.argv = list(spec["argv"])
    reloader = None
    try:
        from .watcher import AutoReloader
    except ImportError as err:
        emit_event({"event": "no_reloader", "reason": f"{type(err).__name__}: {err}"})
    else:

        def on_reload(report: Any) -> None:
            emit_event({"event": "reload", "module": report.module, "path": report.path, "ok": report.ok,
                        "needs_restart": report.needs_restart, "summary": report.summary()})

        try:
            reloader = AutoReloader(spec["paths"], mode=spec["mode"], clear=spec["clear"], on_reload=on_reload)
        except Exception as err:  # noqa: BLE001 - a reloader that cannot start must not stop the program
            emit_event({"event": "no_reloader", "reason": f"{type(err).__name__}: {err}"})
    emit_event({"event": "started", "pid": os.getpid()})
    try:
        if spec["module"]:
            runpy.run_module(spec["module"], run_name="__main__", alter_sys=True)
        else:
            runpy.run_path(spec["script"], run_name="__main__")
    except SystemExit:
        raise
    except KeyboardInterrupt:
        traceback.print_exc()
        raise SystemExit(128 + signal.SIGINT) from None
    except BaseException:  # noqa: BLE001 - the program crashed: show it as Python would
        traceback.print_exc()
        raise SystemExit(1) from None
    finally:
        if reloader is not None:
            with contextlib.suppress(Exception):
                reloader.stop()
    return 0


# ------------------------------------------------------------------------------------------------ the supervisor


_SKIP_DIRS = {"__pycache__", "node_modules", "site-packages", "dist-packages"}


def _snapshot(paths: Sequence[str]) -> dict[str, tuple[int, int]]:
    """(mtime_ns, size) of every .py file under ``paths``."""
    out: dict[str, tuple[int, int]] = {}
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
                if name.endswith(".py"):
                    path = os.path.join(directory, name)
                    with contextlib.suppress(OSError):
                        st = os.stat(path)
                        out[path] = (st.st_mtime_ns, st.st_size)
    return out


class _Interrupted(Exception):
    pass


class Supervisor:
    """Runs one program under ``hotswap run``; see the module docstring."""

    def __init__(self, *, script: str | None, module: str | None, args: Sequence[str], paths: Sequence[str],
                 mode: str, template: bool, clear: bool) -> None:
        self.script = os.path.abspath(script) if script else None
        self.module = module
        self.args = list(args)
        self.paths = [os.path.abspath(p) for p in paths]
        self.mode = mode
        self.use_template = template
        self.clear = clear
        self.env: ImportEnvironment | None = None
        self.proc: IsolatedProcess | None = None
        self.last_status: int | None = None
        self.reloader_available = True
        self.interrupted = False

    # --------------------------------------------------------------- lifecycle

    def run(self) -> int:
        # The program's sys.path[0] is what `python script.py` / `python -m mod` would give it; the template and
        # the children inherit the supervisor's sys.path.
        sys.path.insert(0, os.path.dirname(self.script) if self.script else os.getcwd())
        previous = signal.signal(signal.SIGINT, self._on_signal)
        previous_term = signal.signal(signal.SIGTERM, self._on_signal)
        try:
            started = time.perf_counter()
            self.env = ImportEnvironment(self.paths, fork=None if self.use_template else False)
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
        argv = [self.script or self.module or ""] + self.args
        return {"argv": argv, "script": self.script, "module": self.module, "paths": self.paths,
                "mode": self.mode, "clear": self.clear}

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
        snapshot = _snapshot(self.paths)
        third_party = self.env.modules
        while True:
            proc = self.proc
            assert proc is not None
            if proc.returncode is None:
                events = self.env.poll_events(proc, POLL_S)
                restart = None
                for event in events:
                    kind = event.get("event")
                    if kind == "no_reloader":
                        self.reloader_available = False
                        _say(f"live patching unavailable ({event.get('reason')}); restarting on every save")
                    elif kind == "reload":
                        if event.get("needs_restart"):
                            restart = f"{event.get('module')}: {event['needs_restart']}"
                        elif event.get("ok"):
                            scan_modules = self._third_party()
                            if scan_modules != third_party:
                                restart = "third-party imports changed"
                if restart:
                    self._restart(restart)
                    third_party = self.env.modules
                    snapshot = _snapshot(self.paths)
                    continue
                status = self.env.poll_isolated(proc)
                if status is None and proc._chan is None and proc._popen is None:
                    status = self._wait_status(proc)
                if status is not None:
                    self.last_status = status
                    _say(f"program exited with {self._describe(status)}; save a file to restart it, "
                         "Ctrl-C to quit")
                    snapshot = _snapshot(self.paths)
                    continue
                if self.reloader_available:
                    continue
            else:
                time.sleep(POLL_S)
            # The program is not running, or cannot patch itself: restart on the next save.
            current = _snapshot(self.paths)
            if current != snapshot:
                changed = sorted(p for p in set(current) | set(snapshot) if current.get(p) != snapshot.get(p))
                snapshot = current
                self._restart(f"{os.path.relpath(changed[0])} changed" + (
                    f" (and {len(changed) - 1} more)" if len(changed) > 1 else ""))
                third_party = self.env.modules

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


def main_run(argv: list[str]) -> int:
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
    parser.add_argument("-m", dest="module", metavar="MODULE", help="run a module, as python -m does")
    parser.add_argument("target", nargs="?", help="the script to run (unless -m is given)")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the program")
    ns = parser.parse_args(argv)
    args = list(ns.args)
    if ns.module:
        if ns.target is not None:
            args.insert(0, ns.target)
        script = None
    else:
        if ns.target is None:
            parser.error("give a script to run, or -m MODULE")
        script = ns.target
        if not os.path.isfile(script):
            parser.error(f"no such file: {script}")
    paths = ns.path or [os.path.dirname(os.path.abspath(script)) if script else os.getcwd()]
    supervisor = Supervisor(script=script, module=ns.module, args=args, paths=paths, mode=ns.mode,
                            template=not ns.no_template, clear=ns.clear)
    return supervisor.run()


def main(argv: Sequence[str] | None = None) -> int:
    """The ``hotswap`` console script: ``hotswap run ...``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: hotswap run [--path DIR]... [--mode changed|module] [--no-template] [--clear] "
              "(script.py | -m module) [args...]")
        return 0 if argv else 2
    if argv[0] != "run":
        print(f"hotswap: unknown command {argv[0]!r}; try: hotswap run --help", file=sys.stderr)
        return 2
    return main_run(argv[1:])

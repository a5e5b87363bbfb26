"""``isolate_imports``: run functions in processes forked from a template that already imported the third-party code.

Mechanism. The host starts a *template* process (``sys.executable``, the host's ``sys.path``) that imports the
project's third-party modules (found by ``scan_imports``) one at a time, never first-party code, then runs
``gc.freeze()`` and keeps one *spare* child forked ahead of time (forking a template holding pandas, sympy and
sqlalchemy took 6 to 15 ms here; handing the spare its call takes one message). ``exec`` hands the call to the
spare; the child imports the function's module fresh from disk, calls it, and writes the pickled return value (or
exception) back, while the template forks the next spare whenever it is idle. Channels:

- host <-> template: an inherited ``SOCK_SEQPACKET`` socketpair carrying small JSON messages only (exec, stop,
  signal; started, exited, ready). Nothing is unpickled from it.
- host <-> child: a fresh ``SOCK_STREAM`` socketpair per call, created by the host and handed to the template with
  ``SCM_RIGHTS`` together with the host's fds 0, 1 and 2, which the child installs as its stdin/stdout/stderr. The
  child's output thus goes where the host's goes (even if the host redirected fd 1 after the template started) and
  never into a channel. Frames are ``kind (1 byte) + length (4 bytes, big-endian) + body``.
- The template reaps every child (SIGCHLD wakes its loop) and reports the exit status, so a child that dies without
  reporting (``os._exit``, a signal, a segfault) makes ``communicate_isolated`` raise ``ChildExitedError`` at once.

Lifetimes: the template and each child set ``PR_SET_PDEATHSIG`` (Linux, via ctypes) and check their parent right
after; the template also exits when its control socket closes, killing its children first. So a SIGKILLed host
leaves nothing behind. ``PR_SET_PDEATHSIG`` fires when the *thread* that started the template ends: start the
environment from a thread that outlives it (the main thread, typically).

Native thread pools: OpenBLAS, OpenMP and MKL start threads when numpy-like packages are imported, and a process
with threads must not fork. By default the template sets ``OPENBLAS_NUM_THREADS`` and friends to 1 (unless the
user set them) so such packages can be preloaded; children restore the user's environment for their subprocesses,
but their own BLAS stays single-threaded. Any other module that leaves a thread running after its import is left
out of the preload (the template restarts without it) and reported in ``ImportEnvironment.not_preloaded``.

Why Python and not Rust: the template must fork with exactly one OS thread and then run Python code in the
child; everything here is a handful of blocking syscalls (``select`` releases the GIL, so waiting costs the
host nothing) and the cost of a call is dominated by ``fork`` and the child's own imports. A Rust supervisor
would add a thread (forbidden in the template) or duplicate this protocol across the boundary for no measured
gain. Trade-off: the host-side wait loop is Python (a few ``select`` calls per call), and one idle spare process
exists per template (its memory is shared copy-on-write with the template).

Without ``os.fork`` (Windows), or with ``fork=False``, each call spawns a fresh interpreter with the same API.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import gc
import importlib
import io
import itertools
import json
import logging
import os
import pickle
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import types
from collections.abc import Iterator, Sequence
from typing import Any, Callable, Container

from ._native import ChildExitedError, IsolatedCallError, TemplateError
from .imports import ImportScan, scan_imports

logger = logging.getLogger("hotswap")

__all__ = [
    "ChildExitedError",
    "ImportEnvironment",
    "IsolatedCallError",
    "IsolatedProcess",
    "TemplateError",
    "isolate_imports",
]

_FRAME = struct.Struct("!cI")
#: Per-call channel frame kinds. M: call metadata (JSON, host -> child); R: the pickled call (host -> child);
#: E: an event (JSON, child -> host); V: the pickled outcome (child -> host).
_META, _REQUEST, _EVENT, _VALUE = b"M", b"R", b"E", b"V"
#: Thread pools of native libraries that start threads at import (OpenBLAS, OpenMP, MKL, ...). Set to 1 in the
#: template when the user has not set them, so importing numpy does not start threads and can be preloaded.
_THREAD_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
               "NUMEXPR_NUM_THREADS")
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_SPARE = 0  # call id of the spare child in the template's table (calls are numbered from 1)
#: Requests up to this size are written before the child exists (a Unix socket buffers at least this much).
_EARLY_WRITE_MAX = 64 * 1024


# --------------------------------------------------------------------------------------------------------- common


def _send_frame(sock: socket.socket, kind: bytes, body: bytes) -> None:
    sock.sendall(_FRAME.pack(kind, len(body)) + body)


class _FrameReader:
    """Splits a byte stream into frames."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> None:
        self.buffer += data

    def pop(self) -> tuple[bytes, bytes] | None:
        """The next complete frame, or None."""
        if len(self.buffer) < _FRAME.size:
            return None
        kind, size = _FRAME.unpack_from(self.buffer)
        if len(self.buffer) < _FRAME.size + size:
            return None
        body = bytes(self.buffer[_FRAME.size:_FRAME.size + size])
        del self.buffer[:_FRAME.size + size]
        return kind, body


def _read_frame_blocking(sock: socket.socket, reader: _FrameReader) -> tuple[bytes, bytes]:
    while True:
        frame = reader.pop()
        if frame is not None:
            return frame
        data = sock.recv(1 << 16)
        if not data:
            raise EOFError("channel closed before a complete frame")
        reader.feed(data)


def _os_thread_count() -> int:
    """OS threads of this process (native ones included) on Linux; Python threads elsewhere."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


def _extra_threads() -> str:
    """Describes the threads other than the main one: Python thread names, and OS names of native ones."""
    python = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    native = []
    with contextlib.suppress(OSError):
        for tid in sorted(os.listdir("/proc/self/task"), key=int):
            if int(tid) != os.getpid():
                with open(f"/proc/self/task/{tid}/comm") as f:
                    native.append(f.read().strip())
    parts = []
    if python:
        parts.append("Python threads: " + ", ".join(python))
    if len(native) > len(python):
        parts.append("OS threads: " + ", ".join(native))
    return "; ".join(parts) or "unnamed"


_libc: ctypes.CDLL | None = None


def _prctl(option: int, value: int) -> bool:
    """``prctl(option, value)`` on Linux; False where unsupported or refused."""
    global _libc
    if not sys.platform.startswith("linux"):
        return False
    try:
        if _libc is None:
            # The process's own symbols include libc's; ctypes.util.find_library would run ldconfig each time.
            _libc = ctypes.CDLL(None, use_errno=True)
        return _libc.prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _set_parent_death_signal(sig: int) -> bool:
    """Asks Linux to send ``sig`` to this process when its parent (thread) dies. False where unsupported."""
    return _prctl(_PR_SET_PDEATHSIG, sig)


_PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h


def _set_child_subreaper() -> bool:
    """Makes orphaned descendants of this process its children instead of init's (Linux). False where unsupported.

    A call's process is one: whatever it starts, however deep and whether or not it detaches (``setsid``, a double
    fork), stays in its process tree, so it can all be ended with it. The template is one too, so what a call
    leaves behind when it ends by a signal comes back to the template, which ends it.
    """
    return _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def _parents() -> dict[int, int]:
    """Every live (not zombie) process's parent, from /proc; empty where there is no /proc."""
    out: dict[int, int] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return out
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] not in (b"Z", b"X"):
            out[int(entry)] = int(fields[1])
    return out


def _kill_descendants(pid: int, *, keep: Container[int] = (), rounds: int = 50) -> None:
    """SIGKILLs every live descendant of ``pid`` (not ``pid`` itself, nor its children in ``keep``), again until
    none is left: a process that forked while the first ones were killed is found in the next round."""
    for _ in range(rounds):
        parents = _parents()
        children: dict[int, list[int]] = {}
        for child, parent in parents.items():
            children.setdefault(parent, []).append(child)
        found = [c for c in children.get(pid, []) if c not in keep]
        victims = []
        while found:
            victim = found.pop()
            victims.append(victim)
            found.extend(children.get(victim, []))
        if not victims:
            return
        for victim in victims:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(victim, signal.SIGKILL)


def _exit_status(wait_status: int) -> int:
    """A ``waitpid`` status as ``subprocess`` shows it: the exit code, or ``-signal``."""
    if hasattr(os, "waitstatus_to_exitcode"):
        return os.waitstatus_to_exitcode(wait_status)
    if os.WIFSIGNALED(wait_status):
        return -os.WTERMSIG(wait_status)
    return os.WEXITSTATUS(wait_status)


def _describe_status(status: int | None) -> str:
    if status is None:
        return "an unknown status"
    if status < 0:
        try:
            return f"signal {signal.Signals(-status).name}"
        except ValueError:
            return f"signal {-status}"
    return f"status {status}"


class _RemoteTraceback(Exception):
    """Carries the child's formatted traceback as the ``__cause__`` of the re-raised exception."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return "\n\nTraceback in the isolated process:\n" + self.tb


def _outcome_to_result(body: bytes, name: str) -> Any:
    """Returns the child's value or raises its exception (``body`` comes from one of the template's children)."""
    outcome = pickle.loads(body)
    if outcome[0] == "ok":
        return outcome[1]
    _, exc_bytes, type_name, message, tb_text = outcome
    exc: BaseException | None = None
    if exc_bytes is not None:
        try:
            exc = pickle.loads(exc_bytes)
        except Exception as err:  # noqa: BLE001 - the class does not exist here, or its __reduce__ disagrees with __init__
            message = f"{message} (could not re-create {type_name} here: {type(err).__name__}: {err})"
    if not isinstance(exc, BaseException):
        exc = IsolatedCallError(f"{name} raised {type_name}: {message}")
    with contextlib.suppress(AttributeError, TypeError):
        exc.child_traceback = tb_text  # type: ignore[attr-defined]
    raise exc from _RemoteTraceback(tb_text)


def _load_main(main_path: str | None) -> None:
    """Loads the host's ``__main__`` script as ``__mp_main__`` (as multiprocessing's spawn does)."""
    if not main_path:
        return
    import runpy

    module = types.ModuleType("__mp_main__")
    sys.modules["__mp_main__"] = sys.modules["__main__"] = module
    module.__dict__.update(runpy.run_path(main_path, run_name="__mp_main__"))


_child_channel: socket.socket | None = None
_child_events_path: str | None = None  # spawn mode: events are appended to this file, one JSON line each
_emit_lock = threading.Lock()


def _new_emit_lock() -> None:
    # A child the program forks (a gunicorn worker, a fork pool's) reports its reloads on the inherited channel;
    # the lock may have been held by a thread of the parent that is not in the child.
    global _emit_lock
    _emit_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_emit_lock)


def emit_event(event: dict[str, Any]) -> bool:
    """From inside an isolated call: sends a JSON event to the host (``IsolatedProcess.events``).

    Thread-safe. Returns False outside an isolated call or when the host is gone.
    """
    data = json.dumps(event).encode()
    with _emit_lock:
        try:
            if _child_channel is not None:
                _send_frame(_child_channel, _EVENT, data)
                return True
            if _child_events_path is not None:
                with open(_child_events_path, "ab") as f:
                    f.write(data + b"\n")
                return True
        except OSError:
            pass
    return False


def _perform_call(meta: dict[str, Any], body: bytes) -> bytes:
    """In the child: runs the pickled call and returns the pickled outcome. SystemExit propagates (the child exits
    with its code, unreported)."""
    sys.path[:] = meta["sys_path"]
    with contextlib.suppress(OSError):
        os.chdir(meta["cwd"])
    try:
        if meta.get("main_path"):
            _load_main(meta["main_path"])
        func, args, kwargs = pickle.loads(body)
        outcome: tuple[Any, ...] = ("ok", func(*args, **kwargs))
        return pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL)
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:  # noqa: BLE001 - everything the user's code raises is reported
        tb_text = traceback.format_exc()
        try:
            exc_bytes: bytes | None = pickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # noqa: BLE001 - any pickling failure: send type, message and traceback
            exc_bytes = None
        type_name = f"{type(exc).__module__}.{type(exc).__qualname__}"
        return pickle.dumps(("err", exc_bytes, type_name, str(exc), tb_text), protocol=pickle.HIGHEST_PROTOCOL)


def _run_call(chan: socket.socket, reader: _FrameReader) -> None:
    """In a forked child: read the call from the channel, run it, write the outcome back."""
    global _child_channel
    kind, meta = _read_frame_blocking(chan, reader)
    if kind != _META:
        raise RuntimeError(f"protocol error: expected metadata, got {kind!r}")
    kind, body = _read_frame_blocking(chan, reader)
    if kind != _REQUEST:
        raise RuntimeError(f"protocol error: expected a request, got {kind!r}")
    _child_channel = chan
    _send_frame(chan, _VALUE, _perform_call(json.loads(meta), body))


def _child_exit(code: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    # Processes the call started end with it (it is their subreaper, so they are all still below it).
    _kill_descendants(os.getpid())
    os._exit(code)


def _child_main(chan: socket.socket) -> None:
    """Runs the call and ends the process; never returns."""
    code = 0
    try:
        _run_call(chan, _FrameReader())
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if exc.code is not None and not isinstance(exc.code, int):
            print(exc.code, file=sys.stderr)
    except KeyboardInterrupt:
        code = 128 + signal.SIGINT
    except BaseException:  # noqa: BLE001 - a protocol failure: say so on stderr and exit non-zero
        traceback.print_exc()
        code = 70
    _child_exit(code)


# ------------------------------------------------------------------------------------------------------ template


class _Template:
    """The template process, seen from inside it."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.ctl = socket.socket(fileno=config["control_fd"])
        self.pid = os.getpid()
        self.children: dict[int, tuple[int, float | None]] = {}  # pid -> (call id or _SPARE, SIGKILL deadline)
        self.by_id: dict[int, int] = {}
        # One child forked ahead of time, waiting for its call: an exec then costs a message, not a fork.
        self.spare: tuple[int, socket.socket] | None = None
        self.spare_error = ""

    def send(self, message: dict[str, Any]) -> None:
        self.ctl.send(json.dumps(message).encode())

    def preload(self) -> tuple[list[str], dict[str, str]]:
        loaded: list[str] = []
        failed: dict[str, str] = {}
        for name in self.config["modules"]:
            before = _os_thread_count()
            try:
                importlib.import_module(name)
            except (Exception, SystemExit) as exc:  # noqa: BLE001 - a failed import is reported, not fatal
                failed[name] = f"{type(exc).__name__}: {exc}"
                continue
            if _os_thread_count() > before and not self._threads_end(before):
                started = _os_thread_count() - before
                self.send({"op": "threaded", "module": name,
                           "reason": f"started {started} thread(s) at import ({_extra_threads()})"})
                self.ctl.close()
                os._exit(3)
            loaded.append(name)
        return loaded, failed

    @staticmethod
    def _threads_end(count: int, wait_s: float = 0.5) -> bool:
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if _os_thread_count() <= count:
                return True
            time.sleep(0.01)
        return _os_thread_count() <= count

    def serve(self) -> None:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        self.wake = (wake_r, wake_w)
        while True:
            deadlines = [d for _, d in self.children.values() if d is not None]
            timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
            readable, _, _ = select.select([self.ctl.fileno(), wake_r], [], [], timeout)
            if wake_r in readable:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_r, 4096)
            self.reap()
            self.kill_overdue()
            if self.ctl.fileno() in readable and not self.handle_message():
                self.shutdown()
                return
            if self.spare is None and not select.select([self.ctl], [], [], 0)[0]:
                self.make_spare()

    def handle_message(self) -> bool:
        try:
            data, fds, _, _ = socket.recv_fds(self.ctl, 1 << 16, 4)
        except OSError:
            return False
        if not data:
            for fd in fds:
                os.close(fd)
            return False
        message = json.loads(data)
        op = message["op"]
        if op == "exec":
            self.fork_child(message["id"], fds)
        elif op == "stop":
            pid = self.by_id.get(message["id"])
            if pid is not None and pid in self.children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
                self.children[pid] = (message["id"], time.monotonic() + float(message.get("grace_s", 3.0)))
        elif op == "signal":
            pid = self.by_id.get(message["id"])
            if pid is not None and pid in self.children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, int(message["signal"]))
        return True

    def make_spare(self) -> None:
        """Forks the next child now; it prepares itself and waits for its call's fds (``fork_child``)."""
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        # Fork only with exactly one OS thread: a lock another thread holds at fork time (malloc's, the
        # import lock, a BLAS pool's) would stay held forever in the child. The preload refused every module
        # that left a thread running, so this can only fail if preloaded code started one later.
        threads = _os_thread_count()
        if threads != 1:
            self.spare_error = f"template has {threads} threads ({_extra_threads()}); refusing to fork"
            return
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:
            parent_end.close()
            self.wait_for_call(child_end)
        child_end.close()
        self.children[pid] = (_SPARE, None)
        self.spare = (pid, parent_end)

    def fork_child(self, call_id: int, fds: list[int]) -> None:
        """Hands the call's fds to the spare child (forking one first if there is none) and reports its pid."""
        try:
            for _attempt in range(2):
                if self.spare is None:
                    self.make_spare()
                if self.spare is None:
                    self.send({"op": "error", "id": call_id, "reason": self.spare_error})
                    return
                pid, sock = self.spare
                self.spare = None
                try:
                    socket.send_fds(sock, [b"call"], fds)
                except OSError:
                    continue  # the spare died (it is reaped as such); fork another
                finally:
                    sock.close()
                self.children[pid] = (call_id, None)
                self.by_id[call_id] = pid
                self.send({"op": "started", "id": call_id, "pid": pid})
                return
            self.send({"op": "error", "id": call_id, "reason": "the forked child died before its call"})
        finally:
            for fd in fds:
                os.close(fd)

    def wait_for_call(self, sock: socket.socket) -> None:
        """In a spare child: become independent of the template's state, then wait for a call. Never returns."""
        try:
            _set_parent_death_signal(signal.SIGKILL)
            if os.getppid() != self.pid:
                os._exit(1)  # the template died between fork and prctl
            signal.set_wakeup_fd(-1)
            for fd in self.wake:
                os.close(fd)
            self.ctl.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            for name, value in self.config["saved_env"].items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            try:
                data, fds, _, _ = socket.recv_fds(sock, 64, 4)
            except OSError:
                os._exit(0)
            if not data or len(fds) != 4:
                os._exit(0)  # the template is shutting down
            sock.close()
            # A spare ignores Ctrl-C (as the template does) until it has a call: a Ctrl-C meant for the program
            # must not print a traceback from a process that has nothing to do with it.
            signal.signal(signal.SIGINT, signal.default_int_handler)
            _set_child_subreaper()
            chan_fd, std = fds[0], fds[1:4]
            for target, fd in enumerate(std):
                os.dup2(fd, target)
                os.close(fd)
            chan = socket.socket(fileno=chan_fd)
        except BaseException:  # noqa: BLE001
            traceback.print_exc()
            os._exit(70)
        _child_main(chan)

    def reap(self) -> None:
        ended = False
        while True:
            try:
                pid, wait_status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            ended = True
            call_id, _ = self.children.pop(pid, (None, None))
            if call_id == _SPARE and self.spare is not None and self.spare[0] == pid:
                self.spare[1].close()
                self.spare = None
            if call_id is None or call_id == _SPARE:
                continue
            self.by_id.pop(call_id, None)
            with contextlib.suppress(OSError):
                self.send({"op": "exited", "id": call_id, "pid": pid, "status": _exit_status(wait_status)})
        if ended:
            self.end_orphans()

    def end_orphans(self) -> None:
        """Ends what a call that died by a signal left behind: its processes were re-parented to the template (a
        child subreaper), and anything here that is not a call or the spare is such a leftover."""
        _kill_descendants(self.pid, keep=self.children)

    def kill_overdue(self) -> None:
        now = time.monotonic()
        for pid, (call_id, deadline) in list(self.children.items()):
            if deadline is not None and deadline <= now:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                self.children[pid] = (call_id, None)

    def shutdown(self, grace_s: float = 2.0) -> None:
        if self.spare is not None:
            self.spare[1].close()  # the spare sees EOF and exits
            self.spare = None
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while self.children and time.monotonic() < deadline:
            self.reap()
            time.sleep(0.005)
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        while self.children:
            with contextlib.suppress(ChildProcessError):
                pid, _ = os.waitpid(-1, 0)
                self.children.pop(pid, None)
                continue
            break
        _kill_descendants(self.pid)  # whatever the calls left behind came back here


class _Terminate(BaseException):
    """SIGTERM in the template (its parent-death signal): stop the children and what they started, then exit."""


def _terminate(signum: int, frame: Any) -> None:
    raise _Terminate


def _template_main(config: dict[str, Any]) -> None:
    """Entry point of the template process (see ``_BOOT``)."""
    # SIGTERM rather than SIGKILL when the host dies: the template then ends its calls' processes (and what they
    # started) before it exits, instead of leaving them to init.
    signal.signal(signal.SIGTERM, _terminate)
    if not _set_parent_death_signal(signal.SIGTERM) and sys.platform.startswith("linux"):
        print("hotswap template: PR_SET_PDEATHSIG unavailable", file=sys.stderr)
    if os.getppid() != config["host_pid"]:
        os._exit(1)  # the host died before prctl took effect
    _set_child_subreaper()
    # Ctrl-C reaches the whole foreground process group; the host decides what it means.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in _THREAD_ENV if config["limit_native_threads"] else ():
        os.environ.setdefault(name, "1")
    template = _Template(config)
    try:
        started = time.perf_counter()
        loaded, failed = template.preload()
        gc.collect()
        if hasattr(gc, "freeze"):
            # Moves everything to the permanent generation: children's collections skip it, so they neither pay
            # for scanning the template's objects nor dirty their copy-on-write pages by touching GC headers.
            gc.freeze()
        template.send({"op": "ready", "pid": os.getpid(), "loaded": loaded, "failed": failed,
                       "elapsed_ms": (time.perf_counter() - started) * 1000})
        template.serve()
    except _Terminate:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        template.shutdown()
    os._exit(0)


# `python -c` program of the template: only then is hotswap importable, from the host's sys.path.
_BOOT = ("import sys, json; cfg = json.loads(sys.argv[1]); sys.path[:] = cfg['sys_path']; "
         "from hotswap.template import _template_main; _template_main(cfg)")


# ---------------------------------------------------------------------------------------------------------- host


@dataclasses.dataclass
class IsolatedProcess:
    """A running (or finished) isolated call, as returned by ``ImportEnvironment.exec``.

    Attributes:
        id: the call's number in its environment.
        pid: the child's process id.
        name: the name given to ``exec`` (default: the function's qualified name).
        events: JSON events the child sent with ``hotswap.template.emit_event``, in order.
        returncode: the child's exit status once known (``-N`` for signal N), else None.
    """

    id: int
    pid: int
    name: str
    events: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    returncode: int | None = None
    _template: Any = dataclasses.field(default=None, repr=False)
    _chan: socket.socket | None = dataclasses.field(default=None, repr=False)
    _reader: _FrameReader = dataclasses.field(default_factory=_FrameReader, repr=False)
    _outcome: bytes | None = dataclasses.field(default=None, repr=False)
    _popen: subprocess.Popen | None = dataclasses.field(default=None, repr=False)  # spawn mode
    _files: tuple[str, ...] = dataclasses.field(default=(), repr=False)  # spawn mode
    _finished: bool = dataclasses.field(default=False, repr=False)
    _events_offset: int = dataclasses.field(default=0, repr=False)  # spawn mode


def _std_fds() -> list[int]:
    """The host's fds 0, 1, 2 to hand to a child; /dev/null for any the host has closed."""
    fds = []
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
            fds.append(fd)
        except OSError:
            fds.append(os.open(os.devnull, os.O_RDWR))
    return fds


def _call_meta() -> dict[str, Any]:
    main = sys.modules.get("__main__")
    return {"sys_path": list(sys.path), "cwd": os.getcwd(), "main_path": getattr(main, "__file__", None)}


class _CallPickler(pickle.Pickler):
    """Notes whether the call refers to a function or class of ``__main__`` (the child must then load the script)."""

    uses_main = False

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, (type, types.FunctionType)) and getattr(obj, "__module__", None) == "__main__":
            self.uses_main = True
        return NotImplemented


def _pickle_call(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[bytes, bool]:
    buffer = io.BytesIO()
    pickler = _CallPickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dump((func, args, kwargs))
    return buffer.getvalue(), pickler.uses_main


class _TemplateHandle:
    """The host's view of one template process."""

    def __init__(self, modules: Sequence[str], *, start_timeout_s: float, limit_native_threads: bool) -> None:
        self.modules = list(modules)
        self.excluded: dict[str, str] = {}
        self.failed: dict[str, str] = {}
        self.loaded: list[str] = []
        self.lock = threading.RLock()
        self.started: dict[int, int] = {}
        self.exited: dict[int, int] = {}
        self.errors: dict[int, str] = {}
        self.live = 0
        self.pending: set = set()  # calls whose exit status someone may still ask for
        self.dead_status: int | None = None
        self.elapsed_ms = 0.0
        self.limit_native_threads = limit_native_threads
        while True:
            self._spawn(start_timeout_s)
            message = self._wait_ready(start_timeout_s)
            if message["op"] == "ready":
                break
            # A module started threads at import: it cannot be in a template that forks. Start again without it.
            self.excluded[message["module"]] = message["reason"]
            logger.warning("not preloading %s: %s", message["module"], message["reason"])
            self._close_process()
        self.pid = self.popen.pid
        self.loaded = message["loaded"]
        self.failed = message["failed"]
        self.elapsed_ms = message["elapsed_ms"]
        for name, reason in self.failed.items():
            logger.warning("not preloading %s: import failed: %s", name, reason)

    def _spawn(self, start_timeout_s: float) -> None:
        host, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        saved_env = {name: os.environ.get(name) for name in _THREAD_ENV}
        config = {
            "modules": [m for m in self.modules if m not in self.excluded],
            "host_pid": os.getpid(),
            "control_fd": child.fileno(),
            "sys_path": list(sys.path),
            "limit_native_threads": self.limit_native_threads,
            "saved_env": saved_env,
        }
        self.popen = subprocess.Popen([sys.executable, "-c", _BOOT, json.dumps(config)], pass_fds=[child.fileno()],
                                      stdin=subprocess.DEVNULL)
        child.close()
        self.ctl = host

    def _wait_ready(self, timeout_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._close_process()
                raise TemplateError(f"the template did not finish its imports within {timeout_s} s")
            readable, _, _ = select.select([self.ctl], [], [], remaining)
            if readable:
                data = self.ctl.recv(1 << 16)
                if not data:
                    status = self.popen.wait()
                    raise TemplateError(f"the template exited with {_describe_status(status)} before it was ready; "
                                        "its stderr (above) says why")
                message = json.loads(data)
                if message["op"] in ("ready", "threaded"):
                    return message

    @property
    def alive(self) -> bool:
        return self.dead_status is None and self.popen.poll() is None

    def pump(self, timeout: float | None) -> None:
        """Reads control messages for up to ``timeout`` seconds (0: only what is there)."""
        with self.lock:
            if self.dead_status is not None:
                return
            readable, _, _ = select.select([self.ctl], [], [], timeout)
            while readable:
                try:
                    data = self.ctl.recv(1 << 16)
                except OSError:
                    data = b""
                if not data:
                    self.dead_status = self.popen.wait()
                    return
                message = json.loads(data)
                op = message["op"]
                if op == "started":
                    self.started[message["id"]] = message["pid"]
                elif op == "exited" and message["id"] in self.pending:
                    self.exited[message["id"]] = message["status"]
                elif op == "error":
                    self.errors[message["id"]] = message["reason"]
                readable, _, _ = select.select([self.ctl], [], [], 0)

    def send(self, message: dict[str, Any], fds: Sequence[int] = ()) -> None:
        data = json.dumps(message).encode()
        if fds:
            socket.send_fds(self.ctl, [data], list(fds))
        else:
            self.ctl.send(data)

    def crash_message(self) -> str:
        return (f"the template (pid {self.popen.pid}) died with {_describe_status(self.dead_status)}; "
                "it is restarted on the next exec")

    def _close_process(self, grace_s: float = 5.0) -> None:
        with contextlib.suppress(OSError):
            self.ctl.close()
        try:
            self.popen.wait(grace_s)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()

    def close(self) -> None:
        """Closes the control socket: the template stops its children (SIGTERM, then SIGKILL) and exits."""
        self._close_process()
        if self.dead_status is None:
            self.dead_status = self.popen.returncode


class ImportEnvironment:
    """What ``isolate_imports`` yields: run functions in fresh processes that start with the imports done."""

    def __init__(self, package: str | os.PathLike[str] | Sequence[Any], ignored_modules: Sequence[str] = (),
                 *, fork: bool | None = None, grace_s: float = 3.0, start_timeout_s: float = 300.0,
                 limit_native_threads: bool = True) -> None:
        self.package = package
        self.ignored_modules = frozenset(ignored_modules)
        self.fork = (hasattr(os, "fork") and not os.environ.get("HOTSWAP_NO_FORK")) if fork is None else fork
        if self.fork and not hasattr(os, "fork"):
            raise ValueError("fork=True on a platform without os.fork")
        self.grace_s = grace_s
        self.start_timeout_s = start_timeout_s
        self.limit_native_threads = limit_native_threads
        self.scan: ImportScan = self._scan()
        self.modules: tuple[str, ...] = self._preload_set(self.scan)
        self._ids = itertools.count(1)
        self._lock = threading.RLock()
        self._template: _TemplateHandle | None = None
        self._retired: list[_TemplateHandle] = []
        self.restarts: list[str] = []
        self._open: dict[int, IsolatedProcess] = {}  # calls whose channel is open
        if self.fork:
            self._template = self._new_template()

    # -------------------------------------------------------------- environment

    def _scan(self) -> ImportScan:
        scan = scan_imports(self.package)
        for file, reason in scan.skipped:
            logger.warning("skipped %s while scanning imports: %s", file, reason)
        return scan

    def _preload_set(self, scan: ImportScan) -> tuple[str, ...]:
        def ignored(module: str) -> bool:
            return any(module == i or module.startswith(i + ".") for i in self.ignored_modules)

        return tuple(m for m in scan.third_party if not ignored(m))

    def _new_template(self) -> _TemplateHandle:
        return _TemplateHandle(self.modules, start_timeout_s=self.start_timeout_s,
                               limit_native_threads=self.limit_native_threads)

    @property
    def preloaded(self) -> tuple[str, ...]:
        """Modules the current template imported."""
        return tuple(self._template.loaded) if self._template else ()

    @property
    def not_preloaded(self) -> dict[str, str]:
        """Modules left out of the current template, with the reason (import failed, or started threads)."""
        if not self._template:
            return {}
        return {**{m: f"import failed: {r}" for m, r in self._template.failed.items()}, **self._template.excluded}

    @property
    def template_pid(self) -> int | None:
        """The current template's process id (None in spawn mode)."""
        return self._template.popen.pid if self._template else None

    def update_environment(self) -> bool:
        """Re-scans the imports; rebuilds the template only if the third-party set changed.

        The old template keeps serving (also to other threads) until the new one has finished its imports.

        Returns:
            True when the set changed (and a new template is in place), else False.
        """
        scan = self._scan()
        modules = self._preload_set(scan)
        if modules == self.modules:
            self.scan = scan
            return False
        self.scan, self.modules = scan, modules
        if self.fork:
            new = self._new_template()
            with self._lock:
                old, self._template = self._template, new
                if old is not None:
                    self._retired.append(old)
            self._close_idle_retired()
        return True

    def _close_idle_retired(self) -> None:
        with self._lock:
            idle = [t for t in self._retired if t.live == 0]
            self._retired = [t for t in self._retired if t.live > 0]
        for template in idle:
            template.close()

    def _current_template(self) -> _TemplateHandle:
        with self._lock:
            template = self._template
            if template is not None and template.alive:
                return template
            reason = "not running"
            if template is not None:
                template.pump(0)
                if template.dead_status is None:
                    template.dead_status = template.popen.poll()
                reason = f"died with {_describe_status(template.dead_status)}"
                template.close()
            message = f"the template {reason}; starting a new one"
            logger.warning(message)
            self.restarts.append(message)
            self._template = self._new_template()
            return self._template

    def close(self) -> None:
        """Stops the template(s) and every running call."""
        with self._lock:
            templates = ([self._template] if self._template else []) + self._retired
            self._template, self._retired = None, []
            procs, self._open = list(self._open.values()), {}
        for template in templates:
            template.close()
        for proc in procs:
            if proc._chan is not None:
                proc._chan.close()
                proc._chan = None
            if proc._popen is not None:
                self._spawn_stop(proc)

    # -------------------------------------------------------------------- calls

    def exec(self, func: Callable[..., Any], *args: Any, name: str | None = None, **kwargs: Any) -> IsolatedProcess:
        """Runs ``func(*args, **kwargs)`` in a new process forked from the template.

        The child imports ``func``'s module fresh from disk. ``func``, its arguments and its return value are
        pickled. Returns at once with a handle; ``communicate_isolated`` waits for the result.
        """
        call_id = next(self._ids)
        name = name or str(getattr(func, "__qualname__", repr(func)))
        body, uses_main = _pickle_call(func, args, kwargs)
        meta = _call_meta()
        if not uses_main:
            meta["main_path"] = None
        if not self.fork:
            return self._spawn_exec(call_id, name, meta, body)
        template = self._current_template()
        meta_bytes = json.dumps(meta).encode()
        host_chan, child_chan = socket.socketpair()
        std = _std_fds()
        try:
            with template.lock:
                template.live += 1
                template.pending.add(call_id)
                template.send({"op": "exec", "id": call_id}, [child_chan.fileno(), *std])
        finally:
            child_chan.close()
            for fd, own in zip(std, (0, 1, 2)):
                if fd != own:
                    os.close(fd)
        proc = IsolatedProcess(id=call_id, pid=0, name=name, _template=template, _chan=host_chan)
        self._open[call_id] = proc
        frames = (_FRAME.pack(_META, len(meta_bytes)) + meta_bytes + _FRAME.pack(_REQUEST, len(body)) + body)
        # A request that fits in the socket buffer is written at once, so the child finds it the moment it starts;
        # a bigger one only once the child exists (or the write could wait for a reader that never comes).
        early = len(frames) <= _EARLY_WRITE_MAX
        if early:
            self._write_request(host_chan, frames)
        deadline = time.monotonic() + 30.0
        while call_id not in template.started:
            if call_id in template.errors:
                self._finish(proc)
                self._close_chan(proc)
                raise TemplateError(f"cannot start {name}: {template.errors.pop(call_id)}")
            if template.dead_status is not None:
                self._finish(proc)
                self._close_chan(proc)
                raise TemplateError(template.crash_message())
            if time.monotonic() > deadline:
                self._finish(proc)
                self._close_chan(proc)
                raise TemplateError(f"the template (pid {template.popen.pid}) did not fork {name} within 30 s")
            template.pump(0.05)
        proc.pid = template.started.pop(call_id)
        if not early:
            self._write_request(host_chan, frames)
        return proc

    @staticmethod
    def _write_request(chan: socket.socket, frames: bytes) -> None:
        try:
            chan.sendall(frames)
        except OSError:
            pass  # the child died before reading; communicate_isolated reports how

    def communicate_isolated(self, proc: IsolatedProcess, timeout: float | None = None) -> Any:
        """Waits for the call's return value and returns it, or re-raises its exception.

        The exception keeps its type when it can be unpickled here (else ``IsolatedCallError``); the child's
        formatted traceback is attached as ``__cause__`` and as ``child_traceback``. Waits with the GIL released.

        Raises:
            TimeoutError: no result within ``timeout`` seconds (the call keeps running; see ``stop_isolated``).
            ChildExitedError: the process ended without reporting (``os._exit``, a signal, a crash).
            TemplateError: the template died; it is restarted on the next ``exec``.
        """
        if proc._popen is not None or proc._files:
            return self._spawn_communicate(proc, timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        while proc._outcome is None:
            if proc._chan is None:
                return self._raise_exited(proc)
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(f"isolated call {proc.name} (pid {proc.pid}) gave no result within {timeout} s; "
                                   "it is still running (stop it with stop_isolated)")
            readable, _, _ = select.select([proc._chan], [], [], remaining)
            if not readable:
                continue
            try:
                data = proc._chan.recv(1 << 16)
            except OSError:  # ECONNRESET: the child died with our request unread
                data = b""
            if not data:
                self._close_chan(proc)
                return self._raise_exited(proc)
            proc._reader.feed(data)
            frame = proc._reader.pop()
            while frame is not None:
                kind, body = frame
                if kind == _EVENT:
                    proc.events.append(json.loads(body))
                elif kind == _VALUE:
                    proc._outcome = body
                frame = proc._reader.pop()
        self._close_chan(proc)
        self._finish(proc)
        return _outcome_to_result(proc._outcome, proc.name)

    def _close_chan(self, proc: IsolatedProcess) -> None:
        if proc._chan is not None:
            proc._chan.close()
            proc._chan = None
        self._open.pop(proc.id, None)

    def _wait_exit(self, proc: IsolatedProcess, timeout: float) -> int | None:
        template = proc._template
        deadline = time.monotonic() + timeout
        template.pump(0)
        while proc.id not in template.exited and template.dead_status is None and time.monotonic() < deadline:
            template.pump(min(0.1, max(0.0, deadline - time.monotonic())))
        if proc.id in template.exited:
            proc.returncode = template.exited.pop(proc.id)
            self._finish(proc)
        elif template.dead_status is not None:
            self._finish(proc)
        return proc.returncode

    def _finish(self, proc: IsolatedProcess) -> None:
        template = proc._template
        if template is not None and not proc._finished:
            proc._finished = True
            with template.lock:
                template.live -= 1
                template.pending.discard(proc.id)
            if template is not self._template:
                self._close_idle_retired()

    def _raise_exited(self, proc: IsolatedProcess) -> Any:
        if proc._outcome is not None:
            return _outcome_to_result(proc._outcome, proc.name)
        # The channel closed: the child is gone or going. The template reaps it and says how, promptly.
        status = self._wait_exit(proc, 10.0) if proc.returncode is None else proc.returncode
        template = proc._template
        if status is None and template.dead_status is not None:
            raise TemplateError(f"isolated call {proc.name} (pid {proc.pid}) was lost: {template.crash_message()}")
        err = ChildExitedError(f"isolated call {proc.name} (pid {proc.pid}) ended with {_describe_status(status)} "
                               "without reporting a result")
        err.returncode = status  # type: ignore[attr-defined]
        raise err

    def poll_events(self, proc: IsolatedProcess, timeout: float | None = 0.0) -> list[dict[str, Any]]:
        """Waits up to ``timeout`` seconds for events from the call (``emit_event``) and returns the new ones.

        Returns early, possibly with no event, when the call's process has ended (see ``poll_isolated``).
        """
        new: list[dict[str, Any]] = []
        if proc._popen is not None or proc._files:
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                new.extend(self._spawn_events(proc))
                if new or proc._popen is None or proc._popen.poll() is not None:
                    new.extend(self._spawn_events(proc))
                    return new
                if deadline is not None and time.monotonic() >= deadline:
                    return new
                time.sleep(0.02)
        if proc._chan is None:
            return new
        readable, _, _ = select.select([proc._chan], [], [], timeout)
        while readable:
            try:
                data = proc._chan.recv(1 << 16)
            except OSError:
                data = b""
            if not data:
                self._close_chan(proc)
                break
            proc._reader.feed(data)
            frame = proc._reader.pop()
            while frame is not None:
                kind, body = frame
                if kind == _EVENT:
                    event = json.loads(body)
                    proc.events.append(event)
                    new.append(event)
                elif kind == _VALUE:
                    proc._outcome = body
                frame = proc._reader.pop()
            readable, _, _ = select.select([proc._chan], [], [], 0)
        return new

    def _spawn_events(self, proc: IsolatedProcess) -> list[dict[str, Any]]:
        if not proc._files:
            return []
        path = os.path.join(proc._files[0], "events")
        offset = proc._events_offset
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read()
        except OSError:
            return []
        complete = data[:data.rfind(b"\n") + 1]
        proc._events_offset = offset + len(complete)
        events = [json.loads(line) for line in complete.splitlines() if line]
        proc.events.extend(events)
        return events

    def stop_isolated(self, proc: IsolatedProcess) -> int | None:
        """Ends the call: SIGTERM, then SIGKILL after the grace period; waits for it and returns its exit status."""
        if proc._popen is not None or proc._files:
            return self._spawn_stop(proc)
        template = proc._template
        if proc.returncode is None and template.dead_status is None:
            with contextlib.suppress(OSError):
                template.send({"op": "stop", "id": proc.id, "grace_s": self.grace_s})
            self._wait_exit(proc, self.grace_s + 10.0)
        self._close_chan(proc)
        self._finish(proc)
        return proc.returncode

    def signal_isolated(self, proc: IsolatedProcess, sig: int) -> None:
        """Sends ``sig`` to the call's process if it is still running."""
        if proc._popen is not None:
            if proc._popen.poll() is None:
                proc._popen.send_signal(sig)
            return
        with contextlib.suppress(OSError):
            proc._template.send({"op": "signal", "id": proc.id, "signal": int(sig)})

    def poll_isolated(self, proc: IsolatedProcess) -> int | None:
        """The call's exit status if its process has ended (it is then reaped), else None."""
        if proc._popen is not None:
            proc.returncode = proc._popen.poll()
            return proc.returncode
        if proc.returncode is None:
            self._wait_exit(proc, 0.0)
        return proc.returncode

    # --------------------------------------------------------------- spawn mode

    def _spawn_exec(self, call_id: int, name: str, meta: dict[str, Any], body: bytes) -> IsolatedProcess:
        workdir = tempfile.mkdtemp(prefix="hotswap-call-")
        request, result = os.path.join(workdir, "request"), os.path.join(workdir, "result")
        with open(request, "wb") as f:
            f.write(json.dumps(meta).encode() + b"\n" + body)
        boot = ("import sys; sys.path[:] = __import__('json').loads(sys.argv[3]); "
                "from hotswap.template import _spawned_main; _spawned_main(sys.argv[1], sys.argv[2])")
        popen = subprocess.Popen([sys.executable, "-c", boot, request, result, json.dumps(sys.path)])
        proc = IsolatedProcess(id=call_id, pid=popen.pid, name=name, _popen=popen, _files=(workdir, request, result))
        self._open[call_id] = proc
        return proc

    def _spawn_communicate(self, proc: IsolatedProcess, timeout: float | None) -> Any:
        assert proc._popen is not None
        if proc._outcome is None:
            try:
                proc.returncode = proc._popen.wait(timeout)
            except subprocess.TimeoutExpired:
                raise TimeoutError(f"isolated call {proc.name} (pid {proc.pid}) gave no result within {timeout} s; "
                                   "it is still running (stop it with stop_isolated)") from None
            _workdir, _, result = proc._files
            if os.path.exists(result):
                with open(result, "rb") as f:
                    proc._outcome = f.read()
            self._spawn_cleanup(proc)
            self._open.pop(proc.id, None)
            if proc._outcome is None:
                err = ChildExitedError(f"isolated call {proc.name} (pid {proc.pid}) ended with "
                                       f"{_describe_status(proc.returncode)} without reporting a result")
                err.returncode = proc.returncode  # type: ignore[attr-defined]
                raise err
        return _outcome_to_result(proc._outcome, proc.name)

    def _spawn_stop(self, proc: IsolatedProcess) -> int | None:
        popen = proc._popen
        if popen is not None and popen.poll() is None:
            _kill_descendants(popen.pid)
            popen.terminate()
            try:
                popen.wait(self.grace_s)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait()
        if popen is not None:
            proc.returncode = popen.returncode
        self._spawn_cleanup(proc)
        self._open.pop(proc.id, None)
        return proc.returncode

    @staticmethod
    def _spawn_cleanup(proc: IsolatedProcess) -> None:
        if proc._files:
            import shutil

            shutil.rmtree(proc._files[0], ignore_errors=True)
            proc._files = ()


def _spawned_main(request: str, result: str) -> None:
    """Entry point of a spawned (no-fork) call: the forked child's steps, with files as the channel."""
    global _child_events_path
    _set_child_subreaper()  # what the call starts stays below it, and ends with it (`_child_exit`, `_spawn_stop`)
    with open(request, "rb") as f:
        meta, body = f.read().split(b"\n", 1)
    _child_events_path = os.path.join(os.path.dirname(result), "events")
    code = 0
    try:
        payload = _perform_call(json.loads(meta), body)
        with open(result + ".tmp", "wb") as f:
            f.write(payload)
        os.replace(result + ".tmp", result)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt:
        code = 128 + signal.SIGINT
    _child_exit(code)


@contextlib.contextmanager
def isolate_imports(
    package: str | os.PathLike[str] | Sequence[Any],
    ignored_modules: Sequence[str] | None = None,
    *,
    fork: bool | None = None,
    grace_s: float = 3.0,
    start_timeout_s: float = 300.0,
    limit_native_threads: bool = True,
) -> Iterator[ImportEnvironment]:
    """Starts a template holding ``package``'s third-party imports and yields an ``ImportEnvironment``.

    Args:
        package: the project: an importable package name, a directory, a file, or a list of them. It is scanned
            (never imported here) and its third-party imports are preloaded in the template.
        ignored_modules: modules (and their submodules) not to preload.
        fork: False forces the no-fork path (a fresh interpreter per call, as on Windows); default: fork when
            ``os.fork`` exists and ``HOTSWAP_NO_FORK`` is not set.
        grace_s: how long ``stop_isolated`` waits after SIGTERM before SIGKILL.
        start_timeout_s: how long the template may take to import everything.
        limit_native_threads: set ``OPENBLAS_NUM_THREADS`` and friends to 1 in the template (when unset), so that
            numpy-like packages start no thread pool at import and can be preloaded. Their calls then run their
            BLAS single-threaded in the children; pass False to keep the pools (such packages are then left out
            of the preload and imported by each call).

    Example:
        >>> from hotswap import isolate_imports
        >>> with isolate_imports("json") as env:
        ...     proc = env.exec(sorted, [3, 1, 2])
        ...     env.communicate_isolated(proc, timeout=30)
        [1, 2, 3]
    """
    env = ImportEnvironment(package, ignored_modules or (), fork=fork, grace_s=grace_s,
                            start_timeout_s=start_timeout_s, limit_native_threads=limit_native_threads)
    try:
        yield env
    finally:
        env.close()

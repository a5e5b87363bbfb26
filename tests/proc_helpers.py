"""Helpers shared by the template, import-scan and `hotswap run` suites: polling and process inspection."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.01, what: str = "") -> T:
    """Polls ``predicate`` until it returns something truthy; fails the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(interval)


def proc_state(pid: int) -> str | None:
    """The process's state letter from /proc (R, S, Z, ...), or None when it no longer exists."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def ignores_signal(pid: int, signum: int) -> bool:
    """The process has set ``signum`` to SIG_IGN (its SigIgn mask in /proc); False once it no longer exists."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("SigIgn:"):
                    return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    except (FileNotFoundError, ProcessLookupError):
        pass
    return False


def gone(pid: int) -> bool:
    """The process has ended (a zombie that its new parent has not reaped yet counts as ended)."""
    return proc_state(pid) in (None, "Z", "X")


def children_of(pid: int) -> dict[int, str]:
    """Direct children of ``pid`` and their state letters."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out[int(entry)] = fields[0]
    return out


def write(path: Path, source: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return path


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        kids = list(children_of(todo.pop()))
        found.extend(kids)
        todo.extend(kids)
    return found


class Run:
    """A `hotswap run` process whose output lines are collected by threads, for polling."""

    def __init__(self, args: list[str], cwd: Path, env: dict, stdin: int = subprocess.DEVNULL) -> None:
        self.popen = subprocess.Popen([sys.executable, "-m", "hotswap", "run", *args], cwd=cwd, env=env,
                                      stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.out: list[str] = []
        self.err: list[str] = []
        self.threads = [threading.Thread(target=self._drain, args=(s, d), daemon=True)
                        for s, d in ((self.popen.stdout, self.out), (self.popen.stderr, self.err))]
        for t in self.threads:
            t.start()

    @staticmethod
    def _drain(stream, dest: list[str]) -> None:
        for line in stream:
            dest.append(line.rstrip("\n"))

    def wait_out(self, predicate, timeout: float = 30.0, what: str = "") -> str:
        def found():
            return next((line for line in list(self.out) if predicate(line)), None)

        try:
            return wait_until(found, timeout, what=what)
        except AssertionError:
            raise AssertionError(f"{what}: stdout={self.out} stderr={self.err}") from None

    def wait_err(self, text: str, timeout: float = 30.0) -> None:
        try:
            wait_until(lambda: any(text in line for line in list(self.err)), timeout, what=text)
        except AssertionError:
            raise AssertionError(f"{text!r} not in stderr={self.err} stdout={self.out}") from None

    def runs(self) -> list[str]:
        return [line for line in list(self.out) if line.startswith("run ")]

    def close(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(30)
        for t in self.threads:
            t.join(10)
        self.popen.stdout.close()
        self.popen.stderr.close()


def edit(path: Path, text: str) -> None:
    # A different size as well as a new mtime: the supervisor's poll must see it even on a coarse clock.
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port: int, path: str) -> tuple:
    """(status, body) of one bounded request to 127.0.0.1, or (None, reason) when nothing answers yet."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except (urllib.error.URLError, ConnectionError, socket.timeout) as err:
        return None, str(err)


def serves(port: int, path: str, body, timeout: float = 30.0, status: int = 200) -> None:
    """Polls until ``path`` answers ``status`` and ``body`` (a string, or a predicate on the body)."""
    last = []

    def ok():
        last[:] = [get(port, path)]
        got_status, got_body = last[0]
        return got_status == status and (body(got_body) if callable(body) else got_body == body)

    try:
        wait_until(ok, timeout, interval=0.02, what=f"{path} -> {status} {body!r}")
    except AssertionError:
        raise AssertionError(f"{path}: wanted {(status, body)}, last got {last}") from None

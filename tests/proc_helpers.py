"""Helpers shared by the template, import-scan and `hotswap run` suites: polling and process inspection."""

from __future__ import annotations

import os
import textwrap
import time
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

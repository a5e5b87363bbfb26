"""What hotswap will run and whom it will listen to: only watched files, no symlink escapes, no listening socket."""

from __future__ import annotations

import importlib
import logging
import os
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

import hotswap
from conftest import wait_until
from hotswap import AutoReloader, isolate_imports


def _module(root: Path, text: str):
    name = f"sec_{uuid.uuid4().hex[:8]}"
    (root / f"{name}.py").write_text(textwrap.dedent(text))
    importlib.invalidate_caches()
    return importlib.import_module(name), root / f"{name}.py"


@pytest.fixture
def roots(tmp_path, monkeypatch):
    watched, outside = tmp_path / "watched", tmp_path / "outside"
    watched.mkdir()
    outside.mkdir()
    monkeypatch.syspath_prepend(str(watched))
    monkeypatch.syspath_prepend(str(outside))
    return watched, outside


def test_only_files_under_the_watched_path_are_executed(roots):
    watched, outside = roots
    inside_mod, inside_path = _module(watched, "def f():\n    return 1\n")
    outside_mod, outside_path = _module(outside, "def f():\n    return 1\n")
    with AutoReloader(path=watched) as reloader:
        outside_path.write_text("def f():\n    return 2\n")
        inside_path.write_text("def f():\n    return 2\n")
        report = reloader.wait_for_reload(timeout=5)
        assert report is not None and report.module == inside_mod.__name__
        assert reloader.wait_for_reload(timeout=0.3) is None
    assert inside_mod.f() == 2 and outside_mod.f() == 1


def test_a_new_file_is_never_imported_because_it_was_saved(roots):
    watched, _ = roots
    marker = watched / "imported.txt"
    with AutoReloader(path=watched) as reloader:
        (watched / "sneaky.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
        assert reloader.wait_for_reload(timeout=0.5) is None
    assert not marker.exists() and "sneaky" not in sys.modules


def test_a_queued_save_whose_file_is_swapped_for_a_symlink_out_of_the_tree_is_not_applied(roots, caplog):
    """apply="manual": the path is checked again when the program applies, and only bytes read after that check
    are applied. A symlink leading outside, swapped in between the save and apply_pending(), runs nothing."""
    caplog.set_level(logging.WARNING, logger="hotswap")
    watched, outside = roots
    marker = outside / "ran.txt"
    module, path = _module(watched, "def f():\n    return 1\n")
    f = module.f
    evil = outside / "evil.py"
    evil.write_text(f"open({str(marker)!r}, 'w').close()\n\ndef f():\n    return 666\n")
    with AutoReloader(path=watched, apply="manual") as reloader:
        path.write_text("def f():\n    return 2\n")
        assert wait_until(lambda: module.__name__ in reloader._pending)
        swap = watched / "swap.tmp"
        swap.symlink_to(evil)
        os.replace(swap, path)  # atomically: the module's path now leads outside the watched tree
        assert reloader.apply_pending() == []
        assert reloader.apply_pending() == []
    assert f() == 1 and not marker.exists()
    assert any(str(path) in r.getMessage() and "not applied" in r.getMessage() for r in caplog.records)


def test_a_file_replaced_by_something_unreadable_is_reported_and_changes_nothing(roots):
    watched, _ = roots
    module, path = _module(watched, "def f():\n    return 1\n")
    f = module.f
    path.unlink()
    path.mkdir()  # the module's path is now a directory: reading it fails
    report = hotswap.reload(module)
    assert not report.ok and "cannot read" in report.error and f() == 1


def _socket_inodes(pid: int) -> set:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def _listening_inodes() -> set:
    listening = set()
    for table in ("tcp", "tcp6"):
        path = Path(f"/proc/net/{table}")
        if path.exists():
            for line in path.read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A":  # TCP_LISTEN
                    listening.add(fields[9])
    unix = Path("/proc/net/unix")
    if unix.exists():
        for line in unix.read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[3], 16) & 0x10000:  # __SO_ACCEPTCON: a listening unix socket
                listening.add(fields[6])
    return listening


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_template_talks_over_inherited_socketpairs_and_never_listens(tmp_path, monkeypatch):
    pkg = tmp_path / "secpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("def work(x):\n    return x + 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import secpkg

    with isolate_imports(str(pkg)) as env:
        assert env.communicate_isolated(env.exec(secpkg.work, 1), timeout=30) == 2
        pids = [os.getpid(), env.template_pid]
        wait_until(lambda: all(os.path.exists(f"/proc/{pid}") for pid in pids))
        sockets = set().union(*(_socket_inodes(pid) for pid in pids))
        assert sockets, "expected the control channel to be a socket"
        assert not sockets & _listening_inodes()
    sys.modules.pop("secpkg", None)
